"""The contract between callers (node, eval, benchmarks) and localization methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.patch import GeoPatch

MIN_SCAN_POINTS = 500  # fewer points make too sparse a bird's-eye view for either method to match


class ImagerySource(Protocol):
    """Anything that returns north-up metric patches in the map CRS (GeoTIFF, tile server, ...)."""

    def patch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> GeoPatch: ...


@dataclass(frozen=True)
class SearchWindow:
    """The region searched around the prior: +-radius_m along each map axis, +-yaw_range_rad in yaw."""

    radius_m: float = 20.0
    yaw_range_rad: float = np.radians(10.0)

    def covariance(self) -> np.ndarray:
        """(x, y, yaw) covariance of a pose spread evenly over the window: what is known without a match."""
        return np.diag([self.radius_m**2 / 3, self.radius_m**2 / 3, self.yaw_range_rad**2 / 3])

    def yaw_offsets(self, step_rad: float) -> np.ndarray:
        """Yaw hypotheses about the prior's heading, `step_rad` apart, out to the window's edge included (degrees
        converted to radians and back must not lose the outermost one)."""
        n = int(np.floor(self.yaw_range_rad / step_rad + 1e-9))
        return np.arange(-n, n + 1) * step_rad


@dataclass
class Estimate:
    pose: Pose2D
    covariance: np.ndarray  # (3, 3) over x [m], y [m], yaw [rad]
    confidence: float  # in [0, 1]: probability mass near the mode
    likelihood: np.ndarray | None = field(default=None, repr=False)  # (H, W) best over yaw, north-up


@dataclass
class ScoreVolume:
    """A method's unnormalized log-likelihood around a prior, before decoding: logits[k, i, j] scores
    yaw = prior.yaw + yaw_offsets[k] and the vehicle at x = prior.x + (j - centre_px) * m_per_px,
    y = prior.y - (i - centre_px) * m_per_px. Kept separate from decoding so it can be calibrated."""

    logits: np.ndarray  # (K, H, W)
    prior: Pose2D
    yaw_offsets: np.ndarray  # (K,) radians, increasing
    m_per_px: float
    centre_px: float
    # the volumes of the single test-time views when `logits` is their average (V, K, H, W; before any NCC
    # evidence is added to it): where they disagree the average can still be peaked, so the confidence is taken
    # from them (decode.near_mass)
    view_logits: np.ndarray | None = field(default=None, repr=False)

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """Easting of each column (W,) and northing of each row (H,) of the grid."""
        _, ni, nj = self.logits.shape
        return (
            self.prior.x + (np.arange(nj) - self.centre_px) * self.m_per_px,
            self.prior.y - (np.arange(ni) - self.centre_px) * self.m_per_px,
        )

    def cell_of(self, pose: Pose2D) -> tuple[int, int, int] | None:
        """Nearest (k, i, j) cell of a pose; None when it lies outside the volume."""
        nk, ni, nj = self.logits.shape
        j = int(round((pose.x - self.prior.x) / self.m_per_px + self.centre_px))
        i = int(round(self.centre_px - (pose.y - self.prior.y) / self.m_per_px))
        dyaw = wrap_angle(pose.yaw - self.prior.yaw - self.yaw_offsets)
        k = int(np.argmin(np.abs(dyaw)))
        step = np.min(np.diff(self.yaw_offsets)) if nk > 1 else np.inf
        if not (0 <= i < ni and 0 <= j < nj) or abs(dyaw[k]) > 0.5 * step + 1e-9:
            return None
        return k, i, j


class LocalizationError(RuntimeError):
    """The method cannot produce a pose for this input (and says why)."""


class Localizer(Protocol):
    name: str
    device: str

    def localize(
        self, scan: np.ndarray, imagery: ImagerySource, prior: Pose2D, window: SearchWindow
    ) -> Estimate:
        """scan: (N, 4) float32 x, y, z, intensity in base_link."""
        ...
