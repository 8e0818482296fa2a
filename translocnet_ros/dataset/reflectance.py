"""LiDAR intensity onto the 0..1 reflectance scale the model and NCC were made for (KITTI's).

Drivers disagree: KITTI raw and kitti2bag give 0..1, the Velodyne, Hesai and Livox ROS drivers 0..255 (8-bit
calibrated reflectivity), Ouster signal counts in the thousands. The BEV's ground-reflectance channel takes the
values as they come, so a 0..255 scan would feed it values up to 255 times beyond anything in training and
quietly spoil the match. Every reader (KITTI .bin, PointCloud2 from the node or a bag) passes its scans here.
"""

from __future__ import annotations

import numpy as np

EIGHT_BIT = 255.0


def intensity_divisor(intensity: np.ndarray, full_scale: float = 0.0) -> float:
    """What to divide a scan's intensities by. `full_scale` > 0: that (the sensor's documented maximum). Auto
    (0): 1 when the 99th percentile is within 0..1 (already reflectance), 255 when no value exceeds 255 (an 8-bit
    driver), else the 99th percentile (counts without a fixed maximum)."""
    if full_scale > 0:
        return float(full_scale)
    finite = np.isfinite(intensity)
    top = float(np.max(intensity, initial=0.0, where=finite))
    if top <= 1.0:  # the common case, without a quantile
        return 1.0
    p99 = float(np.quantile(intensity[finite], 0.99))
    if p99 <= 1.0:
        return 1.0
    return EIGHT_BIT if top <= EIGHT_BIT else p99


def to_reflectance(points: np.ndarray, full_scale: float = 0.0) -> tuple[np.ndarray, float]:
    """(N, 4) x, y, z, intensity -> the same with intensity on 0..1 (clipped, as in training), and the divisor
    used. A scan already on 0..1 is returned as it is, uncopied."""
    divisor = intensity_divisor(points[:, 3], full_scale)
    i = points[:, 3]
    if divisor == 1.0 and np.all((i >= 0.0) & (i <= 1.0) | ~np.isfinite(i)):
        return points, 1.0
    out = points.copy()
    out[:, 3] = np.clip(out[:, 3] / divisor, 0.0, 1.0)
    return out, divisor
