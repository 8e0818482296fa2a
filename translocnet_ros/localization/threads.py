"""Process-wide thread settings for localization, applied by every localizer when it is created."""

from __future__ import annotations

from threadpoolctl import threadpool_limits


def limit_blas_threads() -> None:
    """numpy's OpenBLAS threads busy-wait after each call and take the cores that torch's and OpenCV's own
    threads need: on 2 cores that doubled TransLocNet's latency per scan (110 -> 58 ms p50). The engine's numpy
    work is small matrix products, so its BLAS runs on one thread."""
    threadpool_limits(limits=1, user_api="blas")
