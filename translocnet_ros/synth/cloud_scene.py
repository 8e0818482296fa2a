"""Scenes for the project's LiDAR simulator built from a coloured point cloud instead of a procedural town.

Each point becomes a surfel (a small square in its local tangent plane, normal from the PCA of its
neighbours) with a material guessed from its colour and shape (ground / road / grass / wall / roof / foliage),
so `LidarSimulator` ray casts it with the same beam model, noise, dropout and reflectance table as the
synthetic towns. `write_drive` stores such scans as a KITTI-layout drive that `KittiDrive` reads unchanged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from translocnet_ros.dataset.cloud import ColoredCloud
from translocnet_ros.dataset.kitti import KittiDrive, rescan_drive
from translocnet_ros.geo.pose import rigid_inverse, world_from_base
from translocnet_ros.localization.bev import local_ground
from translocnet_ros.synth.lidar import LidarModel, LidarSimulator
from translocnet_ros.synth.styles import ASPHALT, CANOPY, GRASS, ROOF, SIDEWALK, WALL


def point_normals(xyz: np.ndarray, k: int = 12, size_k: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit normals (N, 3) (pointing up where ambiguous) and planarity (N,) in [0, 1] from the PCA of the
    k nearest neighbours, and each point's distance to its size_k-th neighbour (the local spacing scale)."""
    tree = cKDTree(xyz)
    dist, nb = tree.query(xyz, k=max(k, size_k + 1))
    spacing = dist[:, size_k]
    nb = nb[:, :k]
    p = xyz[nb] - xyz[nb].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", p, p) / k
    evals, evecs = np.linalg.eigh(cov)  # ascending
    normals = evecs[:, :, 0]
    normals *= np.where(normals[:, 2:3] < 0, -1.0, 1.0)
    planarity = (evals[:, 1] - evals[:, 0]) / np.maximum(evals[:, 2], 1e-12)
    return normals, np.clip(planarity, 0, 1), spacing


def surfel_mesh(xyz: np.ndarray, normals: np.ndarray, size_m) -> trimesh.Trimesh:
    """One square of side size_m (scalar or per point) per point, centred on it and perpendicular to its
    normal (2 faces each)."""
    ref = np.where(np.abs(normals[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(normals, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(normals, u)
    h = np.broadcast_to(np.asarray(size_m, float), (len(xyz),))[:, None] / 2
    corners = np.stack(
        [xyz - h * u - h * v, xyz + h * u - h * v, xyz + h * u + h * v, xyz - h * u + h * v], 1
    )
    base = 4 * np.arange(len(xyz))[:, None]
    faces = np.concatenate([base + np.array([0, 1, 2]), base + np.array([0, 2, 3])])
    return trimesh.Trimesh(corners.reshape(-1, 3), faces, process=False)


def guess_materials(
    xyz: np.ndarray, rgb: np.ndarray, normals: np.ndarray, planarity: np.ndarray
) -> np.ndarray:
    """Material id per point from colour and shape, so the reflectance model has something to go on."""
    h = xyz[:, 2] - local_ground(xyz, block_m=8.0)
    c = rgb.astype(np.float32)
    green = (c[:, 1] > c[:, 0] + 6) & (c[:, 1] > c[:, 2] + 6)
    bright = c.mean(axis=1)
    up = np.abs(normals[:, 2])
    mat = np.full(len(xyz), ROOF, np.uint8)
    low = h < 0.4
    mat[low] = np.where(green[low], GRASS, np.where(bright[low] > 120, SIDEWALK, ASPHALT))
    mat[~low & (up < 0.5)] = WALL
    mat[~low & green & (planarity < 0.5)] = CANOPY
    return mat


class _NoGroundRaster:
    """LidarSimulator looks ground materials up in a layout's raster for faces marked 255; surfels never are."""

    def material_at(self, x, y):
        return np.zeros(np.shape(x), np.uint8)


class CloudScene:
    """A coloured cloud as a ray-castable surfel scene with per-face materials."""

    def __init__(self, cloud: ColoredCloud, surfel_scale: float = 1.5, k: int = 12, size_k: int = 8):
        """Surfel side = surfel_scale x the distance to the size_k-th neighbour: closes the gaps of an
        uneven cloud (on helsinki-dev, 1.5 x the 8th neighbour gives as many returns per scan as its scans)."""
        self.origin = cloud.xyz.mean(axis=0).round()  # Embree works in float32: cast near the origin
        xyz = cloud.xyz - self.origin
        normals, planarity, spacing = point_normals(xyz, k, size_k)
        self.mesh = surfel_mesh(xyz, normals, surfel_scale * spacing)
        mat = guess_materials(xyz, cloud.rgb, normals, planarity)
        self.face_material = np.concatenate([mat, mat])
        self.point_material = mat

    def simulator(self, model: LidarModel | None = None) -> LidarSimulator:
        return LidarSimulator(self.mesh, self.face_material, _NoGroundRaster(), model or LidarModel())

    def scan(
        self, sim: LidarSimulator, world_from_sensor: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(N, 4) float32 x, y, z, reflectance in the sensor frame, sensor pose in the cloud's CRS."""
        local = world_from_sensor.copy()
        local[:3, 3] -= self.origin
        return sim.scan(local, [], rng)


def raycast_drive(
    scene: CloudScene,
    drive: KittiDrive,
    poses_xyz_yaw: np.ndarray,
    out: Path,
    seed: int = 0,
    model: LidarModel | None = None,
) -> Path:
    """Re-scan a drive's frames from `scene` at the given base_link poses (N, 4: x, y, z, yaw in the
    scene's CRS; roll and pitch from the drive's OXTS) and write a KITTI-layout drive with the same OXTS,
    timestamps and calibration, so only the scans differ."""
    base_from_velo = rigid_inverse(drive.t_imu_to_velo)
    sim = scene.simulator(model)
    rng = np.random.default_rng(seed)
    pose_of = {f: (o, p) for f, o, p in zip(drive.frames, drive.oxts, poses_xyz_yaw)}

    def scan_of(frame: int) -> np.ndarray:
        oxts, (x, y, z, yaw) = pose_of[frame]
        return scene.scan(sim, world_from_base(x, y, z, oxts[3], oxts[4], yaw) @ base_from_velo, rng)

    return rescan_drive(drive, out, scan_of)
