"""Error metrics of DESIGN.md §6, computed from ground truth and estimates only."""

from __future__ import annotations

import numpy as np

from translocnet_ros.geo.crs import wrap_angle


def frame_errors(gt: np.ndarray, est: np.ndarray) -> dict[str, np.ndarray]:
    """gt, est: (N, 3) x, y, yaw. Lateral/longitudinal are the error components across/along the true heading."""
    d = est[:, :2] - gt[:, :2]
    c, s = np.cos(gt[:, 2]), np.sin(gt[:, 2])
    return {
        "position": np.hypot(d[:, 0], d[:, 1]),
        "yaw_deg": np.degrees(np.abs(wrap_angle(est[:, 2] - gt[:, 2]))),
        "longitudinal": np.abs(c * d[:, 0] + s * d[:, 1]),
        "lateral": np.abs(-s * d[:, 0] + c * d[:, 1]),
    }


def summarize(
    gt: np.ndarray, est: np.ndarray, latency_ms: np.ndarray, method: str, protocol: str, device: str
) -> dict:
    """The result JSON of DESIGN.md §6 (recall = fraction of frames with error strictly below the threshold)."""
    e = frame_errors(gt, est)

    def recall(x, t):
        return float(np.mean(x < t)) if len(x) else 0.0

    return {
        "method": method,
        "protocol": protocol,
        "n": len(gt),
        "position_error_m": {
            "mean": float(np.mean(e["position"])),
            "median": float(np.median(e["position"])),
        },
        "yaw_error_deg": {"mean": float(np.mean(e["yaw_deg"])), "median": float(np.median(e["yaw_deg"]))},
        "lateral_recall": {"1m": recall(e["lateral"], 1.0), "5m": recall(e["lateral"], 5.0)},
        "longitudinal_recall": {"1m": recall(e["longitudinal"], 1.0), "5m": recall(e["longitudinal"], 5.0)},
        "yaw_recall": {"1deg": recall(e["yaw_deg"], 1.0), "5deg": recall(e["yaw_deg"], 5.0)},
        "latency_ms": {
            "p50": float(np.percentile(latency_ms, 50)),
            "p95": float(np.percentile(latency_ms, 95)),
        },
        "device": device,
    }
