"""XYZ / TMS tile servers (TiTiler, MapProxy, GeoServer, commercial layers; http(s) or file://) as a patch
source: tiles are fetched concurrently with timeouts and retries, cached, mosaicked in EPSG:3857 and
reprojected into a north-up patch of the map CRS. A missing, slow or corrupt tile becomes masked pixels and
a reason in the patch, never an exception.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.request
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from affine import Affine
from pyproj import CRS, Transformer
from rasterio.enums import Resampling
from rasterio.warp import reproject

from translocnet_ros.imagery.cache import DiskCache, LruCache
from translocnet_ros.imagery.patch import GeoPatch, patch_transform
from translocnet_ros.imagery.webmercator import (
    tile_bounds,
    tile_resolution,
    tiles_covering,
    tms_y,
    zoom_for_resolution,
)

log = logging.getLogger(__name__)
WEB_MERCATOR = CRS.from_epsg(3857)


@dataclass(frozen=True)
class Tile:
    """RGB pixels and a validity mask (alpha > 0), or none of them and the reason why."""

    rgb: np.ndarray | None
    valid: np.ndarray | None
    reason: str = ""


class XyzTileSource:
    def __init__(
        self,
        url_template: str,
        map_crs,
        tms: bool = False,
        tile_size: int = 256,
        max_zoom: int = 20,
        timeout_s: float = 2.0,
        retries: int = 2,
        workers: int = 8,
        memory_tiles: int = 1024,
        disk_cache: str | Path | None = None,
    ):
        if not all(k in url_template for k in ("{z}", "{x}", "{y}")):
            raise ValueError(f"tile URL template needs {{z}}, {{x}} and {{y}}: {url_template}")
        self.url_template, self.tms, self.tile_size, self.max_zoom = url_template, tms, tile_size, max_zoom
        self.resized_tiles = 0
        self.timeout_s, self.retries = timeout_s, retries
        self.crs = CRS.from_user_input(map_crs)
        self._to_3857 = Transformer.from_crs(self.crs, WEB_MERCATOR, always_xy=True)
        self._to_geo = Transformer.from_crs(self.crs, self.crs.geodetic_crs, always_xy=True)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tiles")
        self._memory = LruCache(memory_tiles)
        self._disk = DiskCache(disk_cache) if disk_cache else None
        self._inflight: dict[tuple[int, int, int], Future] = {}

    # ---- fetching -----------------------------------------------------------------------------------------
    def url(self, z: int, x: int, y: int) -> str:
        return self.url_template.format(z=z, x=x, y=tms_y(z, y) if self.tms else y)

    def _download(self, z: int, x: int, y: int) -> tuple[bytes | None, str]:
        url = self.url(z, x, y)
        reason = ""
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(url, timeout=self.timeout_s) as resp:
                    return resp.read(), ""
            except urllib.error.HTTPError as exc:
                if exc.code in (404, 204):  # no tile there: not worth a retry
                    return None, f"HTTP {exc.code}"
                reason = f"HTTP {exc.code}"
            except (urllib.error.URLError, TimeoutError, OSError) as exc:
                reason = f"{type(getattr(exc, 'reason', exc)).__name__}: {getattr(exc, 'reason', exc)}"
            if attempt < self.retries:
                time.sleep(0.05 * 2**attempt)
        return None, reason

    def _decode(self, data: bytes) -> Tile:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim not in (2, 3):
            return Tile(None, None, "undecodable image")
        if img.ndim == 2:
            img = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
        valid = img[..., 3] > 0 if img.shape[2] == 4 else np.ones(img.shape[:2], bool)
        rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
        if rgb.shape[:2] != (self.tile_size, self.tile_size):
            self.resized_tiles += 1  # the server does not serve what was asked: callers report it
            rgb = cv2.resize(rgb, (self.tile_size, self.tile_size), interpolation=cv2.INTER_LINEAR)
            valid = (
                cv2.resize(valid.astype(np.uint8), (self.tile_size,) * 2, interpolation=cv2.INTER_NEAREST) > 0
            )
        return Tile(rgb, valid)

    def _fetch(self, key: tuple[int, int, int]) -> Tile:
        tile = self._memory.get(key)
        if tile is not None:
            return tile
        data = self._disk.get(*key) if self._disk else None
        from_disk = data is not None
        reason = ""
        if data is None:
            data, reason = self._download(*key)
        tile = self._decode(data) if data is not None else Tile(None, None, reason)
        if tile.rgb is not None or reason.startswith("HTTP 404"):
            self._memory.put(key, tile)  # remember real tiles and real holes, not transient failures
            if self._disk and tile.rgb is not None and not from_disk:
                self._disk.put(*key, data)
        return tile

    def _submit(self, key) -> Future:
        fut = self._inflight.get(key)
        if fut is None or fut.done():
            if len(self._inflight) > 256:  # forget finished fetches: the caches hold their results
                self._inflight = {k: f for k, f in self._inflight.items() if not f.done()}
            fut = self._pool.submit(self._fetch, key)
            self._inflight[key] = fut
        return fut

    # ---- geometry -----------------------------------------------------------------------------------------
    def _plan(self, cx: float, cy: float, size_m: float, m_per_px: float):
        """Zoom and tile ranges for a square map-CRS patch."""
        half = size_m / 2
        edge = np.linspace(-half, half, 9)
        ex = np.concatenate([edge, edge, np.full(9, -half), np.full(9, half)]) + cx
        ey = np.concatenate([np.full(9, -half), np.full(9, half), edge, edge]) + cy
        mx, my = self._to_3857.transform(ex, ey)
        _lon, lat = self._to_geo.transform(cx, cy)
        # a ground metre is 1 / cos(lat) EPSG:3857 metres; the map CRS's own scale error is negligible here
        z = zoom_for_resolution(m_per_px / np.cos(np.radians(lat)), self.tile_size, self.max_zoom)
        return z, tiles_covering((mx.min(), my.min(), mx.max(), my.max()), z)

    def prefetch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> int:
        """Start fetching (without waiting) the tiles a later patch() there will need; returns how many."""
        z, (x0, x1, y0, y1) = self._plan(cx, cy, size_m, m_per_px)
        keys = [(z, x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)]
        for k in keys:
            self._submit(k)
        return len(keys)

    def patch(self, cx: float, cy: float, size_m: float, m_per_px: float) -> GeoPatch:
        n = int(round(size_m / m_per_px))
        dst_t = patch_transform(cx, cy, n, m_per_px)
        z, (x0, x1, y0, y1) = self._plan(cx, cy, size_m, m_per_px)
        keys = [(z, x, y) for y in range(y0, y1 + 1) for x in range(x0, x1 + 1)]
        futures = {k: self._submit(k) for k in keys}
        wait(futures.values(), timeout=(self.timeout_s + 0.5) * (self.retries + 1))
        ts = self.tile_size
        mosaic = np.zeros(((y1 - y0 + 1) * ts, (x1 - x0 + 1) * ts, 3), np.uint8)
        mask = np.zeros(mosaic.shape[:2], np.uint8)
        problems: dict[str, int] = {}
        for (_, tx, ty), fut in futures.items():
            tile = fut.result() if fut.done() else Tile(None, None, "timed out")
            if tile.rgb is None:
                problems[tile.reason] = problems.get(tile.reason, 0) + 1
                continue
            r, c = (ty - y0) * ts, (tx - x0) * ts
            mosaic[r : r + ts, c : c + ts] = tile.rgb
            mask[r : r + ts, c : c + ts] = tile.valid
        left, _, _, top = tile_bounds(z, x0, y0)
        res = tile_resolution(z, ts)
        src_t = Affine(res, 0, left, 0, -res, top)
        out = np.zeros((3, n, n), np.uint8)
        valid = np.zeros((n, n), np.uint8)
        common = dict(src_transform=src_t, src_crs=WEB_MERCATOR, dst_transform=dst_t, dst_crs=self.crs)
        reproject(mosaic.transpose(2, 0, 1), out, resampling=Resampling.bilinear, **common)
        # a patch pixel is valid only if all of its neighbourhood came from real tiles
        eroded = cv2.erode(mask, np.ones((3, 3), np.uint8))
        reproject(eroded, valid, resampling=Resampling.nearest, **common)
        reason = ""
        if problems:
            reason = (
                f"{sum(problems.values())} of {len(keys)} tiles missing at zoom {z} ("
                + ", ".join(f"{k or 'unknown'}: {v}" for k, v in sorted(problems.items()))
                + ")"
            )
            log.warning("%s", reason)
        elif not valid.all():
            reason = f"{100 * (1 - (valid > 0).mean()):.0f}% of the patch has no imagery (transparent tiles)"
        return GeoPatch(np.ascontiguousarray(out.transpose(1, 2, 0)), valid > 0, dst_t, self.crs, reason)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
