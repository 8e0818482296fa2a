"""sensor_msgs/PointCloud2 <-> numpy, honouring the message's own layout.

sensor_msgs_py is not installable everywhere this package runs, and LiDAR drivers disagree on field names,
padding and endianness, so the conversion reads the layout from the message (fields, point_step, row_step,
is_bigendian) instead of assuming one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from translocnet_ros.dataset.reflectance import to_reflectance
from translocnet_ros.ros.validate import clip

# sensor_msgs/PointField datatype constants.
INT8, UINT8, INT16, UINT16, INT32, UINT32, FLOAT32, FLOAT64 = range(1, 9)
_DTYPES = {
    INT8: "i1",
    UINT8: "u1",
    INT16: "i2",
    UINT16: "u2",
    INT32: "i4",
    UINT32: "u4",
    FLOAT32: "f4",
    FLOAT64: "f8",
}

INTENSITY_NAMES = ("intensity", "i", "reflectance", "remission")


class CloudFormatError(ValueError):
    """The message cannot be read as a point cloud (bad layout or missing fields)."""


def fields_to_dtype(fields: Sequence, point_step: int, is_bigendian: bool) -> np.dtype:
    """Structured dtype of one point, with the message's byte offsets and point_step as itemsize.

    Fields that overlap or run past point_step mean the declared datatypes do not fit the data (e.g. float64
    declared over float32 values): numpy would read them as finite garbage, so they are refused here."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets, spans = [], [], [], []
    for f in fields:
        if f.datatype not in _DTYPES:
            raise CloudFormatError(f"field '{clip(f.name)}' has unknown PointField datatype {f.datatype}")
        base = np.dtype(order + _DTYPES[f.datatype])
        count = max(int(f.count), 1)
        if f.name in names:
            raise CloudFormatError(f"field '{clip(f.name)}' is declared twice")
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
        spans.append((int(f.offset), int(f.offset) + base.itemsize * count, f.name))
    spans.sort()
    for (_, end, a), (start, _, b) in pairwise(spans):
        if start < end:
            raise CloudFormatError(
                f"fields '{clip(a)}' and '{clip(b)}' overlap: the declared datatypes do not fit the data"
            )
    if spans and (spans[0][0] < 0 or spans[-1][1] > point_step):
        raise CloudFormatError(f"fields do not fit in point_step={point_step}")
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})
    except ValueError as exc:
        raise CloudFormatError(f"fields do not fit in point_step={point_step}: {exc}") from exc


def cloud_view(msg) -> np.ndarray:
    """Structured view (height, width) of the message's own buffer: row padding skipped, nothing copied."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    dtype = fields_to_dtype(msg.fields, point_step, bool(msg.is_bigendian))
    if height * width == 0:
        return np.zeros((0, 0), dtype=dtype)
    if row_step < width * point_step:
        raise CloudFormatError(f"row_step {row_step} < width {width} * point_step {point_step}")
    buf = np.frombuffer(msg.data, dtype=np.uint8)
    if buf.size != height * row_step:
        raise CloudFormatError(
            f"data has {buf.size} bytes but height {height} * row_step {row_step} = {height * row_step}: "
            "the declared layout does not fit the data"
        )
    return np.ndarray((height, width), dtype=dtype, buffer=buf, strides=(row_step, point_step))


def cloud_to_array(msg) -> np.ndarray:
    """Structured array of shape (height * width,), row padding (row_step) removed."""
    return cloud_view(msg).reshape(-1)


def subsample_index(n: int, max_points: int) -> np.ndarray | None:
    """Evenly spread indices of at most max_points out of n (None: keep all). Even spacing keeps every
    ring and sector of a sweep, and is deterministic."""
    if max_points <= 0 or n <= max_points:
        return None
    return np.linspace(0, n - 1, max_points).astype(np.int64)


@dataclass(frozen=True)
class XyziCloud:
    """Finite points within range as float32 (N, 4): x, y, z, intensity (0 where the cloud has none)."""

    points: np.ndarray
    dropped_nonfinite: int
    intensity_field: str | None
    total_points: int = 0  # in the message, before subsampling
    beyond_range: int = 0  # finite points farther than max_range_m (dropped)
    intensity_divisor: float = 1.0  # the driver's intensities were divided by this onto 0..1


MAX_BEYOND_RANGE = 0.01  # a sensor never reports more than this fraction of points beyond its range


def cloud_to_xyzi(
    msg, max_points: int = 0, max_range_m: float = np.inf, intensity_full_scale: float = 0.0
) -> XyziCloud:
    """x, y, z and intensity of every finite point within `max_range_m`, whatever the driver's field layout;
    clouds larger than `max_points` are subsampled first, so a huge cloud never gets a full-size copy.
    A cloud with more than 1% of its finite points beyond range is refused: wrong datatypes or endianness
    decode to values no sensor produces. Intensities go onto 0..1 (`intensity_full_scale`, 0 = detected per
    scan; dataset/reflectance.py)."""
    names = [f.name for f in msg.fields]
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise CloudFormatError(f"PointCloud2 lacks field(s) {missing}; has {[clip(n) for n in names][:12]}")
    counts = {f.name: int(f.count) for f in msg.fields}
    bad = [n for n in ("x", "y", "z") if counts[n] != 1]
    if bad:
        raise CloudFormatError(f"field(s) {bad} have PointField count {[counts[n] for n in bad]} (need 1)")
    view = cloud_view(msg)
    total = view.size
    idx = subsample_index(total, max_points)
    arr = view.reshape(-1) if idx is None else view[idx // view.shape[1], idx % view.shape[1]]
    inten = next((n for n in INTENSITY_NAMES if n in names and counts[n] == 1), None)
    out = np.empty((arr.shape[0], 4), dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32's range becomes inf: dropped
        for i, name in enumerate(("x", "y", "z")):
            out[:, i] = arr[name]
        out[:, 3] = arr[inten] if inten else 0.0
    finite = np.isfinite(out[:, :3]).all(axis=1)
    out[~np.isfinite(out[:, 3]), 3] = 0.0
    out = out[finite]
    inside = (np.abs(out[:, :3]) <= max_range_m).all(axis=1)
    beyond = int((~inside).sum())
    if beyond > MAX_BEYOND_RANGE * max(len(out), 1):
        raise CloudFormatError(
            f"{beyond} of {len(out)} finite points lie beyond max_range_m {max_range_m:g} m: "
            "wrong datatype or endianness, or a corrupt sensor"
        )
    points, divisor = to_reflectance(out[inside], intensity_full_scale)
    return XyziCloud(points, int((~finite).sum()), inten, total, beyond, divisor)


def array_to_cloud(
    points: np.ndarray,
    frame_id: str,
    stamp=None,
    field_names: Sequence[str] = ("x", "y", "z", "intensity"),
):
    """PointCloud2 (float32 fields, little-endian, dense unless NaN present) from an (N, K) array."""
    from sensor_msgs.msg import PointCloud2, PointField

    pts = np.ascontiguousarray(points, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] != len(field_names):
        raise ValueError(f"expected (N, {len(field_names)}) points, got {pts.shape}")
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height, msg.width = 1, pts.shape[0]
    msg.fields = [
        PointField(name=n, offset=4 * i, datatype=FLOAT32, count=1) for i, n in enumerate(field_names)
    ]
    msg.is_bigendian = False
    msg.point_step = 4 * len(field_names)
    msg.row_step = msg.point_step * pts.shape[0]
    msg.is_dense = bool(np.isfinite(pts).all())
    msg.data = pts.tobytes()
    return msg
