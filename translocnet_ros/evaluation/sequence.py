"""The `sequence` protocol of DESIGN.md §6: a drive in time order through the same Bayes filter the node runs.

The method gets one prior (the first frame's, drawn as in `known`), then only noisy odometry increments between
frames; every frame is scored. Ground truth draws the prior and the odometry, and scores; nothing else.
"""

from __future__ import annotations

import itertools

import numpy as np
from tqdm import tqdm

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.metrics import frame_errors, summarize
from translocnet_ros.evaluation.protocol import (
    PROTOCOLS,
    PUBLISH_CONFIDENCE,
    FrameResult,
    draw_priors,
    estimates,
    score_results,
)
from translocnet_ros.evaluation.robustness import Corruption
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.filter import FilterConfig
from translocnet_ros.localization.fusion import FilteredLocalizer
from translocnet_ros.localization.types import ImagerySource

MAX_GAP_S, MAX_STEP_M = 0.2, 5.0  # consecutive frames of a sequential drive
CONVERGED_FROM = 9  # the `converged` block scores frames from the 10th on
FIX_M, FIX_DEG = 1.0, 2.0  # first_fix_frame: the first frame this close


class SequenceError(ValueError):
    """The sequence protocol cannot run: the frames are not one drive in time order, or the method gives no
    likelihood volume to fuse."""


def check_sequential(times: np.ndarray, xy: np.ndarray, frames: list[int]) -> None:
    """Consecutive frames at most 0.2 s and 5 m apart, times increasing; else a message naming the first gap."""
    dt, ds = np.diff(times), np.hypot(*np.diff(xy, axis=0).T)
    bad = np.flatnonzero((dt <= 0) | (dt > MAX_GAP_S + 1e-3) | (ds > MAX_STEP_M))
    if len(bad):
        b = int(bad[0])
        raise SequenceError(
            f"the sequence protocol needs a drive (consecutive frames <= {MAX_GAP_S} s and <= {MAX_STEP_M} m "
            f"apart), but frames {frames[b]} -> {frames[b + 1]} are {dt[b]:.3f} s and {ds[b]:.1f} m apart "
            f"({len(bad)} such gaps): these poses are independent, use --protocol known or unknown"
        )


def noisy_odometry(gt: list[Pose2D], seed: int = 0) -> list[Pose2D]:
    """Per frame, the SE(2) increment since the previous one in its base_link as a wheel odometry reports it:
    dx, dy x 1.02 + N(0, (0.02 |d| + 0.01 m)^2), dyaw + 0.1 deg per metre + N(0, (0.2 deg)^2). Generator
    default_rng([seed, 1]): independent of the prior's. The first entry is the identity."""
    rng = np.random.default_rng([seed, 1])
    out = [Pose2D(0.0, 0.0, 0.0)]
    for a, b in itertools.pairwise(gt):
        inc = a.inverse().compose(b)
        d = float(np.hypot(inc.x, inc.y))
        n = rng.normal(size=3) * [0.02 * d + 0.01, 0.02 * d + 0.01, np.radians(0.2)]
        out.append(Pose2D(1.02 * inc.x + n[0], 1.02 * inc.y + n[1], inc.yaw + np.radians(0.1) * d + n[2]))
    return out


def run_sequence(
    method,
    drive: KittiDrive,
    imagery: ImagerySource,
    crs,
    seed: int = 0,
    every: int = 1,
    max_frames: int | None = None,
    progress: bool = True,
    filter_config: FilterConfig | None = None,
    corruption: Corruption | None = None,
):
    """Returns (ground truth (N, 3), per-frame results); the prior columns of the results hold dead reckoning."""
    if not hasattr(method, "score_volume"):
        raise SequenceError(
            f"method {method.name} has no likelihood volume to fuse (its dead reckoning is the CSV prior columns)"
        )
    gt = drive.ground_truth(MapFrame.from_any(crs))
    idx = list(range(0, len(drive.frames), max(every, 1)))[: max_frames or None]
    frames = [drive.frames[k] for k in idx]
    check_sequential(drive.timestamps[idx], gt.xy_yaw()[idx, :2], frames)
    poses = [gt.poses[k] for k in idx]
    odometry = noisy_odometry(poses, seed)
    kidnap = None if corruption is None else corruption.kidnap_index
    if kidnap is not None and not 0 < kidnap < len(idx):
        raise SequenceError(f"kidnapping at position {kidnap}: the sequence has positions 1..{len(idx) - 1}")
    if corruption is not None:
        odometry = corruption.odometry(odometry)
    # what the node runs at its default confidence_publish, scans behind the same checks
    engine = FilteredLocalizer(method, filter_config, PUBLISH_CONFIDENCE)
    reckoned = draw_priors(gt.poses, "known", seed)[idx[0]]
    engine.seed(reckoned, PROTOCOLS["known"], "first prior")
    results = []
    for n, frame in enumerate(
        tqdm(frames, desc=f"sequence {method.name}", disable=not progress, unit="frame")
    ):
        if n:
            reckoned = reckoned.compose(odometry[n])
        scan = drive.scan_base(frame) if corruption is None else corruption.scan(n, drive, poses, frames)
        # dead reckoning plays the node's odom -> base_link: the engine takes the increments from it
        step = engine.step(scan, imagery, reckoned)
        est = step.estimate
        results.append(
            FrameResult(
                frame,
                reckoned,
                est.pose,
                est.covariance,
                est.confidence,
                step.latency_ms,
                step.error,
                step.filter_ms,
                step.state,
                step.publish,
            )
        )
    return gt.xy_yaw()[idx], results


def score_sequence(
    gt: np.ndarray, results: list[FrameResult], method, kidnap_index: int | None = None
) -> dict:
    """The §6 summary over every frame, plus `converged` (frames from the 10th on), `first_fix_frame`, the
    filter's own latency per update, divergences, and the recovery after a kidnapping when there was one."""
    summary = score_results(gt, results, method, "sequence")
    est = estimates(results)
    lat = np.array([r.latency_ms for r in results])
    conv = slice(CONVERGED_FROM, None)
    summary["converged"] = (
        summarize(gt[conv], est[conv], lat[conv], method.name, "sequence", method.device)
        if len(results) > CONVERGED_FROM
        else None  # a drive too short to have converged frames
    )
    e = frame_errors(gt, est)
    fixed = (e["position"] <= FIX_M) & (e["yaw_deg"] <= FIX_DEG)
    summary["first_fix_frame"] = results[int(np.argmax(fixed))].frame if fixed.any() else None
    filter_ms = np.array([r.filter_ms for r in results if np.isfinite(r.filter_ms)])
    summary["filter_latency_ms"] = {
        "p50": float(np.percentile(filter_ms, 50)) if len(filter_ms) else None,
        "p95": float(np.percentile(filter_ms, 95)) if len(filter_ms) else None,
    }
    summary["divergences"] = sum(
        b.state == "DIVERGED" and a.state != "DIVERGED" for a, b in itertools.pairwise(results)
    )
    if kidnap_index is not None:
        summary["kidnap"] = recovery(fixed, kidnap_index, results)
    return summary


def recovery(fixed: np.ndarray, start: int, results: list[FrameResult], hold: int = 5) -> dict:
    """Frames from the kidnapping until the estimate is back within 1 m and 2 deg for `hold` frames in a row."""
    for n in range(start, len(fixed) - hold + 1):
        if fixed[n : n + hold].all():
            return {"frame": results[start].frame, "recovered_after_frames": n - start}
    return {"frame": results[start].frame, "recovered_after_frames": None}
