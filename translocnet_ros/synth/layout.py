"""2-D town layout: road graph, ground materials, buildings, trees, cars, poles and fences.

Everything is in town-local metres (origin at the south-west corner, x east, y north); the writer places the
town in a real projected CRS. One seeded generator drives every random choice, so a seed is a town.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from translocnet_ros.synth.styles import (
    ASPHALT,
    GROUND_MATERIAL,
    MARKING,
    SIDEWALK,
    TownStyle,
)

GROUND_RES = 0.2  # m per cell of the ground-material raster


@dataclass
class Road:
    a: int  # node indices
    b: int
    width: float


@dataclass
class Building:
    corners: np.ndarray  # (4, 2) rectangle, counter-clockwise
    height: float
    pitched: bool
    ridge_along_long_side: bool
    color: tuple[int, int, int]


@dataclass
class Tree:
    x: float
    y: float
    radius: float  # canopy radius
    height: float  # canopy top


@dataclass
class Box2:
    """An oriented box standing on the ground: cars, fences, poles."""

    x: float
    y: float
    yaw: float
    length: float
    width: float
    height: float
    color: tuple[int, int, int] = (128, 128, 128)


@dataclass
class Layout:
    size_m: float
    nodes: np.ndarray  # (N, 2)
    roads: list[Road]
    ground: np.ndarray  # (H, W) uint8 material, row 0 = north edge
    buildings: list[Building] = field(default_factory=list)
    trees: list[Tree] = field(default_factory=list)
    cars: list[Box2] = field(default_factory=list)
    poles: list[Box2] = field(default_factory=list)
    fences: list[Box2] = field(default_factory=list)
    slope: tuple[float, float] = (0.0, 0.0)
    bumps: tuple[float, float, float] = (0.0, 300.0, 0.0)  # amplitude, wavelength, phase

    def terrain_z(self, x, y):
        """Ground height (m) at town-local x, y: a gentle slope plus a long-wave undulation."""
        amp, wl, ph = self.bumps
        x, y = np.asarray(x, float), np.asarray(y, float)
        return self.slope[0] * x + self.slope[1] * y + amp * np.sin(2 * np.pi * (x + 0.7 * y) / wl + ph)

    def to_cell(self, x, y):
        """(row, col) float indices into the ground raster."""
        n = self.ground.shape[0]
        return n - np.asarray(y) / GROUND_RES, np.asarray(x) / GROUND_RES

    def material_at(self, x, y):
        r, c = self.to_cell(x, y)
        n = self.ground.shape[0]
        r = np.clip(r.astype(int), 0, n - 1)
        c = np.clip(c.astype(int), 0, n - 1)
        return self.ground[r, c]

    def clear_corridor(self, xy: np.ndarray, radius: float) -> None:
        """Remove objects standing on a driven path (the ego car cannot drive through a parked car)."""

        def clear(items, extent):
            if not items:
                return items
            pos = np.array([[o.x, o.y] for o in items])
            reach = radius + np.array([extent(o) for o in items])
            d = np.min(np.linalg.norm(pos[:, None, :] - xy[None, ::5, :], axis=2), axis=1)
            return [o for o, dd, r in zip(items, d, reach) if dd > r]

        self.cars = clear(self.cars, lambda o: o.length / 2)
        self.poles = clear(self.poles, lambda o: 0.3)
        self.fences = clear(self.fences, lambda o: o.length / 2)
        self.trees = clear(self.trees, lambda o: 0.3)

    def adjacency(self) -> dict[int, list[int]]:
        adj: dict[int, list[int]] = {}
        for r in self.roads:
            adj.setdefault(r.a, []).append(r.b)
            adj.setdefault(r.b, []).append(r.a)
        return adj

    def road_width(self, a: int, b: int) -> float:
        for r in self.roads:
            if {r.a, r.b} == {a, b}:
                return r.width
        raise KeyError((a, b))


def _px(layout_n: int, pts: np.ndarray) -> np.ndarray:
    """Town metres -> ground-raster pixel coordinates (x right, y down) for cv2, fixed-point 4 bits."""
    out = np.stack([pts[..., 0] / GROUND_RES, layout_n - pts[..., 1] / GROUND_RES], axis=-1)
    return np.round(out * 16).astype(np.int32)


def _line(img, p, q, width_m, value):
    n = img.shape[0]
    a, b = _px(n, np.array([p, q]))
    cv2.line(img, tuple(a), tuple(b), int(value), max(1, int(round(width_m / GROUND_RES))), cv2.LINE_8, 4)


def _poly(img, corners, value):
    cv2.fillPoly(img, [_px(img.shape[0], corners)], int(value), cv2.LINE_8, 4)


def rect_corners(x, y, yaw, length, width) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    local = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * [length / 2, width / 2]
    return local @ np.array([[c, s], [-s, c]]) + [x, y]


def make_road_graph(style: TownStyle, size_m: float, rng: np.random.Generator):
    """Jittered lattice of intersections, rotated, with some edges dropped (kept connected)."""
    bx, by = rng.uniform(*style.block_m, size=2)
    theta = rng.uniform(-np.pi / 4, np.pi / 4)
    span = size_m * 1.5
    nx, ny = int(span / bx) + 2, int(span / by) + 2
    gi, gj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    local = np.stack([gi * bx, gj * by], -1).reshape(-1, 2).astype(float)
    local -= local.mean(0)
    local += rng.normal(scale=style.node_jitter * min(bx, by) / 2, size=local.shape)
    c, s = np.cos(theta), np.sin(theta)
    nodes = local @ np.array([[c, s], [-s, c]]) + size_m / 2
    idx = np.arange(nx * ny).reshape(nx, ny)
    edges = [(idx[i, j], idx[i + 1, j]) for i in range(nx - 1) for j in range(ny)]
    edges += [(idx[i, j], idx[i, j + 1]) for i in range(nx) for j in range(ny - 1)]
    keep = []
    for a, b in edges:
        mid = (nodes[a] + nodes[b]) / 2
        if not (-0.3 * size_m < mid[0] < 1.3 * size_m and -0.3 * size_m < mid[1] < 1.3 * size_m):
            continue
        if rng.random() < style.drop_edge_prob:
            continue
        keep.append((a, b))
    arterial = rng.random(len(keep)) < 0.15
    roads = [
        Road(int(a), int(b), float(rng.uniform(*style.road_width_m) * (1.3 if art else 1.0)))
        for (a, b), art in zip(keep, arterial)
    ]
    return nodes, roads


def paint_ground(style: TownStyle, size_m: float, nodes, roads, rng) -> np.ndarray:
    n = int(round(size_m / GROUND_RES))
    g = np.full((n, n), GROUND_MATERIAL[style.ground], np.uint8)
    if style.sidewalk_m > 0:
        for r in roads:
            _line(g, nodes[r.a], nodes[r.b], r.width + 2 * style.sidewalk_m, SIDEWALK)
    for r in roads:
        _line(g, nodes[r.a], nodes[r.b], r.width, ASPHALT)
    for r in roads:
        p, q = nodes[r.a], nodes[r.b]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 1 or r.width < 6.5:
            continue
        u, nrm = d / length, np.array([-d[1], d[0]]) / length
        # dashed centre line, kept clear of the intersections
        for t in np.arange(r.width, length - r.width, 6.0):
            _line(g, p + u * t, p + u * (t + 3.0), 0.15, MARKING)
        # solid edge lines
        for side in (-1, 1):
            off = nrm * side * (r.width / 2 - 0.4)
            _line(g, p + u * r.width / 2 + off, q - u * r.width / 2 + off, 0.15, MARKING)
        # zebra crossing at some ends
        for end, sgn in ((p, 1), (q, -1)):
            if rng.random() < 0.3:
                base = end + sgn * u * (r.width * 0.75 + style.sidewalk_m)
                for k in np.arange(-r.width / 2 + 0.5, r.width / 2 - 0.5, 1.0):
                    _line(g, base + nrm * k - u * 1.5, base + nrm * k + u * 1.5, 0.5, MARKING)
    return g


def blocked_mask(ground: np.ndarray) -> np.ndarray:
    """Cells where nothing may be built: roads, sidewalks, markings."""
    return np.isin(ground, (ASPHALT, MARKING, SIDEWALK)).astype(np.uint8)


def place_buildings(layout: Layout, style: TownStyle, rng) -> np.ndarray:
    """Rejection-sample rectangles aligned with the nearest road, clear of roads and of each other.

    Returns the 1 m occupancy grid (row 0 = north) that later placements must avoid."""
    coarse = 1.0  # m per cell of the occupancy check
    n = int(layout.size_m / coarse)
    f = int(round(coarse / GROUND_RES))
    road = blocked_mask(layout.ground)[: n * f, : n * f].reshape(n, f, n, f).max(axis=(1, 3))
    occupied = road.copy()
    roads = layout.roads
    seg_a = np.array([layout.nodes[r.a] for r in roads])
    seg_b = np.array([layout.nodes[r.b] for r in roads])
    attempts = int(style.building_fill * layout.size_m**2 / 100)
    for _ in range(attempts):
        x, y = rng.uniform(0, layout.size_m, size=2)
        d = seg_b - seg_a
        t = np.clip(np.einsum("ij,ij->i", [x, y] - seg_a, d) / np.maximum((d**2).sum(1), 1e-9), 0, 1)
        k = int(np.argmin(np.linalg.norm(seg_a + t[:, None] * d - [x, y], axis=1)))
        yaw = float(np.arctan2(d[k, 1], d[k, 0]))
        length, width = sorted(rng.uniform(*style.building_size_m, size=2), reverse=True)
        if rng.random() < 0.5:
            yaw += np.pi / 2
        setback = rng.uniform(*style.setback_m)
        corners = rect_corners(x, y, yaw, length, width)
        test = np.zeros_like(occupied)
        cv2.fillPoly(
            test, [np.round(np.stack([corners[:, 0], n - corners[:, 1]], -1) / coarse).astype(np.int32)], 1
        )
        grow = int(np.ceil(setback / coarse))
        test_grown = cv2.dilate(test, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        if (test_grown & road).any() or (test & occupied).any() or test.sum() == 0:
            continue
        occupied |= cv2.dilate(test, np.ones((3, 3), np.uint8))
        h = float(np.exp(rng.uniform(*np.log(style.building_height_m))))
        color = tuple(
            int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in style.roof_colors[rng.integers(0, 4)]
        )
        layout.buildings.append(
            Building(corners, h, bool(rng.random() < style.pitched_prob), bool(rng.random() < 0.8), color)
        )
    return occupied


def place_street_furniture(layout: Layout, style: TownStyle, occ: np.ndarray, rng) -> None:
    """Street trees, poles and parked cars along the curbs; park trees; fences around some lots."""
    n = occ.shape[0]

    def free(x, y):
        c, r = int(x), int(n - y)
        return 0 <= r < n and 0 <= c < n and not occ[r, c]

    for road in layout.roads:
        p, q = layout.nodes[road.a], layout.nodes[road.b]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 2 * road.width:
            continue
        u, nrm = d / length, np.array([-d[1], d[0]]) / length
        yaw = float(np.arctan2(u[1], u[0]))
        for side in (-1, 1):
            curb = road.width / 2
            for t in np.arange(road.width, length - road.width, 6.0):
                if rng.random() < style.parked_car_prob:
                    c = p + u * t + nrm * side * (curb - 1.1)
                    layout.cars.append(
                        Box2(
                            *c,
                            yaw + (np.pi if side < 0 else 0.0),
                            rng.uniform(4.0, 5.0),
                            rng.uniform(1.7, 1.95),
                            rng.uniform(1.4, 1.7),
                            tuple(int(v) for v in rng.integers(20, 235, 3)),
                        )
                    )
            if style.street_tree_spacing_m:
                for t in np.arange(road.width, length - road.width, style.street_tree_spacing_m):
                    c = p + u * (t + rng.normal(0, 1)) + nrm * side * (curb + style.sidewalk_m * 0.6)
                    if free(*c):
                        layout.trees.append(Tree(*c, rng.uniform(2.0, 3.5), rng.uniform(6, 11)))
            for t in np.arange(road.width * 0.7, length, rng.uniform(25, 40)):
                c = p + u * t + nrm * side * (curb + 0.4)
                layout.poles.append(Box2(*c, 0.0, 0.25, 0.25, rng.uniform(6, 9)))
    area_ha = layout.size_m**2 / 1e4
    for _ in range(int(style.park_trees_per_ha * area_ha * 3)):
        x, y = rng.uniform(0, layout.size_m, 2)
        if free(x, y) and (rng.random() < 0.35 or np.sin(x / 37.0) * np.cos(y / 53.0) > 0.3):
            layout.trees.append(Tree(x, y, rng.uniform(2.0, 5.0), rng.uniform(5, 16)))
    for b in layout.buildings:
        if rng.random() < style.fence_prob:
            grow = 1.0 + rng.uniform(2, 5) / np.linalg.norm(b.corners[0] - b.corners[2]) * 2
            ring = (b.corners - b.corners.mean(0)) * grow + b.corners.mean(0)
            for i in range(4):
                a, c = ring[i], ring[(i + 1) % 4]
                mid, d = (a + c) / 2, c - a
                if free(*mid) and rng.random() < 0.75:
                    layout.fences.append(
                        Box2(
                            *mid,
                            float(np.arctan2(d[1], d[0])),
                            float(np.linalg.norm(d)),
                            0.08,
                            rng.uniform(1.0, 2.0),
                        )
                    )


def generate_layout(style: TownStyle, size_m: float, rng: np.random.Generator) -> Layout:
    nodes, roads = make_road_graph(style, size_m, rng)
    ground = paint_ground(style, size_m, nodes, roads, rng)
    layout = Layout(size_m, nodes, roads, ground)
    layout.slope = tuple(float(v) for v in rng.uniform(-0.02, 0.02, 2))
    layout.bumps = (
        float(rng.uniform(0, 1.5)),
        float(rng.uniform(200, 600)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    occupied = place_buildings(layout, style, rng)
    place_street_furniture(layout, style, occupied, rng)
    return layout
