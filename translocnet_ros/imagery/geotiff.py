"""Local GeoTIFF / Cloud-Optimized GeoTIFF in any projected CRS: windowed, reprojected reads."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject

from translocnet_ros.imagery.patch import GeoPatch, patch_transform


class GeoTiffSource:
    """Windowed, reprojected reads from a GeoTIFF/COG (overviews used automatically when downsampling)."""

    def __init__(self, path: str | Path, map_crs=None):
        self.path = Path(path)
        self._ds = rasterio.open(self.path)
        if self._ds.crs is None:
            raise ValueError(f"{self.path} has no CRS")
        self.crs = map_crs if map_crs is not None else self._ds.crs
        self._lock = threading.Lock()  # GDAL dataset handles are not thread-safe
        self._to_src = Transformer.from_crs(self.crs, self._ds.crs, always_xy=True)

    @property
    def bounds(self):
        return self._ds.bounds

    @property
    def native_m_per_px(self) -> float:
        return float(abs(self._ds.transform.a))

    def _inside(self, dst_t: Affine, n: int) -> np.ndarray:
        """Which patch pixel centres fall inside the source raster."""
        cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
        x, y = dst_t @ (cols, rows)
        sx, sy = (x, y) if self.crs == self._ds.crs else self._to_src.transform(x, y)
        b = self._ds.bounds
        return (sx >= b.left) & (sx <= b.right) & (sy >= b.bottom) & (sy <= b.top)

    def patch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> GeoPatch:
        n = int(round(size_m / m_per_px))
        dst_t = patch_transform(cx, cy, n, m_per_px)
        bands = min(self._ds.count, 3)
        dst = np.zeros((bands, n, n), dtype=np.uint8)
        resampling = Resampling.average if m_per_px > 1.5 * self.native_m_per_px else Resampling.bilinear
        with self._lock:
            reproject(
                source=rasterio.band(self._ds, list(range(1, bands + 1))),
                destination=dst,
                dst_transform=dst_t,
                dst_crs=self.crs,
                resampling=resampling,
                dst_nodata=0,
            )
        img = np.repeat(dst, 3, axis=0) if bands == 1 else dst
        valid = self._inside(dst_t, n)
        reason = (
            ""
            if valid.all()
            else f"{100 * (1 - valid.mean()):.0f}% of the patch lies outside {self.path.name}"
        )
        return GeoPatch(np.ascontiguousarray(img.transpose(1, 2, 0)), valid, dst_t, self.crs, reason)
