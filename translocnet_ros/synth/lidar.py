"""HDL-64E-like LiDAR simulated by ray casting (Embree) against the static scene plus moving cars."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trimesh
from trimesh.ray.ray_pyembree import RayMeshIntersector

from translocnet_ros.synth.layout import Box2, Layout
from translocnet_ros.synth.meshing import MeshBuilder, add_car
from translocnet_ros.synth.styles import CANOPY, CAR, HEDGE, REFLECTANCE

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
    # sensor variety (defaults: the plain HDL-64E model)
    even_beams: bool = False  # 64 evenly spaced beams instead of the HDL-64E's two blocks
    blind_sectors_deg: tuple[tuple[float, float], ...] = ()  # (centre, width) azimuths blocked by the mount
    ego_box_m: tuple[float, float, float] = (0.0, 0.0, 0.0)  # length, width, x offset of the ego car body
    intensity_gain: float = 1.0
    intensity_offset: float = 0.0
    intensity_gamma: float = 1.0
    intensity_levels: int = 0  # quantization of the reported reflectance (0: none)
    range_falloff: float = 0.0  # uncompensated intensity ~ (10 m / r) ** falloff
    color_tie: float = 0.0  # weight of the surface's visible brightness in the reflectance
    material_gain: dict = field(default_factory=dict)  # material id -> reflectance multiplier
    canopy_depth_m: float = 0.0  # mean depth rays reach into foliage before returning (porous crowns)

    def elevations_deg(self) -> np.ndarray:
        if self.even_beams:  # one evenly spaced fan over the whole field of view
            return np.linspace(self.upper_deg[0], self.lower_deg[1], self.n_beams)
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


def sample_sensor(rng: np.random.Generator) -> LidarModel:
    """One drive's sensor: range, noise, dropout, mount occlusion and an intensity channel that behaves
    like some other sensor's (gain, gamma, quantization, range fall-off, a weak tie to surface colour)."""
    sectors = tuple(
        (float(rng.uniform(0, 360)), float(rng.uniform(3, 25)))
        for _ in range(rng.choice(3, p=[0.5, 0.35, 0.15]))
    )
    return LidarModel(
        max_range_m=float(rng.uniform(50, 120)),
        range_noise_m=float(rng.uniform(0.01, 0.035)),
        dropout=float(rng.uniform(0.03, 0.15)),
        blind_sectors_deg=sectors,
        ego_box_m=(float(rng.uniform(4.2, 5.6)), float(rng.uniform(1.8, 2.3)), float(rng.uniform(-1.2, 0.2)))
        if rng.random() < 0.6
        else (0.0, 0.0, 0.0),
        even_beams=bool(rng.random() < 0.5),
        intensity_gain=float(np.exp(rng.normal(0.35, 0.35))),
        intensity_offset=float(rng.uniform(0.0, 0.12)),
        intensity_gamma=float(np.exp(rng.normal(0, 0.3))),
        intensity_levels=int(rng.choice([0, 0, 255, 100, 64])),
        range_falloff=float(rng.uniform(0.2, 1.0)) if rng.random() < 0.25 else 0.0,
        color_tie=float(rng.uniform(0.0, 0.6)),
        material_gain={m: float(np.exp(rng.normal(0, 0.3))) for m in range(256) if _REFL_LUT[m] > 0},
        canopy_depth_m=float(rng.uniform(0.2, 1.5)),
    )


class LidarSimulator:
    def __init__(
        self,
        mesh: trimesh.Trimesh,
        face_material: np.ndarray,
        layout: Layout,
        model: LidarModel,
        surface_brightness: np.ndarray | None = None,
    ):
        """surface_brightness: (256,) visible brightness 0..1 per material id (the orthophoto's palette)."""
        self.mesh, self.face_material, self.layout = mesh, face_material, layout
        self._static = RayMeshIntersector(mesh)
        self.surface_brightness = surface_brightness
        self.set_model(model)

    def set_model(self, model: LidarModel) -> None:
        self.model = model
        self._dirs = model.directions()
        lut = _REFL_LUT.copy()
        for m, g in model.material_gain.items():
            lut[m] *= g
        if self.surface_brightness is not None and model.color_tie > 0:
            lut = (1 - model.color_tie) * lut + model.color_tie * 0.5 * self.surface_brightness
        self._lut = lut.astype(np.float32)

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
        near = [
            b
            for b in moving
            if (b.where == "companion" or 4.0 < np.hypot(b.x - origin[0], b.y - origin[1]) < m.max_range_m)
        ]
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
        refl = self._lut[mat_hit] * (0.45 + 0.55 * cos[hit]) + rng.normal(0, 0.03, hit.sum())
        refl[mat_hit == CAR] += (rng.random((mat_hit == CAR).sum()) < 0.03) * 0.6  # plates, lights
        r = dist[hit] + rng.normal(0, m.range_noise_m, hit.sum())
        if m.canopy_depth_m > 0:  # foliage is porous: returns come from inside the crown, not its hull
            veg = np.flatnonzero((mat_hit == CANOPY) | (mat_hit == HEDGE))
            r[veg] += rng.exponential(m.canopy_depth_m, len(veg))
        p_drop = m.dropout + 0.25 * (r / m.max_range_m) ** 2 * (refl < 0.12)
        idx = np.flatnonzero((rng.random(hit.sum()) >= p_drop) & (r <= m.max_range_m))
        local = self._dirs[hit][idx] * r[idx, None]
        drop = np.zeros(len(idx), bool)
        if m.blind_sectors_deg:  # the mount (or a roof box, a mast) hides some azimuths
            az = np.degrees(np.arctan2(local[:, 1], local[:, 0]))
            for centre, width in m.blind_sectors_deg:
                drop |= np.abs((az - centre + 180) % 360 - 180) < width / 2
        if m.ego_box_m[0] > 0:  # returns from the ego car's own body, removed as in KITTI
            length, width, dx = m.ego_box_m
            drop |= (
                (np.abs(local[:, 0] - dx) < length / 2)
                & (np.abs(local[:, 1]) < width / 2)
                & (local[:, 2] < 0.2)
            )
        local, keep = local[~drop], idx[~drop]
        out = refl[keep] * m.intensity_gain + m.intensity_offset
        if m.range_falloff > 0:
            out = out * (10.0 / np.maximum(r[keep], 1.0)) ** m.range_falloff
        out = np.clip(out, 0, 1) ** m.intensity_gamma
        if m.intensity_levels:
            out = np.round(out * m.intensity_levels) / m.intensity_levels
        return np.column_stack([local, out]).astype(np.float32)
