"""`translocnet calibrate`: fit a method's likelihood temperature and covariance on the validation towns.

Runs the method over the val split with the DESIGN.md §6 priors, keeps each frame's score volume, and picks the
temperature T that minimizes the true pose's NLL under softmax(logits / T). Then the covariance of
decode.honest_covariance() is fitted (calibration.fit_covariance): a factor on the volume's own spread so that
the median NEES is that of an honest 3-DoF estimate, and a weight on the search window's spread, times
1 - confidence, so that the 95% quantile of the NEES is honest too (wrong matches the volume does not show).
Last, the val drives run through the temporal filter (`eval --protocol sequence`, what the node runs) at the
fitted T, and a factor on the filter's posterior covariance makes the median NEES of the frames it would publish
(confidence >= 0.2) honest (--no-sequence skips it). For translocnet, --write stores the values in the model's
metadata (the localizer, hence the node, eval and the filter, applies them), with the test-time views and the
NCC evidence weight it was calibrated at (--views, --ncc-weight); for ncc it prints them. The consistency
statistics before and after show what changed. It also measures the aerial input range the model was trained on
(its own augmentation on val-town patches; model/input_range.py), which `translocnet adapt` keeps an area to;
--input-range-only measures and writes just that.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.calibration import (
    WRONG_MATCH_DEG,
    WRONG_MATCH_M,
    axis_scales,
    consistency,
    fit_covariance,
    fit_temperature,
    nees,
    true_pose_nll,
)
from translocnet_ros.evaluation.protocol import PROTOCOLS, PUBLISH_CONFIDENCE, draw_priors
from translocnet_ros.evaluation.sequence import run_sequence
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.decode import (
    NO_WRONG_MATCH,
    WrongMatchCurve,
    decode_parts,
    honest_covariance,
)
from translocnet_ros.localization.filter import scale_axes
from translocnet_ros.localization.methods import make_method
from translocnet_ros.localization.types import LocalizationError
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.data import SampleConfig, TownFrames, town_drives
from translocnet_ros.model.input_range import InputRange, measure
from translocnet_ros.model.views import VIEWS
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
    p.add_argument(
        "--protocol",
        choices=sorted(PROTOCOLS),
        nargs="+",
        default=["known"],
        help="one or more: the frames of every protocol given are pooled",
    )
    p.add_argument(
        "--every", type=int, default=2, help="use every N-th frame (2: 200 val frames, ~16 wrong matches)"
    )
    p.add_argument("--seed", type=int, default=1, help="prior seed (differs from eval's 0 on purpose)")
    p.add_argument(
        "--write", action="store_true", help="translocnet: store the calibration in the model's metadata"
    )
    p.add_argument("--no-sequence", action="store_true", help="do not fit the temporal filter's covariance")
    p.add_argument(
        "--views",
        type=int,
        choices=sorted(VIEWS),
        default=None,
        help="translocnet: test-time views whose volumes are averaged (1 plain, 2 half turn, 4 quarter turns, 8 "
        "also mirrored; each costs one more pass); calibrated at this setting and, with --write, stored as "
        "the model's (default: the model's own)",
    )
    p.add_argument(
        "--ncc-weight",
        type=float,
        default=None,
        help="translocnet: weight of the classic NCC matcher's log-likelihood added to the model's logits (0 "
        "none; costs one NCC search per scan); calibrated at this setting and, with --write, stored as the "
        "model's (default: the model's own)",
    )
    p.add_argument(
        "--input-range-only",
        action="store_true",
        help="translocnet: only measure the aerial input range the model was trained on (what `adapt` keeps "
        "to) and, with --write, store it; no likelihood fit",
    )
    p.add_argument("--range-patches", type=int, default=400, help="augmented val patches for the input range")
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


def decoded_parts(volumes, truths, temperature: float):
    """(gt, est, spread, window, confidence) arrays of the volumes decoded at T, before the covariance
    calibration."""
    parts = [decode_parts(v, temperature) for v in volumes]
    gt = np.array([[t.x, t.y, t.yaw] for t in truths])
    est = np.array([[d.pose.x, d.pose.y, d.pose.yaw] for d in parts])
    spread = np.array([d.spread for d in parts])
    window = np.array([d.window for d in parts])
    return gt, est, spread, window, np.array([d.confidence for d in parts])


def _decoded(volumes, truths, temperature: float, cov_scale: float = 1.0, wrong_match=NO_WRONG_MATCH):
    gt, est, spread, window, conf = decoded_parts(volumes, truths, temperature)
    cov = np.array(
        [honest_covariance(s, c, w, cov_scale, wrong_match) for s, c, w in zip(spread, conf, window)]
    )
    return gt, est, cov, conf


def fit_calibrated_covariance(volumes, truths, temperature: float) -> tuple[float, WrongMatchCurve]:
    """(covariance_scale, wrong-match curve) fitted on the volumes decoded at T."""
    return fit_covariance(*decoded_parts(volumes, truths, temperature))


def summary_at(
    volumes, truths, temperature: float, cov_scale: float = 1.0, wrong_match=NO_WRONG_MATCH
) -> dict:
    stats = consistency(*_decoded(volumes, truths, temperature, cov_scale, wrong_match))
    return {
        "temperature": temperature,
        "covariance_scale": cov_scale,
        "wrong_match": wrong_match.to_dict(),
        "nll": true_pose_nll(volumes, truths, temperature),
        **stats,
    }


def sequence_frames(method, towns: list[Path], seed: int, progress: bool):
    """(gt, est, cov, confidence) of every frame of every drive of the towns through the temporal filter."""
    gts, ests, covs, confs = [], [], [], []
    for town in towns:
        src = GeoTiffSource(town / "ortho.tif")
        for drive_dir in sorted(town.glob("drive_*")):
            gt, results = run_sequence(method, KittiDrive(drive_dir), src, src.crs, seed, progress=progress)
            gts.append(gt)
            ests += [[r.est.x, r.est.y, r.est.yaw] for r in results]
            covs += [r.cov for r in results]
            confs += [r.confidence for r in results]
    return np.concatenate(gts), np.array(ests), np.array(covs), np.array(confs)


def published_filter_frames(gt, est, cov, conf):
    """(gt, est, cov) of the filtered frames whose published confidence reaches the default confidence_publish:
    the frames the covariance must be honest on, a superset of those the node publishes (it also wants a
    converged belief at filter.converged_confidence, fusion.py)."""
    pub = conf >= PUBLISH_CONFIDENCE
    return gt[pub], est[pub], cov[pub]


def filter_nees_median(frames, position: float, yaw: float) -> float:
    gt, est, cov = frames
    return float(np.median(nees(gt, est, scale_axes(cov, position, yaw))))


def trained_input_range(meta: dict, towns: list[Path], n: int, seed: int) -> InputRange:
    """The aerial input range of the model's training: its own augmentation (metadata `trained.sample`) on
    patches of the val towns, drawn from the same generator as its training towns."""
    sample = {k: tuple(v) if isinstance(v, list) else v for k, v in meta["trained"]["sample"].items()}
    known = {f.name for f in fields(SampleConfig)}
    cfg = SampleConfig(**{k: v for k, v in sample.items() if k in known})
    frames = TownFrames([d for t in towns for d in town_drives(t)], ModelConfig(**meta["model"]), cfg, seed)
    return measure(frames, n, seed)


def write_metadata(model_path: Path, entries: dict) -> Path:
    """Entries set in the model's metadata JSON beside it; every other entry kept."""
    meta_path = Path(model_path).with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta.update(entries)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return meta_path


