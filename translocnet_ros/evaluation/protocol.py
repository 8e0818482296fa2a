"""Runs a method over a drive exactly as DESIGN.md §6 prescribes.

The method sees the scan, the imagery and the prior only; ground truth draws the prior and scores the result.
Priors are drawn for every frame of the drive from one seed, so subsampling never changes a frame's prior.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.calibration import consistency, nees, nees_xy
from translocnet_ros.evaluation.metrics import summarize
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.tracker import TrackerConfig
from translocnet_ros.localization.types import ImagerySource, LocalizationError, Localizer, SearchWindow

log = logging.getLogger(__name__)

PRIOR_OFFSET_M = 20.0
PUBLISH_CONFIDENCE = TrackerConfig().publish_min  # the node's default confidence_publish
PROTOCOLS = {
    "known": SearchWindow(PRIOR_OFFSET_M, np.radians(10.0)),
    "unknown": SearchWindow(PRIOR_OFFSET_M, np.pi),
}
CSV_HEADER = [
    "frame",
    "prior_x",
    "prior_y",
    "prior_yaw",
    "est_x",
    "est_y",
    "est_yaw",
    "cov_xx",
    "cov_xy",
    "cov_xyaw",
    "cov_yy",
    "cov_yyaw",
    "cov_yawyaw",
    "confidence",
    "latency_ms",
]


def draw_priors(gt: list[Pose2D], protocol: str, seed: int = 0) -> list[Pose2D]:
    """Ground truth + offsets uniform in +-20 m per map axis and +-10 deg (known) / +-180 deg (unknown)."""
    window = PROTOCOLS[protocol]
    rng = np.random.default_rng(seed)
    off = rng.uniform(-1.0, 1.0, size=(len(gt), 3)) * [PRIOR_OFFSET_M, PRIOR_OFFSET_M, window.yaw_range_rad]
    return [p.offset(*o) for p, o in zip(gt, off)]


@dataclass
class FrameResult:
    frame: int
    prior: Pose2D
    est: Pose2D
    cov: np.ndarray
    confidence: float
    latency_ms: float
    error: str = ""
    filter_ms: float = float("nan")  # sequence protocol: the filter's own update
    state: str = ""  # sequence protocol: the filter's state after this frame
    published: bool = False  # sequence protocol: the node would publish this estimate (fusion.Step.publish)


def estimates(results: list[FrameResult]) -> np.ndarray:
    """(N, 3) x, y, yaw of the frames' estimates."""
    return np.array([[r.est.x, r.est.y, r.est.yaw] for r in results])


def run_protocol(
    method: Localizer,
    drive: KittiDrive,
    imagery: ImagerySource,
    crs,
    protocol: str,
    seed: int = 0,
    every: int = 1,
    max_frames: int | None = None,
    progress: bool = True,
):
    """Returns (ground truth (N, 3), per-frame results) for the selected frames."""
    gt = drive.ground_truth(MapFrame.from_any(crs))
    priors = draw_priors(gt.poses, protocol, seed)
    window = PROTOCOLS[protocol]
    idx = list(range(0, len(drive.frames), max(every, 1)))[: max_frames or None]
    results = []
    for k in tqdm(idx, desc=f"eval {method.name}/{protocol}", disable=not progress, unit="frame"):
        scan = drive.scan_base(drive.frames[k])
        t0 = time.perf_counter()
        try:
            est = method.localize(scan, imagery, priors[k], window)
            pose, cov, conf, err = est.pose, est.covariance, est.confidence, ""
        except LocalizationError as exc:  # scored as the prior itself, with zero confidence
            log.warning("frame %d: %s", drive.frames[k], exc)
            pose, cov, conf, err = (
                priors[k],
                np.diag([PRIOR_OFFSET_M**2, PRIOR_OFFSET_M**2, np.pi**2]),
                0.0,
                str(exc),
            )
        results.append(
            FrameResult(drive.frames[k], priors[k], pose, cov, conf, 1e3 * (time.perf_counter() - t0), err)
        )
    return gt.xy_yaw()[idx], results


def score_results(gt: np.ndarray, results: list[FrameResult], method: Localizer, protocol: str) -> dict:
    """DESIGN.md §6 summary plus the consistency of the reported covariance and confidence."""
    est = estimates(results)
    summary = summarize(
        gt, est, np.array([r.latency_ms for r in results]), method.name, protocol, method.device
    )
    cov, conf = np.array([r.cov for r in results]), np.array([r.confidence for r in results])
    summary["calibration"] = consistency(gt, est, cov, conf)
    summary["calibration"]["nees_xy_median"] = float(np.median(nees_xy(gt, est, cov)))
    # a filtered drive's frames carry the engine's own publish decision (converged, confident enough)
    decided = np.array([r.published for r in results]) if protocol == "sequence" else None
    summary["published"] = published_nees(gt, est, cov, conf, published=decided)
    return summary


def published_nees(
    gt: np.ndarray,
    est: np.ndarray,
    cov: np.ndarray,
    confidence: np.ndarray,
    min_confidence: float = PUBLISH_CONFIDENCE,
    published: np.ndarray | None = None,
) -> dict:
    """NEES of the frames the node would publish (single frames: confidence >= its confidence_publish; filtered
    ones: `published`, the engine's decision): x/y (2 DoF, median 1.39 when honest) and x/y/yaw (3 DoF, median
    2.37); None when no frame is published."""
    sel = confidence >= min_confidence if published is None else np.asarray(published, bool)
    out = {"min_confidence": min_confidence if published is None else None, "n": int(sel.sum())}
    if not sel.any():
        return {**out, "nees_xy_median": None, "nees_xy_mean": None, "nees_median": None}
    xy, full = nees_xy(gt[sel], est[sel], cov[sel]), nees(gt[sel], est[sel], cov[sel])
    return {
        **out,
        "nees_xy_median": float(np.median(xy)),
        "nees_xy_mean": float(np.mean(xy)),
        "nees_median": float(np.median(full)),
    }


def write_frames_csv(path: Path, results: list[FrameResult]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(CSV_HEADER)
        for r in results:
            c = r.cov
            w.writerow(
                [r.frame]
                + [f"{v:.4f}" for v in (r.prior.x, r.prior.y)]
                + [f"{r.prior.yaw:.6f}"]
                + [f"{v:.4f}" for v in (r.est.x, r.est.y)]
                + [f"{r.est.yaw:.6f}"]
                + [f"{v:.6g}" for v in (c[0, 0], c[0, 1], c[0, 2], c[1, 1], c[1, 2], c[2, 2])]
                + [f"{r.confidence:.4f}", f"{r.latency_ms:.2f}"]
            )
