"""`translocnet view`: one scan over the orthophoto at its ground-truth pose, to check that a drive, its
extrinsics and its imagery line up before evaluating or training on it."""

from __future__ import annotations

import argparse
from pathlib import Path

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.plots import plot_scan_on_imagery
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--drive", required=True, type=Path)
    p.add_argument("--ortho", required=True, type=Path)
    p.add_argument("--frame", type=int, default=0, help="index into the drive's frames")
    p.add_argument("--radius", type=float, default=50.0, help="half-size of the view [m]")
    p.add_argument("--out", required=True, type=Path, help="PNG to write")


def run(args) -> int:
    drive = KittiDrive(args.drive)
    src = GeoTiffSource(args.ortho)
    pose = drive.ground_truth(MapFrame.from_any(src.crs)).poses[args.frame]
    scan = drive.scan_base(drive.frames[args.frame])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_scan_on_imagery(
        args.out, src, scan, pose, args.radius, f"{args.drive} frame {drive.frames[args.frame]}"
    )
    print(f"wrote {args.out}")
    return 0
