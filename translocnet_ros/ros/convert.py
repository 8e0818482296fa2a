"""Message <-> engine conversions (poses, covariances, transforms, stamps, images, diagnostics)."""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped, TransformStamped
from sensor_msgs.msg import Image

from translocnet_ros.geo.pose import Pose2D, quaternion_to_yaw, yaw_to_quaternion
from translocnet_ros.geo.tf_tree import matrix_to_quat

_IDX = (0, 1, 5)  # x, y, yaw inside ROS's 6x6 (x, y, z, roll, pitch, yaw) covariance


def stamp_to_sec(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def sec_to_stamp(t: float) -> Time:
    sec = int(np.floor(t))
    return Time(sec=sec, nanosec=min(int(round((t - sec) * 1e9)), 999_999_999))


def pose_msg(
    pose: Pose2D, cov3: np.ndarray, frame_id: str, stamp: Time, z: float = 0.0
) -> PoseWithCovarianceStamped:
    msg = PoseWithCovarianceStamped()
    msg.header.frame_id, msg.header.stamp = frame_id, stamp
    p = msg.pose.pose
    p.position.x, p.position.y, p.position.z = float(pose.x), float(pose.y), float(z)
    p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w = yaw_to_quaternion(pose.yaw)
    cov = np.zeros((6, 6))
    cov[np.ix_(_IDX, _IDX)] = cov3
    cov[2, 2] = cov[3, 3] = cov[4, 4] = 1e6  # z, roll, pitch: not estimated
    msg.pose.covariance = [float(v) for v in cov.ravel()]
    return msg


def pose_from_msg(msg: PoseWithCovarianceStamped) -> tuple[Pose2D, np.ndarray]:
    p = msg.pose.pose
    yaw = quaternion_to_yaw(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w)
    cov = np.asarray(msg.pose.covariance, float).reshape(6, 6)[np.ix_(_IDX, _IDX)]
    return Pose2D(p.position.x, p.position.y, yaw), cov


def transform_msg(parent: str, child: str, m: np.ndarray, stamp: Time) -> TransformStamped:
    t = TransformStamped()
    t.header.frame_id, t.child_frame_id, t.header.stamp = parent, child, stamp
    t.transform.translation.x, t.transform.translation.y, t.transform.translation.z = (
        float(v) for v in m[:3, 3]
    )
    q = matrix_to_quat(m[:3, :3])
    r = t.transform.rotation
    r.x, r.y, r.z, r.w = (float(v) for v in q)
    return t


def pose2d_to_matrix(p: Pose2D) -> np.ndarray:
    m = np.eye(4)
    m[:2, :2] = p.matrix()[:2, :2]
    m[:2, 3] = p.x, p.y
    return m


def matrix_to_pose2d(m: np.ndarray) -> Pose2D:
    return Pose2D(float(m[0, 3]), float(m[1, 3]), float(np.arctan2(m[1, 0], m[0, 0])))


def likelihood_image(lik: np.ndarray, frame_id: str, stamp: Time) -> Image:
    """mono8, north-up, brightest = most likely (for RViz / Foxglove)."""
    v = np.nan_to_num(np.asarray(lik, float), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
    v = np.rint(255 * v / max(v.max(), 1e-12)).astype(np.uint8)  # the most likely cell is 255, not 254
    img = Image()
    img.header.frame_id, img.header.stamp = frame_id, stamp
    img.height, img.width = v.shape
    img.encoding, img.is_bigendian, img.step = "mono8", 0, v.shape[1]
    img.data = v.tobytes()
    return img


def diagnostic_status(
    name: str, hardware_id: str, level: int, message: str, values: dict
) -> DiagnosticStatus:
    s = DiagnosticStatus()
    s.name, s.hardware_id, s.level, s.message = name, hardware_id, bytes([level]), message
    s.values = [KeyValue(key=k, value=str(v)) for k, v in values.items()]
    return s
