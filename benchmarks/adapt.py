"""What `translocnet adapt` buys on real imagery: each helsinki-dev site adapted on its own orthophoto (and,
with --batchnorm, its own unlabeled scans), then scored with protocol known beside the unadapted model.

    python benchmarks/adapt.py [--model models/translocnet.pt]

Writes runs/adapt/... and the `adapt` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.cli import main as cli  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import run_protocol, score_results  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402

HELSINKI = ROOT.parent / "shared" / "data" / "helsinki-dev"
VARIANTS = {"none": None, "input statistics (default)": [], "input + AdaBN (--batchnorm)": ["--batchnorm"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "translocnet.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "adapt")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    sites = sorted(p for p in HELSINKI.iterdir() if (p / "ortho.tif").exists())
    rows = []
    for label, flags in VARIANTS.items():
        gts, results, per_site = [], [], []
        for site in sites:
            model = args.model
            if flags is not None:
                model = args.out / f"{site.name}_{'bn' if flags else 'input'}.pt"
                argv = ["adapt", "--model", str(args.model), "--ortho", str(site / "ortho.tif")]
                cli([*argv, "--scans", str(site / "drive"), "--out", str(model), *flags])
            method = make_method("translocnet", model_path=model)
            src = GeoTiffSource(site / "ortho.tif")
            gt, res = run_protocol(method, KittiDrive(site / "drive"), src, src.crs, "known", progress=False)
            per_site.append(np.mean([np.hypot(r.est.x - g[0], r.est.y - g[1]) for r, g in zip(res, gt)]))
            gts.append(gt)
            results += res
        s = score_results(np.concatenate(gts), results, method, "known")
        gt_all = np.concatenate(gts)
        err = np.array([np.hypot(r.est.x - g[0], r.est.y - g[1]) for r, g in zip(results, gt_all)])
        pub = np.array([r.confidence >= 0.2 for r in results])
        rows.append((label, s, per_site, int(pub.sum()), float((err[pub] < 2).mean()) if pub.any() else None))
        print(label, f"mean {s['position_error_m']['mean']:.2f} m", flush=True)
    lines = [
        "## `translocnet adapt` on helsinki-dev (each site adapted on its own orthophoto / scans, protocol known)",
        "",
        f"Command: `python benchmarks/adapt.py --model {args.model.relative_to(ROOT)}`. Model: "
        f"`{args.model.name}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| adaptation | n | mean m | median m | lateral@1m | per-site mean m | published (conf >= 0.2) | of those < 2 m |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label, s, per_site, n_pub, hit in rows:
        lines.append(
            f"| {label} | {s['n']} | {s['position_error_m']['mean']:.2f} | {s['position_error_m']['median']:.2f} "
            f"| {s['lateral_recall']['1m']:.0%} | {' / '.join(f'{v:.1f}' for v in per_site)} | {n_pub} "
            f"| {'-' if hit is None else f'{hit:.0%}'} |"
        )
    if not args.no_write:
        write_section("adapt", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
