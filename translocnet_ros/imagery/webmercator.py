"""Web Mercator (EPSG:3857) tile pyramid arithmetic for XYZ / TMS tile servers."""

from __future__ import annotations

import math

EARTH_RADIUS_M = 6378137.0
ORIGIN_SHIFT_M = math.pi * EARTH_RADIUS_M  # half the world's width in EPSG:3857 metres


def tile_resolution(z: int, tile_size: int = 256) -> float:
    """EPSG:3857 metres per pixel of a tile at zoom z (true ground metres are this times cos(latitude))."""
    return 2 * ORIGIN_SHIFT_M / (tile_size * 2**z)


def mercator_scale_factor(lat_deg: float) -> float:
    """How much Web Mercator stretches distances at a latitude (1 / cos(lat))."""
    return 1.0 / math.cos(math.radians(lat_deg))


def zoom_for_resolution(m_per_px_3857: float, tile_size: int = 256, max_zoom: int = 22) -> int:
    """Coarsest zoom whose pixels are at least as fine as the requested EPSG:3857 resolution."""
    z = math.ceil(math.log2(2 * ORIGIN_SHIFT_M / (tile_size * m_per_px_3857)) - 1e-9)
    return int(min(max(z, 0), max_zoom))


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) in EPSG:3857 of XYZ tile (z, x, y), y counted from the top."""
    size = 2 * ORIGIN_SHIFT_M / 2**z
    left = -ORIGIN_SHIFT_M + x * size
    top = ORIGIN_SHIFT_M - y * size
    return left, top - size, left + size, top


def tiles_covering(bounds: tuple[float, float, float, float], z: int) -> tuple[int, int, int, int]:
    """Inclusive XYZ tile index ranges (x0, x1, y0, y1) covering EPSG:3857 bounds (left, bottom, right, top)."""
    n = 2**z
    size = 2 * ORIGIN_SHIFT_M / n
    left, bottom, right, top = bounds

    def clamp(v):
        return min(max(v, 0), n - 1)

    x0 = clamp(math.floor((left + ORIGIN_SHIFT_M) / size))
    x1 = clamp(math.floor((right + ORIGIN_SHIFT_M) / size - 1e-9))
    y0 = clamp(math.floor((ORIGIN_SHIFT_M - top) / size))
    y1 = clamp(math.floor((ORIGIN_SHIFT_M - bottom) / size - 1e-9))
    return x0, x1, y0, y1


def tms_y(z: int, y: int) -> int:
    """TMS counts tile rows from the bottom; XYZ from the top."""
    return 2**z - 1 - y
