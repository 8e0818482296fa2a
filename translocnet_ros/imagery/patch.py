"""The one shape imagery takes inside the engine: a north-up metric patch in the map CRS.

Every consumer (baseline, model, node, plots) asks a source for imagery the same way: a centre in the map
CRS, a size in metres and a resolution. Sources reproject and resample, so callers never deal with a file's
CRS, a tile pyramid or overviews.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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


def equalize(patch: GeoPatch) -> GeoPatch:
    """Each colour channel histogram-equalized over the patch's valid pixels (no-data stays 0): a label-free
    photometric normalization that removes the imagery's own contrast and colour balance (`adapt --equalize`)."""
    valid = patch.valid.astype(bool)
    if not valid.any():
        return patch
    out = np.zeros_like(patch.image)
    for c in range(patch.image.shape[2]):
        channel = patch.image[..., c]
        cdf = np.cumsum(np.bincount(channel[valid], minlength=256)).astype(np.float64)
        lo = cdf[cdf > 0][0]
        lut = np.round(255.0 * (cdf - lo) / max(cdf[-1] - lo, 1.0)).clip(0, 255).astype(np.uint8)
        out[..., c] = np.where(valid, lut[channel], 0)
    return replace(patch, image=out)
