"""`translocnet calibrate`: fit a method's likelihood temperature on the validation towns.

Runs the method over the val split with the DESIGN.md §6 priors, keeps each frame's score volume, and picks the
temperature T that minimizes the true pose's NLL under softmax(logits / T). For translocnet, --write stores T in
the model's metadata (the localizer applies it); for ncc it prints the value for NccConfig.temperature. Then a
factor on the covariance is fitted so that the median NEES is that of an honest 3-DoF estimate (the spread of
the whole distribution around its mode overstates the error of a sharp mode). The consistency statistics before
and after show what the fit changed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.calibration import (
    consistency,
    covariance_scale,
    fit_temperature,
    nees,
    true_pose_nll,
)
from translocnet_ros.evaluation.protocol import PROTOCOLS, draw_priors
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.decode import decode_volume
from translocnet_ros.localization.methods import make_method
from translocnet_ros.localization.types import LocalizationError
from translocnet_ros.synth.cli import build
from translocnet_ros.synth.splits import split_towns


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--method", default="translocnet", help="translocnet | ncc")
    p.add_argument(
        "--model", type=Path, default=None, help="TorchScript model (translocnet; default models/)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--data", type=Path, default=Path("data/synth"), help="folder holding the val towns")
    p.add_argument("--split", default="val", help="never the test split: it is for reporting only")
    p.add_argument("--protocol", choices=sorted(PROTOCOLS), default="known")
    p.add_argument("--every", type=int, default=4, help="use every N-th frame")
    p.add_argument("--seed", type=int, default=1, help="prior seed (differs from eval's 0 on purpose)")
    p.add_argument("--write", action="store_true", help="translocnet: store T in the model's metadata")
    p.add_argument("--quiet", action="store_true")


def collect(method, towns: list[Path], protocol: str, every: int, seed: int, progress: bool):
    """Score volumes and true poses of every `every`-th frame of every drive of the towns."""
    volumes, truths = [], []
    window = PROTOCOLS[protocol]
    jobs = []
    for town in towns:
        src = GeoTiffSource(town / "ortho.tif")
        for drive_dir in sorted(town.glob("drive_*")):
            drive = KittiDrive(drive_dir)
            gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses
            priors = draw_priors(gt, protocol, seed)
            jobs += [(drive, src, gt[k], priors[k], k) for k in range(0, len(gt), every)]
    for drive, src, truth, prior, k in tqdm(jobs, desc=f"calibrate {method.name}", disable=not progress):
        try:
            volumes.append(method.score_volume(drive.scan_base(drive.frames[k]), src, prior, window))
        except LocalizationError:
            continue
        truths.append(truth)
    return volumes, truths


def _decoded(volumes, truths, temperature: float, cov_scale: float = 1.0):
    est = [decode_volume(v, temperature, cov_scale) for v in volumes]
    gt = np.array([[t.x, t.y, t.yaw] for t in truths])
    xyz = np.array([[e.pose.x, e.pose.y, e.pose.yaw] for e in est])
    return gt, xyz, np.array([e.covariance for e in est]), np.array([e.confidence for e in est])


def fit_covariance_scale(volumes, truths, temperature: float) -> float:
    gt, est, cov, _ = _decoded(volumes, truths, temperature)
    return covariance_scale(nees(gt, est, cov))


def summary_at(volumes, truths, temperature: float, cov_scale: float = 1.0) -> dict:
    stats = consistency(*_decoded(volumes, truths, temperature, cov_scale))
    return {
        "temperature": temperature,
        "covariance_scale": cov_scale,
        "nll": true_pose_nll(volumes, truths, temperature),
        **stats,
    }


def run(args) -> int:
    if args.split == "test":
        raise SystemExit("calibrating on the test split would leak it into the reported results")
    options = {"device": args.device, **({"model_path": args.model} if args.model else {})}
    method = make_method(args.method, **options)
    jobs = [(args.data / name, spec) for name, spec in split_towns(args.split)]
    towns = build(jobs, force=False)
    volumes, truths = collect(method, towns, args.protocol, args.every, args.seed, not args.quiet)
    before = summary_at(volumes, truths, method.temperature, method.covariance_scale)
    t, _ = fit_temperature(volumes, truths)
    scale = fit_covariance_scale(volumes, truths, t)
    after = summary_at(volumes, truths, t, scale)
    for label, s in (("current", before), ("fitted", after)):
        print(f"{label:8s} " + " ".join(f"{k}={v:.4g}" for k, v in s.items()))
    if args.write and args.method == "translocnet":
        meta_path = Path(method.model_path).with_suffix(".json")
        meta = json.loads(meta_path.read_text())
        meta["calibration"] = {
            "temperature": t,
            "covariance_scale": scale,
            "split": args.split,
            "towns": [p.name for p in towns],
            "protocol": args.protocol,
            "frames": len(volumes),
            "before": before,
            "after": after,
        }
        meta_path.write_text(json.dumps(meta, indent=2) + "\n")
        print(f"[calibrate] wrote temperature {t:.4g} and covariance scale {scale:.4g} to {meta_path}")
    return 0
