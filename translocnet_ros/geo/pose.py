"""Planar poses and the rigid transforms the localizer composes (map, odom, base_link, sensor)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from translocnet_ros.geo.crs import wrap_angle


@dataclass(frozen=True)
class Pose2D:
    """x, y in metres (map CRS), yaw in radians CCW from map x (east)."""

    x: float
    y: float
    yaw: float

    def matrix(self) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return np.array([[c, -s, self.x], [s, c, self.y], [0.0, 0.0, 1.0]])

    @classmethod
    def from_matrix(cls, m: np.ndarray) -> Pose2D:
        return cls(float(m[0, 2]), float(m[1, 2]), float(np.arctan2(m[1, 0], m[0, 0])))

    def compose(self, other: Pose2D) -> Pose2D:
        """self ∘ other: `other` expressed in self's frame, moved into self's parent frame."""
        return Pose2D.from_matrix(self.matrix() @ other.matrix())

    def inverse(self) -> Pose2D:
        return Pose2D.from_matrix(np.linalg.inv(self.matrix()))

    def transform_points(self, xy: np.ndarray) -> np.ndarray:
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        return xy @ np.array([[c, s], [-s, c]]) + np.array([self.x, self.y])

    def offset(self, dx: float, dy: float, dyaw: float) -> Pose2D:
        """Shift by (dx, dy) along the map axes and rotate by dyaw."""
        return Pose2D(self.x + dx, self.y + dy, float(wrap_angle(self.yaw + dyaw)))


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation about z."""
    return 0.0, 0.0, float(np.sin(yaw / 2)), float(np.cos(yaw / 2))


def quaternion_to_yaw(x: float, y: float, z: float, w: float) -> float:
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


def transform_cloud(points: np.ndarray, t: np.ndarray) -> np.ndarray:
    """(N, 3+) points moved by a 4x4 rigid transform; extra columns (intensity) are kept, float32 out."""
    out = np.array(points, dtype=np.float32)
    out[:, :3] = out[:, :3] @ t[:3, :3].T.astype(np.float32) + t[:3, 3].astype(np.float32)
    return out


def rigid_inverse(t: np.ndarray) -> np.ndarray:
    """Inverse of a 4x4 rigid transform."""
    inv = np.eye(4)
    inv[:3, :3] = t[:3, :3].T
    inv[:3, 3] = -t[:3, :3].T @ t[:3, 3]
    return inv


def world_from_base(x: float, y: float, z: float, roll: float, pitch: float, yaw: float) -> np.ndarray:
    """4x4 base_link pose, rotation Rz(yaw) Ry(pitch) Rx(roll) as OXTS (and the synthetic towns) use."""
    cy, sy, cp, sp, cr, sr = (
        np.cos(yaw),
        np.sin(yaw),
        np.cos(pitch),
        np.sin(pitch),
        np.cos(roll),
        np.sin(roll),
    )
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    t = np.eye(4)
    t[:3, :3] = rz @ ry @ rx
    t[:3, 3] = [x, y, z]
    return t
