"""HDL-64E-like LiDAR simulated by ray casting (Embree) against the static scene plus moving cars."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from translocnet_ros.synth.layout import Box2, Layout
from translocnet_ros.synth.meshing import MeshBuilder, add_car
from translocnet_ros.synth.styles import CAR, REFLECTANCE

_REFL_LUT = np.zeros(256, np.float32)
for _m, _r in REFLECTANCE.items():
    _REFL_LUT[_m] = _r


@dataclass(frozen=True)
class LidarModel:
    n_beams: int = 64
    upper_deg: tuple[float, float] = (2.0, -8.33)  # 32 beams, ~1/3 deg apart
    lower_deg: tuple[float, float] = (-8.83, -24.9)  # 32 beams, ~1/2 deg apart
    azimuth_step_deg: float = 0.17
    max_range_m: float = 120.0
    ego_radius_m: float = 2.7  # returns from the ego vehicle are removed, as in KITTI
    range_noise_m: float = 0.02
    dropout: float = 0.08

    def elevations_deg(self) -> np.ndarray:
        half = self.n_beams // 2
        return np.concatenate(
            [np.linspace(*self.upper_deg, half), np.linspace(*self.lower_deg, self.n_beams - half)]
        )

    def directions(self) -> np.ndarray:
        """(beams * azimuths, 3) unit rays in the sensor frame."""
        el = np.radians(self.elevations_deg())
        az = np.radians(np.arange(0.0, 360.0, self.azimuth_step_deg))
        e, a = np.meshgrid(el, az, indexing="ij")
        return np.stack([np.cos(e) * np.cos(a), np.cos(e) * np.sin(a), np.sin(e)], -1).reshape(-1, 3)


class LidarSimulator:
    def __init__(self, mesh: trimesh.Trimesh, face_material: np.ndarray, layout: Layout, model: LidarModel):
        self.mesh, self.face_material, self.layout, self.model = mesh, face_material, layout, model
        self._static = RayMeshIntersector(mesh)
        self._dirs = model.directions()

    def _cast(self, intersector, mesh_normals, materials, origin, dirs):
        tri, ray, loc = intersector.intersects_id(
            np.repeat(origin[None], len(dirs), axis=0), dirs, multiple_hits=False, return_locations=True
        )
        rng = np.full(len(dirs), np.inf)
        mat = np.zeros(len(dirs), np.uint8)
        cos = np.ones(len(dirs))
        rng[ray] = np.linalg.norm(loc - origin, axis=1)
        mat[ray] = materials[tri]
        cos[ray] = np.abs(np.einsum("ij,ij->i", mesh_normals[tri], dirs[ray]))
        return rng, mat, cos

    def scan(self, world_from_sensor: np.ndarray, moving: list[Box2], rng: np.random.Generator) -> np.ndarray:
        """(N, 4) float32 x, y, z, reflectance in the sensor frame."""
        m = self.model
        origin = world_from_sensor[:3, 3]
        dirs = self._dirs @ world_from_sensor[:3, :3].T
        dist, mat, cos = self._cast(self._static, self.mesh.face_normals, self.face_material, origin, dirs)
        near = [b for b in moving if 4.0 < np.hypot(b.x - origin[0], b.y - origin[1]) < m.max_range_m]
        if near:
            mb = MeshBuilder()
            for b in near:
                add_car(mb, b, float(self.layout.terrain_z(b.x, b.y)))
            dyn, dyn_mat = mb.build()
            d2, m2, c2 = self._cast(RayMeshIntersector(dyn), dyn.face_normals, dyn_mat, origin, dirs)
            closer = d2 < dist
            dist[closer], mat[closer], cos[closer] = d2[closer], m2[closer], c2[closer]
        hit = np.isfinite(dist) & (dist <= m.max_range_m) & (dist > m.ego_radius_m)
        hit_world = origin + dirs[hit] * dist[hit, None]
        ground = mat[hit] == 255
        mat_hit = mat[hit].copy()
        mat_hit[ground] = self.layout.material_at(hit_world[ground, 0], hit_world[ground, 1])
        refl = _REFL_LUT[mat_hit] * (0.45 + 0.55 * cos[hit]) + rng.normal(0, 0.03, hit.sum())
        refl[mat_hit == CAR] += (rng.random((mat_hit == CAR).sum()) < 0.03) * 0.6  # plates, lights
        r = dist[hit] + rng.normal(0, m.range_noise_m, hit.sum())
        p_drop = m.dropout + 0.25 * (r / m.max_range_m) ** 2 * (refl < 0.12)
        keep = rng.random(hit.sum()) >= p_drop
        local = self._dirs[hit][keep] * r[keep, None]
        return np.column_stack([local, np.clip(refl[keep], 0, 1)]).astype(np.float32)
