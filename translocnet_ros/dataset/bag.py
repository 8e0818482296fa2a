"""A kitti2bag-style bag (ROS 1 or ROS 2, read with rosbags) as a drive: scans, extrinsics and ground truth.

Ground truth per scan is the OXTS solution the bag carries: position from the GNSS fix, heading from the IMU
orientation (true heading, counter-clockwise from east), converted like OXTS files with meridian convergence.
The bag's /tf world -> base_link is not used: it is a Mercator pose relative to the first fix. Scans are
expressed in the frame of the IMU messages (imu_link), which is what the ground truth describes: kitti2bag's
own base_link sits 1.4 m behind and 0.93 m below the IMU.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from translocnet_ros.dataset.kitti import DatasetError, GroundTruth
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D, quaternion_to_yaw, transform_cloud
from translocnet_ros.geo.tf_tree import TransformError, TransformTree


def add_static_transforms(tree: TransformTree, msg) -> None:
    """A /tf_static message's transforms into the tree (timeless)."""
    for t in msg.transforms:
        tr, r = t.transform.translation, t.transform.rotation
        tree.set_transform(
            t.header.frame_id, t.child_frame_id, 0.0, [tr.x, tr.y, tr.z], [r.x, r.y, r.z, r.w], static=True
        )


class BagDrive:
    def __init__(
        self,
        path: str | Path,
        points_topic: str = "/kitti/velo/pointcloud",
        fix_topic: str = "/kitti/oxts/gps/fix",
        imu_topic: str = "/kitti/oxts/imu",
        base_frame: str | None = None,
    ):
        from rosbags.highlevel import AnyReader

        from translocnet_ros.ros.pointcloud2 import cloud_to_xyzi

        self.path = Path(path)
        tree = TransformTree(cache_time_s=1e9)
        scans, fixes, imus = [], [], []
        with AnyReader([self.path]) as reader:
            topics = {c.topic for c in reader.connections}
            for needed in (points_topic, fix_topic, imu_topic):
                if needed not in topics:
                    raise DatasetError(f"{self.path}: no topic {needed} (has {sorted(topics)})")
            for conn, stamp_ns, raw in reader.messages():
                msg = reader.deserialize(raw, conn.msgtype)
                if conn.topic == "/tf_static":
                    add_static_transforms(tree, msg)
                elif conn.topic == points_topic:
                    scans.append((stamp_ns * 1e-9, msg.header.frame_id, cloud_to_xyzi(msg).points))
                elif conn.topic == fix_topic:
                    fixes.append((stamp_ns * 1e-9, msg.latitude, msg.longitude, msg.altitude))
                elif conn.topic == imu_topic:
                    base_frame = base_frame or msg.header.frame_id
                    q = msg.orientation
                    imus.append((stamp_ns * 1e-9, quaternion_to_yaw(q.x, q.y, q.z, q.w)))
        if not scans or not fixes or not imus:
            raise DatasetError(f"{self.path}: needs scans, GNSS fixes and IMU messages")
        self._scans = scans
        self._fixes = np.array(fixes)
        self._imus = np.array(imus)
        self._tree, self._base = tree, base_frame
        self.frames = list(range(len(scans)))
        self.timestamps = np.array([s[0] for s in scans])

    def _nearest(self, table: np.ndarray, t: float) -> np.ndarray:
        return table[int(np.argmin(np.abs(table[:, 0] - t)))]

    def ground_truth(self, frame: MapFrame) -> GroundTruth:
        poses, alt = [], []
        for t in self.timestamps:
            _, lat, lon, a = self._nearest(self._fixes, t)
            _, yaw = self._nearest(self._imus, t)
            x, y = frame.to_map(lat, lon)
            poses.append(Pose2D(float(x), float(y), float(frame.true_to_grid_yaw(yaw, lat, lon))))
            alt.append(a)
        return GroundTruth(poses, np.array(alt))

    def scan_base(self, frame: int) -> np.ndarray:
        _, sensor, pts = self._scans[frame]
        try:
            t = self._tree.lookup(self._base, sensor or self._base, 0.0)
        except TransformError as exc:
            raise DatasetError(f"{self.path}: no static transform {sensor} -> {self._base}: {exc}") from exc
        return transform_cloud(pts, t)
