"""Accuracy and latency of every method, both protocols, on held-out synthetic towns and on helsinki-dev.

    python benchmarks/accuracy.py                       # full run (builds the test split if missing)
    python benchmarks/accuracy.py --every 10 --towns 2  # quick look

Writes runs/accuracy/<dataset>/<method>_<protocol>/... and the `accuracy` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.helsinki import HELSINKI  # noqa: E402
from benchmarks.helsinki import sites as helsinki_sites  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import run_protocol, score_results, write_frames_csv  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402


def datasets(synth_root: Path, n_towns: int | None):
    towns = [(synth_root / name, spec) for name, spec in split_towns("test", n_towns)]
    build(towns, force=False)
    yield "synthetic test towns", [(t / "drive_00", t / "ortho.tif") for t, _ in towns]
    if HELSINKI.exists():
        sites = helsinki_sites()
        yield "helsinki-dev (real)", [(s / "drive", s / "ortho.tif") for s in sites]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--methods",
        nargs="+",
        default=["prior", "ncc"],
        help="method names; translocnet@MODEL.pt for another model (ablations), labelled by its file name",
    )
    ap.add_argument("--protocols", nargs="+", default=["known", "unknown"])
    ap.add_argument("--synth", type=Path, default=ROOT / "data" / "synth")
    ap.add_argument("--towns", type=int, default=None, help="first N test towns only")
    ap.add_argument("--every", type=int, default=2, help="frame stride on synthetic drives (known protocol)")
    ap.add_argument("--every-unknown", type=int, default=5, help="frame stride on synthetic drives (unknown)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "accuracy")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--section", default="accuracy", help="BENCHMARKS.md section to (re)write")
    ap.add_argument("--title", default="Localization accuracy and latency (DESIGN.md §6 protocol)")
    ap.add_argument("--note", default="", help="a sentence about this run, printed under the table")
    args = ap.parse_args()

    rows = []
    for label, drives in datasets(args.synth, args.towns):
        for spec in args.methods:
            method_name, _, model = spec.partition("@")
            method = make_method(method_name, **({"model_path": Path(model)} if model else {}))
            slug = f"{method_name}_{Path(model).stem}" if model else method_name
            if model:
                method_name = f"{method_name} ({Path(model).stem})"
            for protocol in args.protocols:
                stride = args.every if protocol == "known" else args.every_unknown
                gts, results = [], []
                for drive_dir, ortho in drives:
                    src = GeoTiffSource(ortho)
                    real = "helsinki" in label
                    gt, res = run_protocol(
                        method,
                        KittiDrive(drive_dir),
                        src,
                        src.crs,
                        protocol,
                        every=1 if real else stride,
                        progress=False,
                    )
                    out = args.out / label.split()[0] / f"{slug}_{protocol}"
                    out.mkdir(parents=True, exist_ok=True)
                    write_frames_csv(out / f"{drive_dir.parent.name}.frames.csv", res)
                    gts.append(gt)
                    results += res
                s = score_results(np.concatenate(gts), results, method, protocol)
                s["method"] = method_name
                fails = sum(bool(r.error) for r in results)
                (args.out / label.split()[0] / f"{slug}_{protocol}.json").write_text(json.dumps(s, indent=2))
                rows.append((label, len(drives), s, fails))
                print(
                    f"{label:24s} {method_name:8s} {protocol:8s} n={s['n']:4d} "
                    f"mean={s['position_error_m']['mean']:.2f} m median={s['position_error_m']['median']:.2f} m "
                    f"yaw={s['yaw_error_deg']['median']:.2f} deg p50={s['latency_ms']['p50']:.0f} ms",
                    flush=True,
                )
    if not args.no_write:
        write_section(args.section, table(rows, args))
    return 0


def table(rows, args) -> str:
    cmd = "python benchmarks/accuracy.py" + (f" --towns {args.towns}" if args.towns else "")
    if args.methods != ["prior", "ncc"]:
        cmd += " --methods " + " ".join(args.methods)
    if args.protocols != ["known", "unknown"]:
        cmd += " --protocols " + " ".join(args.protocols)
    if args.every != 2:
        cmd += f" --every {args.every}"
    if args.every_unknown != 5:
        cmd += f" --every-unknown {args.every_unknown}"
    lines = [
        f"## {args.title}",
        "",
        f"Command: `{cmd}` (after `source scripts/env.sh`). Synthetic: the held-out `test` split "
        f"(`translocnet generate --split test`), frame stride {args.every} for `known` and "
        f"{args.every_unknown} for `unknown`; helsinki-dev: all frames. Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| data | method | protocol | n | pos. mean [m] | pos. median [m] | yaw mean [deg] | yaw median [deg] "
        "| lat R@1m | lat R@5m | lon R@1m | lon R@5m | yaw R@1° | yaw R@5° | p50 [ms] | p95 [ms] | device | no estimate |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, n_drives, s, fails in rows:
        lines.append(
            f"| {label} ({n_drives}) | {s['method']} | {s['protocol']} | {s['n']} "
            f"| {s['position_error_m']['mean']:.2f} | {s['position_error_m']['median']:.2f} "
            f"| {s['yaw_error_deg']['mean']:.2f} | {s['yaw_error_deg']['median']:.2f} "
            f"| {s['lateral_recall']['1m']:.0%} | {s['lateral_recall']['5m']:.0%} "
            f"| {s['longitudinal_recall']['1m']:.0%} | {s['longitudinal_recall']['5m']:.0%} "
            f"| {s['yaw_recall']['1deg']:.0%} | {s['yaw_recall']['5deg']:.0%} "
            f"| {s['latency_ms']['p50']:.0f} | {s['latency_ms']['p95']:.0f} | {s['device']} | {fails} |"
        )
    lines += [
        "",
        "`prior` returns the prior unchanged: the floor every method must beat.",
        "",
        "Uncertainty (see `translocnet_ros/evaluation/calibration.py`): NEES of the (x, y, yaw) error under the "
        "reported covariance (3 when honest, larger when overconfident), share of frames inside their 95% "
        "ellipsoid (0.95 when honest), mean confidence (the claimed P(error <= 1 m and 2 deg)) beside the "
        "observed rate, and the rank correlation of confidence with position error (negative is good).",
        "",
        "| data | method | protocol | NEES mean | NEES median | 95% coverage | confidence | hit rate 1 m/2° "
        "| Spearman(conf, err) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, n_drives, s, _ in rows:
        c = s["calibration"]
        lines.append(
            f"| {label} ({n_drives}) | {s['method']} | {s['protocol']} | {c['nees_mean']:.1f} "
            f"| {c['nees_median']:.1f} | {c['coverage_95']:.0%} | {c['confidence_mean']:.2f} "
            f"| {c['hit_rate_1m_2deg']:.0%} | {c['spearman_confidence_error']:+.2f} |"
        )
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
