"""`translocnet eval`: score a method on one drive with a DESIGN.md §6 protocol (known, unknown, sequence)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from translocnet_ros.dataset.bag import BagDrive
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.plots import plot_run
from translocnet_ros.evaluation.protocol import (
    PROTOCOLS,
    estimates,
    run_protocol,
    score_results,
    write_frames_csv,
)
from translocnet_ros.evaluation.robustness import Corruption
from translocnet_ros.evaluation.sequence import SequenceError, run_sequence, score_sequence
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.methods import make_method


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--drive", type=Path, help="drive folder in the KITTI raw layout")
    src.add_argument(
        "--bag", type=Path, help="kitti2bag-style ROS 1 / ROS 2 bag (ground truth from GNSS + IMU)"
    )
    p.add_argument("--ortho", required=True, type=Path, help="GeoTIFF orthophoto covering the drive")
    p.add_argument(
        "--protocol",
        choices=sorted([*PROTOCOLS, "sequence"]),
        default="known",
        help="known / unknown: every frame alone; sequence: the drive in time order through the Bayes filter",
    )
    p.add_argument("--method", default="ncc", help="translocnet | ncc | prior")
    p.add_argument(
        "--model", type=Path, default=None, help="TorchScript model (translocnet; default models/)"
    )
    p.add_argument("--device", default="auto", help="translocnet: auto | cpu | cuda")
    p.add_argument(
        "--out", required=True, type=Path, help="results JSON; <out>.frames.csv and <out>.png beside it"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the prior offsets")
    p.add_argument("--every", type=int, default=1, help="use every N-th frame")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument(
        "--bad-scans",
        type=float,
        default=0.0,
        help="sequence: share of scans replaced by bad ones (0.2 = 20%%)",
    )
    p.add_argument(
        "--kidnap-frame", type=int, default=None, help="sequence: teleport the vehicle at this position"
    )
    p.add_argument("--kidnap-m", type=float, default=50.0, help="sequence: how far the kidnapping moves it")
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    drive = KittiDrive(args.drive) if args.drive else BagDrive(args.bag)
    imagery = GeoTiffSource(args.ortho)
    options = {"device": args.device, **({"model_path": args.model} if args.model else {})}
    method = make_method(args.method, **options)
    if args.protocol == "sequence":
        corruption = Corruption(args.bad_scans, args.kidnap_frame, args.kidnap_m, args.seed)
        try:
            gt, results = run_sequence(
                method,
                drive,
                imagery,
                imagery.crs,
                args.seed,
                args.every,
                args.max_frames,
                progress=not args.quiet,
                corruption=corruption,
            )
        except SequenceError as exc:
            print(f"translocnet eval: {exc}", file=sys.stderr)
            return 2
        summary = score_sequence(gt, results, method, args.kidnap_frame)
    else:
        gt, results = run_protocol(
            method,
            drive,
            imagery,
            imagery.crs,
            args.protocol,
            args.seed,
            args.every,
            args.max_frames,
            progress=not args.quiet,
        )
        summary = score_results(gt, results, method, args.protocol)
    est = estimates(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    write_frames_csv(args.out.with_suffix(".frames.csv"), results)
    if not args.no_plot:
        plot_run(
            args.out.with_suffix(".png"),
            imagery,
            gt,
            est,
            f"{method.name} / {args.protocol} / {(args.drive or args.bag).name}",
        )
    failed = sum(bool(r.error) for r in results)
    print(json.dumps(summary))
    pub = summary.get("published")
    if pub is not None:
        nees_xy = "no such frame" if pub["n"] == 0 else f"x/y NEES median {pub['nees_xy_median']:.2f}"
        rule = (
            "the filter's own decision"
            if pub["min_confidence"] is None
            else f"confidence >= {pub['min_confidence']:g}"
        )
        print(f"published frames ({rule}): {pub['n']} of {len(results)}; {nees_xy}")
    if failed:
        print(f"{failed} of {len(results)} frames had no estimate (scored at the prior); see the log above")
    return 0
