"""The one shape imagery takes inside the engine: a north-up metric patch in the map CRS.

Every consumer (baseline, model, node, plots) asks a source for imagery the same way: a centre in the map
CRS, a size in metres and a resolution. Sources reproject and resample, so callers never deal with a file's
CRS, a tile pyramid or overviews.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from affine import Affine


@dataclass(frozen=True)
class GeoPatch:
    """image (H, W, 3) uint8, north-up; transform maps (col, row) of pixel corners to map x, y."""

    image: np.ndarray
    valid: np.ndarray
    transform: Affine
    crs: object
    reason: str = ""

    @property
    def m_per_px(self) -> float:
        return float(self.transform.a)


def patch_transform(cx: float, cy: float, size_px: int, m_per_px: float) -> Affine:
    """Geotransform of a square north-up patch centred on (cx, cy): the centre lies on the corner shared by
    the four middle pixels when size_px is even, on the middle pixel's centre when odd."""
    half = size_px * m_per_px / 2.0
    return Affine(m_per_px, 0.0, cx - half, 0.0, -m_per_px, cy + half)
