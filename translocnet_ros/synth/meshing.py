"""3-D scene mesh of a layout, with one material id per face, for LiDAR ray casting."""

from __future__ import annotations

import numpy as np
import trimesh

from translocnet_ros.synth.layout import Box2, Layout
from translocnet_ros.synth.styles import CANOPY, CAR, FENCE, HEDGE, POLE, ROOF, SIDEWALK, TRUNK, WALL

_BOX = trimesh.creation.box((1.0, 1.0, 1.0))
_BOX.apply_translation((0, 0, 0.5))  # unit box standing on z = 0
_CYL = trimesh.creation.cylinder(radius=1.0, height=1.0, sections=8)
_CYL.apply_translation((0, 0, 0.5))
_SPHERE = trimesh.creation.icosphere(subdivisions=1)


class MeshBuilder:
    """Accumulates transformed copies of a few primitives; far faster than concatenating trimesh objects."""

    def __init__(self):
        self.vertices: list[np.ndarray] = []
        self.faces: list[np.ndarray] = []
        self.materials: list[np.ndarray] = []
        self._n = 0

    def add(self, vertices: np.ndarray, faces: np.ndarray, material) -> None:
        self.vertices.append(np.asarray(vertices, float))
        self.faces.append(np.asarray(faces) + self._n)
        mat = np.broadcast_to(np.asarray(material, np.uint8), (len(faces),))
        self.materials.append(np.array(mat))
        self._n += len(vertices)

    def add_primitive(self, prim: trimesh.Trimesh, scale, yaw: float, offset, material) -> None:
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
        self.add((prim.vertices * scale) @ rot.T + offset, prim.faces, material)

    def build(self) -> tuple[trimesh.Trimesh, np.ndarray]:
        mesh = trimesh.Trimesh(np.concatenate(self.vertices), np.concatenate(self.faces), process=False)
        return mesh, np.concatenate(self.materials)


def add_box(mb: MeshBuilder, b: Box2, z0: float, material, sink: float = 0.3) -> None:
    mb.add_primitive(_BOX, (b.length, b.width, b.height + sink), b.yaw, (b.x, b.y, z0 - sink), material)


def add_car(mb: MeshBuilder, b: Box2, z0: float) -> None:
    body = Box2(b.x, b.y, b.yaw, b.length, b.width, b.height * 0.55)
    add_box(mb, body, z0 + 0.25, CAR, sink=0.0)
    cabin = Box2(
        b.x - 0.1 * b.length * np.cos(b.yaw),
        b.y - 0.1 * b.length * np.sin(b.yaw),
        b.yaw,
        b.length * 0.55,
        b.width * 0.9,
        b.height * 0.45,
    )
    add_box(mb, cabin, z0 + 0.25 + b.height * 0.55, CAR, sink=0.0)


def terrain_mesh(layout: Layout, step: float = 4.0, margin: float = 150.0):
    xs = np.arange(-margin, layout.size_m + margin + step, step)
    gx, gy = np.meshgrid(xs, xs)
    v = np.stack([gx.ravel(), gy.ravel(), layout.terrain_z(gx, gy).ravel()], -1)
    n = len(xs)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1), indexing="ij")
    a = (i * n + j).ravel()
    faces = np.concatenate([np.stack([a, a + 1, a + n + 1], -1), np.stack([a, a + n + 1, a + n], -1)])
    return v, faces


