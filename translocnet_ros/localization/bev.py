"""Bird's-eye-view rasters of a LiDAR scan, in a vehicle-centred, vehicle-aligned grid (the classic matcher's).

Convention shared with GeoPatch: continuous pixel (c, r) = (half + u / res, half - v / res) for a point at
(u, v) metres forward/left of the centre (east/north in a GeoPatch), so the centre lies on a pixel corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BevGrid:
    size_px: int
    m_per_px: float

    @property
    def radius_m(self) -> float:
        return self.size_px * self.m_per_px / 2

    def cells(self, uv: np.ndarray):
        """Flat cell index of each point and a mask of points inside the grid."""
        half = self.size_px / 2
        c = np.floor(half + uv[:, 0] / self.m_per_px).astype(np.int64)
        r = np.floor(half - uv[:, 1] / self.m_per_px).astype(np.int64)
        inside = (c >= 0) & (c < self.size_px) & (r >= 0) & (r < self.size_px)
        return r * self.size_px + c, inside


def local_ground(points: np.ndarray, block_m: float = 4.0) -> np.ndarray:
    """Height of the ground under each point: the 5th-percentile z of its block, robust to vehicles and walls.
    Blocks are numbered by one integer key and sorted by (block, z) in one argsort: a row-wise np.unique and a
    two-key lexsort took 10x as long (200 ms of a 2-core scan)."""
    key = np.floor(points[:, :2] / block_m).astype(np.int64)
    key -= key.min(axis=0)
    _, inv, counts = np.unique(
        key[:, 0] * (key[:, 1].max() + 1) + key[:, 1], return_inverse=True, return_counts=True
    )
    z = points[:, 2].astype(np.float64)
    order = np.argsort(inv * (z.max() - z.min() + 1.0) + (z - z.min()))  # by block, then by z within it
    starts = np.cumsum(counts) - counts
    ground = points[order[starts + (counts * 0.05).astype(np.int64)], 2][inv]
    # a block with only wall points has no ground: fall back to the scan's own ground level
    global_ground = np.percentile(points[:, 2], 5)
    return np.where(ground > global_ground + 1.0, global_ground, ground)


@dataclass(frozen=True)
class BevChannels:
    """Per-cell statistics of one scan."""

    structure: np.ndarray  # count of points 0.4-4 m above ground (walls, trunks, cars, poles)
    ground_intensity: np.ndarray  # mean reflectance of ground points (0 where none)
    ground_seen: np.ndarray  # bool: the cell has ground returns
    density: np.ndarray  # count of all points


def rasterize(points: np.ndarray, grid: BevGrid) -> BevChannels:
    """Rasterize a base_link scan in its own frame (u = x forward, v = y left)."""
    pts = points[np.isfinite(points).all(axis=1)]
    n = grid.size_px * grid.size_px
    if len(pts) == 0:
        z = np.zeros((grid.size_px, grid.size_px), np.float32)
        return BevChannels(z, z, z.astype(bool), z)
    h = pts[:, 2] - local_ground(pts)
    idx, inside = grid.cells(pts[:, :2])
    idx, h, refl = idx[inside], h[inside], pts[inside, 3]
    shape = (grid.size_px, grid.size_px)
    density = np.bincount(idx, minlength=n)
    wall = (h > 0.4) & (h < 4.0)
    structure = np.bincount(idx[wall], minlength=n)
    ground = h < 0.25
    gcount = np.bincount(idx[ground], minlength=n)
    gsum = np.bincount(idx[ground], weights=refl[ground], minlength=n)
    return BevChannels(
        structure.reshape(shape).astype(np.float32),
        (gsum / np.maximum(gcount, 1)).reshape(shape).astype(np.float32),
        (gcount > 0).reshape(shape),
        density.reshape(shape).astype(np.float32),
    )
