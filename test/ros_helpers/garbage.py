"""Garbage inputs as a hostile or broken sensor sends them (issue 9), built from a real scan so that only the
one defect differs. Shared by the in-process validation test and the live fuzz test."""

from __future__ import annotations

import numpy as np

# kind -> the words the node's reason must contain
CLOUD_KINDS = {
    "600 copies": "too few distinct points",
    "5000 copies": "too few distinct points",
    "20000 copies": "too few distinct points",
    "20000 at origin": "too few distinct points",
    "float64 over float32": "do not fit the data",
    "big-endian flag": "beyond max_range_m",
    "NaN/inf/1e30": "beyond max_range_m",
    "half at 3.4e38": "beyond max_range_m",
    "random bytes": "beyond max_range_m",
    "x count 3": "PointField count",
    "flat": "no height structure",
    "sec -1": "negative",
    "sec -2^31": "negative",
    "now + 3600 s": "in the future",
    "nanosec 2^32-1": "nanosec",
}


def cloud(points, stamp, frame="base_link", fields=("x", "y", "z", "intensity")):
    from translocnet_ros.ros.pointcloud2 import array_to_cloud

    return array_to_cloud(np.asarray(points, np.float32).reshape(-1, len(fields)), frame, stamp, fields)


def garbage_cloud(kind: str, scan: np.ndarray, rng: np.random.Generator, stamp):
    """A PointCloud2 of `kind` (a key of CLOUD_KINDS) stamped `stamp` (builtin_interfaces/Time)."""
    one = np.array([[7.0, -3.0, 1.2, 0.3]], np.float32)
    if kind.endswith("copies"):
        return cloud(np.repeat(one, int(kind.split()[0]), 0), stamp)
    if kind == "20000 at origin":
        return cloud(np.zeros((20000, 4)), stamp)
    if kind == "random bytes":
        msg = cloud(np.zeros((20000, 4)), stamp)
        msg.data = rng.integers(0, 256, 20000 * 16, dtype=np.uint8).tobytes()
        return msg
    pts = scan.copy()
    if kind == "NaN/inf/1e30":
        idx = rng.permutation(len(pts))
        sixth = len(pts) // 6
        pts[idx[:sixth], 0] = np.nan
        pts[idx[sixth : 2 * sixth], 1] = np.inf
        pts[idx[2 * sixth : 3 * sixth], 2] = 1e30
    elif kind == "half at 3.4e38":
        pts[::2, :3] = 3.4e38
    elif kind == "flat":
        pts[:, 2:] = 0.0
    msg = cloud(pts, stamp)
    if kind == "float64 over float32":
        for f in msg.fields:
            f.datatype = 8
    elif kind == "big-endian flag":
        msg.is_bigendian = True
    elif kind == "x count 3":
        msg.fields[0].count = 3
    elif kind == "sec -1":
        msg.header.stamp.sec = -1
    elif kind == "sec -2^31":
        msg.header.stamp.sec = -(2**31)
    elif kind == "now + 3600 s":
        msg.header.stamp.sec += 3600
    elif kind == "nanosec 2^32-1":
        msg.header.stamp.nanosec = 4294967295
    return msg


def bad_initial_pose(rng: np.random.Generator, near_x: float, near_y: float):
    """An /initialpose with a non-finite or absurd position, or a zero quaternion."""
    from geometry_msgs.msg import PoseWithCovarianceStamped

    msg = PoseWithCovarianceStamped()
    msg.header.frame_id = "map"
    p, o = msg.pose.pose.position, msg.pose.pose.orientation
    p.x, p.y, o.w = near_x, near_y, 1.0
    case = rng.integers(4)
    if case == 0:
        p.x = float(rng.choice([np.nan, np.inf, -np.inf]))
    elif case == 1:
        p.y = float(rng.choice([1e30, -1e30, 1e9]))
    elif case == 2:
        o.w = 0.0  # zero quaternion
    else:
        o.z = float("nan")
    return msg


def bad_fix(rng: np.random.Generator):
    """A NavSatFix claiming a fix at an impossible latitude/longitude."""
    from sensor_msgs.msg import NavSatFix

    fix = NavSatFix()
    fix.status.status = fix.status.STATUS_FIX
    fix.latitude, fix.longitude = [(91.0, 24.9), (60.2, 181.0), (1e308, 24.9), (float("nan"), 24.9)][
        rng.integers(4)
    ]
    return fix