def building_mesh(mb: MeshBuilder, b, layout: Layout) -> None:
    c = b.corners
    z0 = float(layout.terrain_z(c[:, 0], c[:, 1]).min()) - 0.5
    top = z0 + 0.5 + b.height
    e1, e2 = c[1] - c[0], c[2] - c[1]
    long_first = np.linalg.norm(e1) >= np.linalg.norm(e2)
    walls_top = top - (min(np.linalg.norm(e1), np.linalg.norm(e2)) * 0.35 if b.pitched else 0.0)
    walls_top = max(walls_top, z0 + 2.5)
    bottom = np.column_stack([c, np.full(4, z0)])
    upper = np.column_stack([c, np.full(4, walls_top)])
    v = np.concatenate([bottom, upper])
    side = [[0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    mb.add(v, np.array(side), WALL)
    if not b.pitched:
        mb.add(upper, np.array([[0, 1, 2], [0, 2, 3]]), ROOF)
        return
    # gable roof: ridge parallel to the long side (or the short one), through the centre
    along = e1 if (long_first == b.ridge_along_long_side) else e2
    # ridge ends sit above the midpoints of the two edges perpendicular to `along`
    if along is e1:  # ridge ends above the midpoints of edges 3-0 and 1-2
        roof_v = np.concatenate(
            [upper, [np.append((c[3] + c[0]) / 2, top), np.append((c[1] + c[2]) / 2, top)]]
        )
        faces = [[0, 1, 5], [0, 5, 4], [2, 3, 4], [2, 4, 5], [3, 0, 4], [1, 2, 5]]
    else:  # ridge ends above the midpoints of edges 0-1 and 2-3
        roof_v = np.concatenate(
            [upper, [np.append((c[0] + c[1]) / 2, top), np.append((c[2] + c[3]) / 2, top)]]
        )
        faces = [[1, 2, 5], [1, 5, 4], [3, 0, 4], [3, 4, 5], [0, 1, 4], [2, 3, 5]]
    if b.hip:  # the ridge ends move inwards: the end faces slope like the long ones
        r0, r1 = roof_v[4].copy(), roof_v[5].copy()
        roof_v[4], roof_v[5] = 0.75 * r0 + 0.25 * r1, 0.25 * r0 + 0.75 * r1
    mb.add(roof_v, np.array(faces), ROOF)


def scene_mesh(layout: Layout, sidewalk_m: float) -> tuple[trimesh.Trimesh, np.ndarray]:
    """Static world: terrain (materials come from the ground raster), raised sidewalks, buildings, trees,
    parked cars, poles, fences."""
    mb = MeshBuilder()
    v, f = terrain_mesh(layout)
    mb.add(v, f, 255)  # 255 = look up the ground raster at the hit point
    z = layout.terrain_z
    if sidewalk_m > 0:
        for r, p, q, _, nrm, length in layout.road_segments():
            yaw = float(np.arctan2(q[1] - p[1], q[0] - p[0]))
            for side in (-1, 1):
                m = (p + q) / 2 + nrm * side * (r.width / 2 + sidewalk_m / 2)
                curb = Box2(*m, yaw, max(length - r.width - 2 * sidewalk_m, 0.5), sidewalk_m, 0.15)
                add_box(mb, curb, float(z(*m)), SIDEWALK)
    for b in layout.buildings:
        building_mesh(mb, b, layout)
    for t in layout.trees:
        z0 = float(z(t.x, t.y))
        trunk_h = max(t.height - 1.7 * t.radius, 1.5)
        mb.add_primitive(_CYL, (0.18, 0.18, trunk_h + 0.3), 0.0, (t.x, t.y, z0 - 0.3), TRUNK)
        cz = (trunk_h + t.height) / 2
        mb.add_primitive(
            _SPHERE, (t.radius, t.radius, (t.height - trunk_h) / 2), 0.0, (t.x, t.y, z0 + cz), CANOPY
        )
    for bu in layout.bushes:
        hz = bu.height / 2
        mb.add_primitive(
            _SPHERE, (bu.radius, bu.radius, hz), 0.0, (bu.x, bu.y, float(z(bu.x, bu.y)) + hz * 0.8), CANOPY
        )
    for h in layout.hedges:
        add_box(mb, h, float(z(h.x, h.y)), HEDGE)
    for c in layout.cars:
        if c.where != "ortho":  # parked when the car drove by, gone when the plane flew over (or not)
            add_car(mb, c, float(z(c.x, c.y)))
    for p in layout.poles:
        mb.add_primitive(_CYL, (0.12, 0.12, p.height), 0.0, (p.x, p.y, float(z(p.x, p.y))), POLE)
    for fe in layout.fences:
        add_box(mb, fe, float(z(fe.x, fe.y)), FENCE)
    for o in layout.furniture:
        add_box(mb, o, float(z(o.x, o.y)), POLE)
    return mb.build()
