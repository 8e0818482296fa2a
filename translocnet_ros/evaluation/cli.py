"""`translocnet eval`: score a method on one drive with the DESIGN.md §6 protocol."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np

from translocnet_ros.dataset.bag import BagDrive
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.plots import plot_run
from translocnet_ros.evaluation.protocol import PROTOCOLS, run_protocol, score_results, write_frames_csv
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.methods import make_method


def add_arguments(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--drive", type=Path, help="drive folder in the KITTI raw layout")
    src.add_argument(
        "--bag", type=Path, help="kitti2bag-style ROS 1 / ROS 2 bag (ground truth from GNSS + IMU)"
    )
    p.add_argument("--ortho", required=True, type=Path, help="GeoTIFF orthophoto covering the drive")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="known")
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
    p.add_argument("--no-plot", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    drive = KittiDrive(args.drive) if args.drive else BagDrive(args.bag)
    imagery = GeoTiffSource(args.ortho)
    options = {"device": args.device, **({"model_path": args.model} if args.model else {})}
    method = make_method(args.method, **options)
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
    est = np.array([[r.est.x, r.est.y, r.est.yaw] for r in results])
    summary = score_results(gt, results, method, args.protocol)
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
    if failed:
        print(f"{failed} of {len(results)} frames had no estimate (scored at the prior); see the log above")
    return 0
