"""sensor_msgs/PointCloud2 <-> numpy, honouring the message's own layout.

sensor_msgs_py is not installable everywhere this package runs, and LiDAR drivers disagree on field names,
padding and endianness, so the conversion reads the layout from the message (fields, point_step, row_step,
is_bigendian) instead of assuming one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

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
    """Structured dtype of one point, with the message's byte offsets and point_step as itemsize."""
    order = ">" if is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in fields:
        if f.datatype not in _DTYPES:
            raise CloudFormatError(f"field '{f.name}' has unknown PointField datatype {f.datatype}")
        base = np.dtype(order + _DTYPES[f.datatype])
        count = max(int(f.count), 1)
        names.append(f.name)
        formats.append(base if count == 1 else (base, (count,)))
        offsets.append(int(f.offset))
    try:
        return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(point_step)})
    except ValueError as exc:
        raise CloudFormatError(f"fields do not fit in point_step={point_step}: {exc}") from exc


def cloud_to_array(msg) -> np.ndarray:
    """Structured array of shape (height * width,), row padding (row_step) removed."""
    height, width = int(msg.height), int(msg.width)
    point_step, row_step = int(msg.point_step), int(msg.row_step)
    dtype = fields_to_dtype(msg.fields, point_step, bool(msg.is_bigendian))
    if height * width == 0:
        return np.zeros(0, dtype=dtype)
    if row_step < width * point_step:
        raise CloudFormatError(f"row_step {row_step} < width {width} * point_step {point_step}")
    buf = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if buf.size < (height - 1) * row_step + width * point_step:
        raise CloudFormatError(f"data has {buf.size} bytes, layout needs {height * row_step}")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(height, width * point_step), strides=(row_step, 1))
    return np.ascontiguousarray(rows).view(dtype).reshape(-1)


@dataclass(frozen=True)
class XyziCloud:
    """Finite points as float32 (N, 4): x, y, z, intensity (0 where the cloud has no intensity field)."""

    points: np.ndarray
    dropped_nonfinite: int
    intensity_field: str | None


def cloud_to_xyzi(msg) -> XyziCloud:
    """x, y, z and intensity of every finite point, whatever the driver's field layout."""
    names = [f.name for f in msg.fields]
    missing = [n for n in ("x", "y", "z") if n not in names]
    if missing:
        raise CloudFormatError(f"PointCloud2 lacks field(s) {missing}; has {names}")
    arr = cloud_to_array(msg)
    inten = next((n for n in INTENSITY_NAMES if n in names), None)
    out = np.empty((arr.shape[0], 4), dtype=np.float32)
    for i, name in enumerate(("x", "y", "z")):
        out[:, i] = arr[name]
    out[:, 3] = arr[inten] if inten else 0.0
    finite = np.isfinite(out[:, :3]).all(axis=1)
    out[~np.isfinite(out[:, 3]), 3] = 0.0
    return XyziCloud(out[finite], int((~finite).sum()), inten)


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