def run(args) -> int:
    if args.split == "test":
        raise SystemExit("calibrating on the test split would leak it into the reported results")
    options = {"device": args.device, **({"model_path": args.model} if args.model else {})}
    if args.views and args.method == "translocnet":
        options["views"] = args.views
    if args.ncc_weight is not None and args.method == "translocnet":
        options["ncc_weight"] = args.ncc_weight
    method = make_method(args.method, **options)
    jobs = [(args.data / name, spec) for name, spec in split_towns(args.split)]
    towns = build(jobs, force=False)
    if args.method == "translocnet":
        input_range = trained_input_range(method.meta, towns, args.range_patches, args.seed)
        print(
            f"aerial input range (2-98% of {input_range.patches} augmented val patches): {input_range.to_dict()}"
        )
        if args.input_range_only:
            if args.write:
                write_metadata(method.model_path, {"aerial_input_range": input_range.to_dict()})
            return 0
    volumes, truths = [], []
    for protocol in args.protocol:
        v, t = collect(method, towns, protocol, args.every, args.seed, not args.quiet)
        volumes += v
        truths += t
    in_use = (method.temperature, method.covariance_scale, getattr(method, "wrong_match", NO_WRONG_MATCH))
    before = summary_at(volumes, truths, *in_use)
    t, _ = fit_temperature(volumes, truths)
    scale, wrong = fit_calibrated_covariance(volumes, truths, t)
    after = summary_at(volumes, truths, t, scale, wrong)
    filter_scale = getattr(method, "filter_covariance_scale", 1.0)
    filter_yaw, filter_fit = getattr(method, "filter_yaw_scale", filter_scale), {}
    if not args.no_sequence:  # the filter at the fitted T, its own covariance unscaled
        in_use_filter = (filter_scale, filter_yaw)
        method.temperature, method.filter_covariance_scale, method.filter_yaw_scale = t, 1.0, 1.0
        pub = published_filter_frames(*sequence_frames(method, towns, args.seed, not args.quiet))
        if len(pub[0]):
            filter_scale, filter_yaw = axis_scales(*pub)
            filter_fit = {
                "frames": len(pub[0]),
                "nees_median_before": filter_nees_median(pub, *in_use_filter),
                "nees_median_after": filter_nees_median(pub, filter_scale, filter_yaw),
            }
        print(
            f"filter   covariance factors (position, yaw) {in_use_filter[0]:.4g}, {in_use_filter[1]:.4g} -> "
            f"{filter_scale:.4g}, {filter_yaw:.4g} {filter_fit}"
        )
    for label, s in (("current", before), ("fitted", after)):
        curve = WrongMatchCurve.from_dict(s["wrong_match"])
        stats = " ".join(f"{k}={v:.4g}" for k, v in s.items() if k != "wrong_match")
        wrong_at = " ".join(f"{c:g}:{curve(c):.2f}" for c in (0.01, 0.05, 0.1, 0.2, 0.5))
        print(f"{label:8s} {stats} P(wrong match | confidence) {wrong_at}")
    if args.write and args.method == "translocnet":
        calibration = {
            "temperature": t,
            "covariance_scale": scale,
            "wrong_match": {
                **wrong.to_dict(),
                "definition": f"position error > {WRONG_MATCH_M:g} m or yaw error > {WRONG_MATCH_DEG:g} deg",
            },
            "filter_covariance_scale": filter_scale,
            "filter_yaw_scale": filter_yaw,
            "filter_fit": filter_fit or "not fitted (--no-sequence or no published frame)",
            "split": args.split,
            "towns": [p.name for p in towns],
            "protocol": " + ".join(args.protocol),
            "every": args.every,
            "seed": args.seed,
            "frames": len(volumes),
            "before": before,
            "after": after,
        }
        inference = {
            **method.meta.get("inference", {}),
            "views": len(method.views),
            "ncc_weight": method.ncc.weight if method.ncc else 0.0,
        }
        meta_path = write_metadata(
            method.model_path,
            {"calibration": calibration, "inference": inference, "aerial_input_range": input_range.to_dict()},
        )
        print(
            f"[calibrate] wrote temperature {t:.4g}, covariance scale {scale:.4g} and a wrong-match curve "
            f"({len(wrong.confidence)} knots) to {meta_path}"
        )
    return 0
