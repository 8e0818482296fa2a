"""Grid search of the NCC baseline's settings on the synthetic *validation* towns (never test, never Helsinki).

    python benchmarks/tune_ncc.py

Prints mean / median position error per setting; the best one is what NccConfig's defaults hold.
"""

from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.metrics import frame_errors  # noqa: E402
from translocnet_ros.evaluation.protocol import estimates, run_protocol  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.ncc import NccConfig, NccLocalizer  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402

GRID = {
    "m_per_px": [0.5, 0.4],
    "template_radius_m": [30.0, 40.0, 50.0],
    "intensity_weight": [0.0, 0.6, 1.2],
    "edge_sigma_px": [1.0, 1.5],
}


def main() -> int:
    towns = [(ROOT / "data" / "synth" / name, spec) for name, spec in split_towns("val")]
    build(towns, force=False)
    drives = [(KittiDrive(t / "drive_00"), GeoTiffSource(t / "ortho.tif")) for t, _ in towns]
    results = []
    for values in itertools.product(*GRID.values()):
        cfg = replace(NccConfig(), **dict(zip(GRID, values)))
        errs = []
        for drive, src in drives:
            gt, res = run_protocol(NccLocalizer(cfg), drive, src, src.crs, "known", every=5, progress=False)
            est = estimates(res)
            errs.append(frame_errors(gt, est)["position"])
        e = np.concatenate(errs)
        results.append((float(np.mean(e)), float(np.median(e)), dict(zip(GRID, values))))
        print(f"mean {results[-1][0]:6.2f} m  median {results[-1][1]:5.2f} m  {results[-1][2]}", flush=True)
    best = min(results, key=lambda r: r[0])
    print(f"best: mean {best[0]:.2f} m, median {best[1]:.2f} m with {best[2]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
