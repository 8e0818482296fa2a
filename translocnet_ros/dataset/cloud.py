"""Coloured city point clouds (binary PLY, as helsinki-dev's `cloud.ply`) and top-down rasters of them.

`render_top` draws what a perfect nadir camera would see: per pixel, the colour (or height) of the highest
point. Unlike a real orthophoto there is no relief displacement, no facade on one side and no sun: it is the
"true-ortho" against which the real imagery's own effects can be told apart. `shade_height` turns the same
top-down heights into a colour-free, geometry-only picture (hillshade + height).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from scipy import ndimage

_PLY_TYPES = {
    "char": "i1",
    "int8": "i1",
    "uchar": "u1",
    "uint8": "u1",
    "short": "i2",
    "int16": "i2",
    "ushort": "u2",
    "uint16": "u2",
    "int": "i4",
    "int32": "i4",
    "uint": "u4",
    "uint32": "u4",
    "float": "f4",
    "float32": "f4",
    "double": "f8",
    "float64": "f8",
}


class PlyError(ValueError):
    """The file is not a PLY this reader understands (binary, scalar vertex properties x, y, z)."""


@dataclass(frozen=True)
class ColoredCloud:
    xyz: np.ndarray  # (N, 3) float64, metres in the file's CRS (E, N, height)
    rgb: np.ndarray  # (N, 3) uint8; grey 128 where the file has no colour

    def __len__(self) -> int:
        return len(self.xyz)


def read_ply(path: str | Path) -> ColoredCloud:
    """Vertices of a binary (little or big endian) PLY with scalar properties x, y, z [, red, green, blue]."""
    path = Path(path)
    with open(path, "rb") as f:
        if f.readline().strip() != b"ply":
            raise PlyError(f"{path}: not a PLY file")
        fmt, elements, current = None, [], None
        while True:
            line = f.readline()
            if not line:
                raise PlyError(f"{path}: header has no end_header")
            words = line.decode("ascii", "replace").split()
            if not words or words[0] in ("comment", "obj_info"):
                continue
            if words[0] == "end_header":
                break
            if words[0] == "format":
                fmt = words[1]
            elif words[0] == "element":
                current = (words[1], int(words[2]), [])
                elements.append(current)
            elif words[0] == "property":
                if current is None:
                    raise PlyError(f"{path}: property before any element")
                if words[1] == "list":
                    current[2].append((words[-1], None))
                else:
                    if words[1] not in _PLY_TYPES:
                        raise PlyError(f"{path}: unknown property type {words[1]!r}")
                    current[2].append((words[2], _PLY_TYPES[words[1]]))
        endian = {"binary_little_endian": "<", "binary_big_endian": ">"}.get(fmt)
        if endian is None:
            raise PlyError(f"{path}: format {fmt!r} not supported (binary PLY only)")
        if not elements or elements[0][0] != "vertex":
            raise PlyError(f"{path}: the first element must be 'vertex'")
        _, n, props = elements[0]
        if any(t is None for _, t in props):
            raise PlyError(f"{path}: list properties on vertices are not supported")
        dtype = np.dtype([(name, endian + t) for name, t in props])
        data = np.fromfile(f, dtype=dtype, count=n)
    if len(data) < n:
        raise PlyError(f"{path}: truncated ({len(data)} of {n} vertices)")
    names = set(dtype.names)
    if not {"x", "y", "z"} <= names:
        raise PlyError(f"{path}: vertices need x, y, z")
    xyz = np.column_stack([data["x"], data["y"], data["z"]]).astype(np.float64)
    if {"red", "green", "blue"} <= names:
        rgb = np.column_stack([data["red"], data["green"], data["blue"]]).astype(np.uint8)
    else:
        rgb = np.full((n, 3), 128, np.uint8)
    return ColoredCloud(xyz, rgb)


def top_index(xy: np.ndarray, z: np.ndarray, transform: Affine, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) index of the highest point in each pixel of a north-up grid, -1 where no point falls."""
    h, w = shape
    inv = ~transform
    col, row = inv @ (xy[:, 0], xy[:, 1])
    col, row = np.floor(col).astype(np.int64), np.floor(row).astype(np.int64)
    inside = np.flatnonzero((col >= 0) & (col < w) & (row >= 0) & (row < h))
    pix = row[inside] * w + col[inside]
    order = np.lexsort((z[inside], pix))  # by pixel, then height: the last of each pixel is its top
    pix_sorted = pix[order]
    last = np.append(pix_sorted[1:] != pix_sorted[:-1], True)
    out = np.full(h * w, -1, np.int64)
    out[pix_sorted[last]] = inside[order[last]]
    return out.reshape(shape)


@dataclass(frozen=True)
class TopRaster:
    """Top-down rasters of a cloud on a north-up grid."""

    rgb: np.ndarray  # (H, W, 3) uint8, 0 where invalid
    height: np.ndarray  # (H, W) float64 top height, NaN where invalid
    valid: np.ndarray  # (H, W) bool: a point falls in the pixel or a gap of at most max_gap_px was closed
    transform: Affine


def render_top(
    cloud: ColoredCloud, transform: Affine, shape: tuple[int, int], max_gap_px: float = 2.0
) -> TopRaster:
    """Colour and height of the highest point per pixel ("true-ortho"); gaps up to max_gap_px wide inside
    the cloud (sparse facades, point spacing near the pixel size) take their nearest pixel's values."""
    idx = top_index(cloud.xyz[:, :2], cloud.xyz[:, 2], transform, shape)
    hit = idx >= 0
    rgb = np.zeros((*shape, 3), np.uint8)
    height = np.full(shape, np.nan)
    if not hit.any():
        return TopRaster(rgb, height, hit, transform)
    dist, (ii, jj) = ndimage.distance_transform_edt(~hit, return_indices=True)
    valid = dist <= max_gap_px
    src = idx[ii, jj]
    rgb[valid] = cloud.rgb[src[valid]]
    height[valid] = cloud.xyz[src[valid], 2]
    return TopRaster(rgb, height, valid, transform)


def shade_height(
    height: np.ndarray,
    valid: np.ndarray,
    m_per_px: float,
    sun_azimuth_deg: float = 315.0,
    sun_elevation_deg: float = 45.0,
    height_weight: float = 0.5,
) -> np.ndarray:
    """Colour-free picture of a height raster: hillshade blended with the height above the raster's low
    ground (2nd percentile), grey (H, W, 3) uint8, mid-grey where invalid."""
    z = np.where(valid, height, np.nan)
    if not np.isfinite(z).any():
        return np.full((*height.shape, 3), 128, np.uint8)
    ground = np.nanpercentile(z, 2)
    zf = np.where(np.isfinite(z), z, ground)
    gy, gx = np.gradient(zf, m_per_px)  # rows run south: gy is -dz/dnorth
    az, el = np.radians(sun_azimuth_deg), np.radians(sun_elevation_deg)
    sun = np.array([np.sin(az) * np.cos(el), np.cos(az) * np.cos(el), np.sin(el)])  # east, north, up
    n = np.stack([-gx, gy, np.ones_like(zf)], -1)
    n /= np.linalg.norm(n, axis=-1, keepdims=True)
    shade = np.clip(n @ sun, 0, 1)
    rel = np.clip((zf - ground) / 20.0, 0, 1)
    grey = 255 * ((1 - height_weight) * shade + height_weight * rel)
    grey = np.where(valid, grey, 128).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)
