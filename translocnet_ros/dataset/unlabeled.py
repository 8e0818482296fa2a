"""Scans without any pose: what a user has of an area before ground truth exists (for `translocnet adapt`).

Reads point clouds and the sensor's static extrinsics only, never OXTS, GNSS, odometry or /tf poses, so that
whatever consumes them cannot learn from a label.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from translocnet_ros.dataset.kitti import DatasetError, read_calib, read_scan
from translocnet_ros.geo.pose import rigid_inverse, transform_cloud
from translocnet_ros.geo.tf_tree import TransformError, TransformTree

BAG_SUFFIXES = (".bag", ".mcap", ".db3")


def unlabeled_scans(
    path: str | Path, points_topic: str = "/kitti/velo/pointcloud", base_frame: str | None = None
) -> list[np.ndarray]:
    """(N, 4) scans in base_link from a KITTI-layout drive, a folder of KITTI .bin scans, or a bag."""
    path = Path(path)
    if path.suffix in BAG_SUFFIXES or (path.is_dir() and (path / "metadata.yaml").is_file()):
        return bag_scans(path, points_topic, base_frame)
    bins = sorted((path / "velodyne_points" / "data").glob("*.bin")) or sorted(path.glob("*.bin"))
    if not bins:
        raise DatasetError(
            f"{path}: no .bin scans (velodyne_points/data/ or the folder itself) and not a bag"
        )
    calib = next(
        (d / "calib_imu_to_velo.txt" for d in (path, path.parent) if (d / "calib_imu_to_velo.txt").is_file()),
        None,
    )
    to_base = rigid_inverse(read_calib(calib)) if calib is not None else np.eye(4)
    return [transform_cloud(read_scan(b), to_base) for b in bins]


def bag_scans(path: Path, points_topic: str, base_frame: str | None) -> list[np.ndarray]:
    """The scans of one topic, moved into base_frame through /tf_static (kept in their own frame without one)."""
    from rosbags.highlevel import AnyReader

    from translocnet_ros.dataset.bag import add_static_transforms
    from translocnet_ros.ros.pointcloud2 import cloud_to_xyzi

    tree = TransformTree(cache_time_s=1e9)
    clouds = []
    with AnyReader([path]) as reader:
        wanted = [c for c in reader.connections if c.topic in (points_topic, "/tf_static")]
        if not any(c.topic == points_topic for c in wanted):
            raise DatasetError(f"{path}: no topic {points_topic}")
        for conn, _, raw in reader.messages(connections=wanted):
            msg = reader.deserialize(raw, conn.msgtype)
            if conn.topic == "/tf_static":
                add_static_transforms(tree, msg)
            else:
                clouds.append((msg.header.frame_id, cloud_to_xyzi(msg).points))
    scans = []
    for frame, pts in clouds:
        if base_frame is None or base_frame == frame:
            scans.append(pts)
            continue
        try:
            scans.append(transform_cloud(pts, tree.lookup(base_frame, frame, 0.0)))
        except TransformError as exc:
            raise DatasetError(f"{path}: no static transform {frame} -> {base_frame}: {exc}") from exc
    return scans
