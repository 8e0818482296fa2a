"""Candidate models side by side on real imagery and on synthetic towns, the check every training change must
pass (issue 11: kept only if it helps on helsinki-dev without hurting the synthetic test towns):

- helsinki-dev, protocol known, the sites' own 30 real frames;
- helsinki-dev's real orthophotos with 100 scans per site ray-cast at street level from the sites' cloud.ply
  (300 frames: a less noisy view of the aerial half, which is the one that breaks, docs/real_gap.md);
- the synthetic test towns, protocol known, every 4th frame.

    python benchmarks/model_ablation.py "previous=runs/models/previous.pt" "new=models/translocnet.pt" ...

Each argument is LABEL=MODEL.pt[@VIEWS][=HOW], HOW a short note on how the model was made, VIEWS the test-time
views averaged per scan (model/views.py; default: the model's own). With --adapt every model is first adapted
on each site's own orthophoto and scans (`translocnet adapt`, its default mode) for both real sets, as a user
runs it; the synthetic towns are scored as the model is. Writes the `model-ablation` section of BENCHMARKS.md
(--no-write: prints only).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.adapt import adapted_model  # noqa: E402
from benchmarks.helsinki import SiteScore, raycast_drive_of, score_sites, sites  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import run_protocol, score_results  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402


def synthetic(model: Path, data: Path, every: int, views: int | None = None) -> dict:
    method = make_method("translocnet", model_path=model, views=views)
    gts, results = [], []
    for name, _ in split_towns("test"):
        src = GeoTiffSource(data / name / "ortho.tif")
        drive = KittiDrive(data / name / "drive_00")
        gt, res = run_protocol(method, drive, src, src.crs, "known", every=every, progress=False)
        gts.append(gt)
        results += res
    return score_results(np.concatenate(gts), results, method, "known")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", metavar="LABEL=MODEL[=HOW]")
    ap.add_argument(
        "--data", type=Path, default=ROOT / "data" / "synth", help="holds the synthetic test towns"
    )
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "model_ablation")
    ap.add_argument(
        "--adapt", action="store_true", help="adapt every model on each site's orthophoto and scans first"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    raycast = raycast_drive_of(args.out / "raycast")
    lines = [
        "## Model ablation on real imagery and synthetic towns (protocol known)",
        "",
        f"Command: `python benchmarks/model_ablation.py {' '.join(repr(m) for m in args.models)}"
        f"{' --adapt' if args.adapt else ''}`. "
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "helsinki-dev real: the 30 real frames; helsinki-dev ray-cast: the real orthophotos with 300 scans ray-cast "
        "at street level from the sites' `cloud.ply`; synthetic: the 8 test towns, every "
        f"{args.every}th frame. Mean / median position error in metres, lateral recall at 1 m (real sets: per-site "
        f"means in brackets){'; both real sets after `translocnet adapt` on each site' if args.adapt else ''}.",
        "",
        "| model | how it was made | helsinki-dev real mean / median / lat@1m | helsinki-dev ray-cast mean / median "
        "/ lat@1m | synthetic test mean / median / lat@1m |",
        "|---|---|---|---|---|",
    ]

    def cell(s: dict) -> str:
        e = s["position_error_m"]
        return f"{e['mean']:.2f} / {e['median']:.2f} / {s['lateral_recall']['1m']:.0%}"

    def real_cell(s: SiteScore) -> str:
        return f"{cell(s.score)} ({s.per_site()})"

    for spec in args.models:
        label, model, *how = spec.split("=", 2)
        model, _, views = model.partition("@")
        model, views = Path(model), int(views) if views else None
        tag = "".join(c if c.isalnum() else "_" for c in label)
        model_of = adapted_model(model.resolve(), args.out / "adapted" / tag, [] if args.adapt else None)
        real = score_sites(model_of, sites(), views=views)
        cast = score_sites(model_of, sites(), raycast, views=views)
        syn = synthetic(model, args.data, args.every, views)
        lines.append(
            f"| {label} | {how[0] if how else ''} | {real_cell(real)} | {real_cell(cast)} | {cell(syn)} |"
        )
        print(lines[-1], flush=True)
    if not args.no_write:
        write_section("model-ablation", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
