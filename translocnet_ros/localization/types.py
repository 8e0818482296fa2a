"""The contract between callers (node, eval, benchmarks) and localization methods."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.patch import GeoPatch


class ImagerySource(Protocol):
    """Anything that returns north-up metric patches in the map CRS (GeoTIFF, tile server, ...)."""

    def patch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> GeoPatch: ...


@dataclass(frozen=True)
class SearchWindow:
    """The region searched around the prior: +-radius_m along each map axis, +-yaw_range_rad in yaw."""

    radius_m: float = 20.0
    yaw_range_rad: float = np.radians(10.0)


@dataclass
class Estimate:
    pose: Pose2D
    covariance: np.ndarray  # (3, 3) over x [m], y [m], yaw [rad]
    confidence: float  # in [0, 1]: probability mass near the mode
    likelihood: np.ndarray | None = field(default=None, repr=False)  # (H, W) best over yaw, north-up


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
