"""Geodetic <-> map-CRS conversion, with the heading correction that a projected grid needs.

GNSS/OXTS headings are measured from true east; the map frame's x-axis is grid east. The two differ by the
meridian convergence (about 1.8 deg in Helsinki in TM35FIN), so a heading cannot be copied across unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pyproj import CRS, Transformer

_STEP_DEG = 1e-5  # finite-difference step for the local grid rotation (about 1 m)


@dataclass(frozen=True)
class MapFrame:
    """A projected CRS used as the ENU-aligned `map` frame (x east, y north, metres)."""

    crs: CRS
    _fwd: Transformer = field(init=False, repr=False, compare=False)
    _inv: Transformer = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        crs = CRS.from_user_input(self.crs)
        if not crs.is_projected:
            raise ValueError(f"map CRS must be projected (metres), got {crs.to_string()}")
        object.__setattr__(self, "crs", crs)
        object.__setattr__(self, "_fwd", Transformer.from_crs(crs.geodetic_crs, crs, always_xy=True))
        object.__setattr__(self, "_inv", Transformer.from_crs(crs, crs.geodetic_crs, always_xy=True))

    @classmethod
    def from_any(cls, crs) -> MapFrame:
        return cls(CRS.from_user_input(crs))

    def to_map(self, lat, lon):
        """(lat, lon) degrees -> (x, y) metres."""
        x, y = self._fwd.transform(np.asarray(lon, float), np.asarray(lat, float))
        return x, y

    def to_latlon(self, x, y):
        """(x, y) metres -> (lat, lon) degrees."""
        lon, lat = self._inv.transform(np.asarray(x, float), np.asarray(y, float))
        return lat, lon

    def convergence(self, lat, lon):
        """Angle (rad, counter-clockwise) from grid north to true north at (lat, lon).

        Computed from the projection itself, so it holds for any projected CRS, not only TM/UTM.
        """
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        x0, y0 = self.to_map(lat, lon)
        x1, y1 = self.to_map(lat + _STEP_DEG, lon)
        return np.arctan2(-(x1 - x0), y1 - y0)

    def true_to_grid_yaw(self, true_yaw, lat, lon):
        """Heading from true east (OXTS) -> yaw from grid east (map frame), both CCW radians."""
        return wrap_angle(np.asarray(true_yaw, float) + self.convergence(lat, lon))

    def grid_to_true_yaw(self, grid_yaw, lat, lon):
        return wrap_angle(np.asarray(grid_yaw, float) - self.convergence(lat, lon))


def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi)."""
    return (np.asarray(a, float) + np.pi) % (2 * np.pi) - np.pi
