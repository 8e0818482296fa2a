"""Is this input like what the model was made for? Support checks around any Localizer.

A learned matcher returns a sharp peak even for a blinded sensor, a flat floor or a blank imagery patch, and
its confidence then means nothing. These checks measure how much the scan and the imagery patch actually
show and refuse (confidence 0, with the reason) what lies outside the range of real drives, so no caller
ever publishes a confident pose from garbage. Thresholds sit far below the synthetic towns and helsinki-dev
scans (see test/test_support.py), far above degenerate input.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.patch import GeoPatch
from translocnet_ros.localization.types import (
    Estimate,
    ImagerySource,
    LocalizationError,
    Localizer,
    ScoreVolume,
    SearchWindow,
)


@dataclass(frozen=True)
class SupportLimits:
    cell_m: float = 0.5  # BEV cell size for counting occupied cells
    radius_m: float = 60.0  # only points this close count (what the model's BEV can see)
    min_occupied_cells: int = 400  # 100 m^2; real HDL-64 sweeps occupy 3,000-13,000 cells of 0.5 m
    min_extent_m: float = 5.0  # 90th percentile of horizontal range (real scans: 10 m and more)
    min_height_spread_m: float = 0.5  # z: 95th minus 5th percentile (walls, trees, cars above the ground)
    min_imagery_valid: float = 0.5  # fraction of the patch with imagery
    min_imagery_std: float = 3.0  # grey-level spread of the patch: below it the patch is blank
    edge_margin_m: float = 1.0  # a mode this close to the search window's edge may lie outside it


@dataclass(frozen=True)
class ScanSupport:
    """What a base_link scan shows: the statistics the limits are checked on."""

    points: int
    occupied_cells: int
    extent_m: float
    height_spread_m: float


def scan_support(points: np.ndarray, limits: SupportLimits) -> ScanSupport:
    xyz = np.asarray(points)[:, :3]
    xyz = xyz[np.isfinite(xyz).all(axis=1)]
    if len(xyz) == 0:
        return ScanSupport(0, 0, 0.0, 0.0)
    rng = np.hypot(xyz[:, 0], xyz[:, 1])
    near = xyz[rng <= limits.radius_m]
    cells = np.unique(np.floor(near[:, :2] / limits.cell_m).astype(np.int64), axis=0)
    z5, z95 = np.percentile(xyz[:, 2], [5, 95])
    return ScanSupport(len(xyz), len(cells), float(np.percentile(rng, 90)), float(z95 - z5))


def scan_problem(points: np.ndarray, limits: SupportLimits) -> str:
    """Why this scan is degenerate, or "" when it looks like a real sweep."""
    s = scan_support(points, limits)
    if s.occupied_cells < limits.min_occupied_cells:
        return (
            f"degenerate scan: {s.occupied_cells} occupied {limits.cell_m:g} m cells "
            f"(< {limits.min_occupied_cells}; too few distinct points)"
        )
    if s.extent_m < limits.min_extent_m:
        return f"degenerate scan: extent {s.extent_m:.1f} m (< {limits.min_extent_m:g} m)"
    if s.height_spread_m < limits.min_height_spread_m:
        return (
            f"degenerate scan: no height structure (z spread {s.height_spread_m:.2f} m "
            f"< {limits.min_height_spread_m:g} m)"
        )
    return ""


def patch_problem(patch: GeoPatch, limits: SupportLimits) -> str:
    """Why this imagery patch cannot be matched, or "". Tile failures are named as such."""
    valid = float(np.mean(patch.valid))
    if valid < limits.min_imagery_valid:
        if "tiles missing" in patch.reason:
            return f"imagery tiles failed: {patch.reason}"
        return f"prior is outside the imagery ({patch.reason or f'{valid:.0%} of the patch has imagery'})"
    grey = patch.image[patch.valid.astype(bool)].astype(np.float32)
    if grey.size and float(grey.std()) < limits.min_imagery_std:
        return f"imagery patch is blank (grey-level spread {grey.std():.1f} < {limits.min_imagery_std:g})"
    return ""


def estimate_problem(est: Estimate, prior: Pose2D, window: SearchWindow, limits: SupportLimits) -> str:
    """Why this estimate cannot be trusted whatever its confidence says, or ""."""
    values = [est.pose.x, est.pose.y, est.pose.yaw, est.confidence]
    if not (np.isfinite(values).all() and np.isfinite(est.covariance).all()):
        return "the method returned a non-finite pose, covariance or confidence"
    if np.linalg.eigvalsh(0.5 * (est.covariance + est.covariance.T)).min() <= 0:
        return "the method returned a covariance that is not positive definite"
    if est.likelihood is not None and not np.isfinite(est.likelihood).all():
        return "the method returned a non-finite likelihood"
    reach = window.radius_m - limits.edge_margin_m
    if max(abs(est.pose.x - prior.x), abs(est.pose.y - prior.y)) > reach:
        return "likelihood peak at the search window's edge (the pose may lie outside the window)"
    return ""


class _CheckedImagery:
    """Imagery source that refuses patches the matcher cannot use, before the method sees them."""

    def __init__(self, source: ImagerySource, limits: SupportLimits):
        self._source, self._limits = source, limits

    def patch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> GeoPatch:
        patch = self._source.patch(cx, cy, size_m, m_per_px)
        problem = patch_problem(patch, self._limits)
        if problem:
            raise LocalizationError(problem)
        return patch


@dataclass
class CheckedEstimate:
    """An estimate whose confidence is capped to 0 when `problem` says why it cannot be trusted."""

    estimate: Estimate
    problem: str


class SupportedLocalizer:
    """A Localizer behind the support checks: degenerate scans and blank or missing imagery raise
    LocalizationError with the reason; an untrustworthy result comes back with confidence 0, a finite
    covariance and likelihood, and the reason."""

    def __init__(self, method: Localizer, limits: SupportLimits | None = None):
        self.method = method
        self.limits = limits or SupportLimits()
        self.name, self.device = method.name, method.device

    @property
    def temperature(self) -> float:
        return getattr(self.method, "temperature", 1.0)

    @property
    def filter_covariance_scale(self) -> float:
        return getattr(self.method, "filter_covariance_scale", 1.0)

    @property
    def filter_yaw_scale(self) -> float:
        return getattr(self.method, "filter_yaw_scale", self.filter_covariance_scale)

    @property
    def calibrated_volumes(self) -> bool:
        return getattr(self.method, "calibrated_volumes", False)

    def score_volume(
        self, scan: np.ndarray, imagery: ImagerySource, prior: Pose2D, window: SearchWindow
    ) -> ScoreVolume:
        """The method's likelihood volume behind the same scan and imagery checks as localize(); a volume that
        is not finite raises LocalizationError too (a filter fuses it, so it must be sound as a whole)."""
        if not hasattr(self.method, "score_volume"):
            raise LocalizationError(f"method {self.name} has no likelihood volume")
        problem = scan_problem(scan, self.limits)
        if problem:
            raise LocalizationError(problem)
        volume = self.method.score_volume(scan, _CheckedImagery(imagery, self.limits), prior, window)
        if not np.isfinite(volume.logits).all():
            raise LocalizationError("the method returned a non-finite likelihood")
        return volume

    def localize(
        self, scan: np.ndarray, imagery: ImagerySource, prior: Pose2D, window: SearchWindow
    ) -> CheckedEstimate:
        problem = scan_problem(scan, self.limits)
        if problem:
            raise LocalizationError(problem)
        est = self.method.localize(scan, _CheckedImagery(imagery, self.limits), prior, window)
        problem = estimate_problem(est, prior, window, self.limits)
        if not problem:
            return CheckedEstimate(est, "")
        lik = (
            None if est.likelihood is None else np.nan_to_num(est.likelihood, nan=0.0, posinf=0.0, neginf=0.0)
        )
        pose = est.pose if np.isfinite([est.pose.x, est.pose.y, est.pose.yaw]).all() else prior
        return CheckedEstimate(
            replace(est, pose=pose, covariance=window.covariance(), confidence=0.0, likelihood=lik), problem
        )
