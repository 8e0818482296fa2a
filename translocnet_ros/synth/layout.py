"""2-D town layout: road graph, ground materials, buildings, trees, cars, poles and fences.

Everything is in town-local metres (origin at the south-west corner, x east, y north); the writer places the
town in a real projected CRS. One seeded generator drives every random choice, so a seed is a town.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import numpy as np

from translocnet_ros.synth.styles import (
    ASPHALT,
    DIRT,
    GRASS,
    GRAVEL,
    GROUND_MATERIAL,
    MARKING,
    PAVEMENT,
    SIDEWALK,
    TownStyle,
)

GROUND_RES = 0.2  # m per cell of the ground-material raster


@dataclass
class Road:
    a: int  # node indices
    b: int
    width: float


class RoadSegment(NamedTuple):
    """A road's geometry for drawing along it: ends, unit direction, left normal, length."""

    road: Road
    p: np.ndarray
    q: np.ndarray
    u: np.ndarray
    nrm: np.ndarray
    length: float


@dataclass
class Building:
    corners: np.ndarray  # (4, 2) rectangle, counter-clockwise
    height: float
    pitched: bool
    ridge_along_long_side: bool
    color: tuple[int, int, int]
    kind: str = "house"  # house / slab / block (a wing of a courtyard block) / hall
    hip: bool = False  # pitched roof hipped at both ends instead of gabled


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
    where: str = "both"  # both / ortho / lidar: parked cars come and go between the flight and the drive;
    # companion: a vehicle driving right beside the ego car (LiDAR only)


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
    hedges: list[Box2] = field(default_factory=list)
    furniture: list[Box2] = field(default_factory=list)  # bollards, bins, benches, sign posts, cabinets
    bushes: list[Tree] = field(default_factory=list)
    lots: list[np.ndarray] = field(default_factory=list)  # parking-lot rectangles (4, 2)
    bends: set[int] = field(default_factory=set)  # road nodes that only bend a street (no crossing)
    slope: tuple[float, float] = (0.0, 0.0)
    bumps: tuple[float, float, float] = (0.0, 300.0, 0.0)  # amplitude, wavelength, phase

    def road_segments(self, min_length_m: float = 1.0) -> Iterator[RoadSegment]:
        """Every road at least min_length_m long, with its direction and normal."""
        for r in self.roads:
            p, q = self.nodes[r.a], self.nodes[r.b]
            d = q - p
            length = float(np.linalg.norm(d))
            if length >= min_length_m:
                yield RoadSegment(r, p, q, d / length, np.array([-d[1], d[0]]) / length, length)

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
        self.hedges = clear(self.hedges, lambda o: o.length / 2)
        self.furniture = clear(self.furniture, lambda o: o.length / 2)
        self.trees = clear(self.trees, lambda o: 0.3)
        self.bushes = clear(self.bushes, lambda o: o.radius)

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
    """Town metres -> ground-raster pixel coordinates (x right, y down) for cv2, fixed-point 4 bits; cv2 puts
    integer coordinates on cell centres, so cell (r, c) covers what `Layout.material_at` reads there."""
    out = np.stack([pts[..., 0] / GROUND_RES - 0.5, layout_n - pts[..., 1] / GROUND_RES - 0.5], axis=-1)
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
    return bend_roads(nodes, roads, style.curve_prob, rng)


def bend_roads(nodes: np.ndarray, roads: list[Road], prob: float, rng, pieces: int = 6):
    """Curved streets: some roads become a bow or an S through `pieces - 1` new bend nodes."""
    nodes = list(nodes)
    out, bends = [], set()
    for r in roads:
        p, q = nodes[r.a], nodes[r.b]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 40 or rng.random() >= prob:
            out.append(r)
            continue
        nrm = np.array([-d[1], d[0]]) / length
        amp = rng.uniform(0.06, 0.16) * length * rng.choice([-1, 1])
        waves = 1 if rng.random() < 0.6 else 2
        prev = r.a
        for k in range(1, pieces):
            t = k / pieces
            nodes.append(p + d * t + nrm * amp * np.sin(np.pi * waves * t))
            bends.add(len(nodes) - 1)
            out.append(Road(prev, len(nodes) - 1, r.width))
            prev = len(nodes) - 1
        out.append(Road(prev, r.b, r.width))
    return np.array(nodes), out, bends


def paint_ground(style: TownStyle, size_m: float, nodes, roads, rng, bends=frozenset()) -> np.ndarray:
    n = int(round(size_m / GROUND_RES))
    g = np.full((n, n), GROUND_MATERIAL[style.ground], np.uint8)
    marked_from = rng.uniform(6.5, 12.0)  # residential streets often carry no lane markings
    if style.sidewalk_m > 0:
        for r in roads:
            _line(g, nodes[r.a], nodes[r.b], r.width + 2 * style.sidewalk_m, SIDEWALK)
    for r in roads:
        _line(g, nodes[r.a], nodes[r.b], r.width, ASPHALT)
    for r in roads:
        p, q = nodes[r.a], nodes[r.b]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 1 or r.width < marked_from:
            continue
        u, nrm = d / length, np.array([-d[1], d[0]]) / length
        # dashed centre line, kept clear of the intersections (not of the bends of a curved street)
        t0 = 0.0 if r.a in bends else r.width
        t1 = length if r.b in bends else length - r.width
        for t in np.arange(t0, t1, 6.0):
            _line(g, p + u * t, p + u * min(t + 3.0, t1), 0.15, MARKING)
        # solid edge lines
        e0 = 0.0 if r.a in bends else r.width / 2
        e1 = 0.0 if r.b in bends else r.width / 2
        for side in (-1, 1):
            off = nrm * side * (r.width / 2 - 0.4)
            _line(g, p + u * e0 + off, q - u * e1 + off, 0.15, MARKING)
        # zebra crossing at some ends
        for end, sgn, node in ((p, 1, r.a), (q, -1, r.b)):
            if node in bends:
                continue
            if rng.random() < 0.3:
                base = end + sgn * u * (r.width * 0.75 + style.sidewalk_m)
                for k in np.arange(-r.width / 2 + 0.5, r.width / 2 - 0.5, 1.0):
                    _line(g, base + nrm * k - u * 1.5, base + nrm * k + u * 1.5, 0.5, MARKING)
    return g


def blocked_mask(ground: np.ndarray) -> np.ndarray:
    """Cells where nothing may be built: roads, sidewalks, markings."""
    return np.isin(ground, (ASPHALT, MARKING, SIDEWALK, GRAVEL)).astype(np.uint8)


def _grid_poly(corners: np.ndarray, n: int, coarse: float) -> np.ndarray:
    return np.round(np.stack([corners[:, 0], n - corners[:, 1]], -1) / coarse).astype(np.int32)


def _building_plan(style: TownStyle, x, y, yaw, rng, scale: float = 1.0):
    """What to try at (x, y): a list of (corners, height, pitched, ridge_along_long, kind) plus the outer
    rectangle that must be free. Houses, long apartment slabs or halls."""
    u = rng.random()
    if u < style.slab_prob and scale == 1.0:
        length, width = rng.uniform(45, 110), rng.uniform(10, 15)
        corners = rect_corners(x, y, yaw, length, width)
        h = float(np.exp(rng.uniform(np.log(9), np.log(30))))
        return [(corners, h, bool(rng.random() < 0.25), True, "slab")], corners
    length, width = sorted(rng.uniform(*style.building_size_m, size=2) * scale, reverse=True)
    corners = rect_corners(x, y, yaw, length, width)
    h = float(np.exp(rng.uniform(*np.log(style.building_height_m))))
    kind = "hall" if length > 28 else "house"
    pitched = bool(rng.random() < style.pitched_prob)
    plans = [(corners, h, pitched, bool(rng.random() < 0.8), kind)]
    if rng.random() < 0.35:  # L- or T-shaped: a lower wing on one long side
        ax, ay = np.array([np.cos(yaw), np.sin(yaw)]), np.array([-np.sin(yaw), np.cos(yaw)])
        wl, wd = length * rng.uniform(0.3, 0.6), width * rng.uniform(0.4, 0.9)
        side = rng.choice([-1.0, 1.0])
        along = rng.choice([-1.0, 0.0, 1.0]) * (length - wl) / 2
        c = np.array([x, y]) + ax * along + ay * side * (width / 2 + wd / 2 - 0.1)
        wing = rect_corners(*c, yaw, wl, wd + 0.2)
        plans.append((wing, h * rng.uniform(0.6, 1.0), pitched, bool(rng.random() < 0.5), kind))
        centre = np.array([x, y]) + ay * side * wd / 2
        return plans, rect_corners(*centre, yaw, length, width + wd)
    return plans, corners


def place_buildings(layout: Layout, style: TownStyle, rng) -> np.ndarray:
    """Rejection-sample buildings aligned with the nearest road, clear of roads and of each other.

    Returns the 1 m occupancy grid (row 0 = north) that later placements must avoid."""
    coarse = 1.0  # m per cell of the occupancy check
    n = int(layout.size_m / coarse)
    f = int(round(coarse / GROUND_RES))
    road = blocked_mask(layout.ground)[: n * f, : n * f].reshape(n, f, n, f).max(axis=(1, 3))
    occupied = road.copy()
    roads = layout.roads
    seg_a = np.array([layout.nodes[r.a] for r in roads])
    seg_b = np.array([layout.nodes[r.b] for r in roads])
    if style.courtyard_prob > 0:
        courtyard_blocks(layout, road, occupied, style, rng)
    attempts = int(style.building_fill * layout.size_m**2 / 100)
    for attempt in range(int(attempts * 1.5)):
        scale = 1.0 if attempt < attempts else 0.5  # then infill: smaller buildings in the gaps
        x, y = rng.uniform(0, layout.size_m, size=2)
        d = seg_b - seg_a
        t = np.clip(np.einsum("ij,ij->i", [x, y] - seg_a, d) / np.maximum((d**2).sum(1), 1e-9), 0, 1)
        k = int(np.argmin(np.linalg.norm(seg_a + t[:, None] * d - [x, y], axis=1)))
        yaw = float(np.arctan2(d[k, 1], d[k, 0]))
        if rng.random() < 0.5:
            yaw += np.pi / 2
        plans, outer = _building_plan(style, x, y, yaw, rng, scale)
        setback = rng.uniform(*style.setback_m)
        test = np.zeros_like(occupied)
        cv2.fillPoly(test, [_grid_poly(outer, n, coarse)], 1)
        grow = int(np.ceil(setback / coarse))
        test_grown = cv2.dilate(test, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8))
        if (test_grown & road).any() or (test & occupied).any() or test.sum() == 0:
            continue
        taken = np.zeros_like(occupied)
        for corners, h, pitched, ridge_long, kind in plans:
            cv2.fillPoly(taken, [_grid_poly(corners, n, coarse)], 1)
            color = tuple(
                int(np.clip(c + rng.normal(0, 18), 0, 255)) for c in style.roof_colors[rng.integers(0, 4)]
            )
            layout.buildings.append(Building(corners, h, pitched, ridge_long, color, kind))
        occupied |= cv2.dilate(taken, np.ones((3, 3), np.uint8))
    return occupied


def courtyard_blocks(layout: Layout, road: np.ndarray, occupied: np.ndarray, style: TownStyle, rng) -> None:
    """Perimeter blocks: a wing along every street edge of a whole city block, a courtyard inside."""
    n = road.shape[0]
    count, labels, stats, _ = cv2.connectedComponentsWithStats((1 - road).astype(np.uint8), connectivity=4)
    for k in range(1, count):
        area = stats[k, cv2.CC_STAT_AREA]
        if not 1200 < area < 12000 or rng.random() >= style.courtyard_prob:
            continue
        x0, y0, bw, bh = stats[k, :4]
        sub = (labels[y0 : y0 + bh, x0 : x0 + bw] == k).astype(np.uint8)
        contours, _ = cv2.findContours(sub, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        poly = cv2.approxPolyDP(max(contours, key=cv2.contourArea), 3.0, True)[:, 0].astype(float)
        if len(poly) != 4 or not cv2.isContourConvex(poly.astype(np.float32)):
            continue
        poly = np.stack([poly[:, 0] + x0 + 0.5, n - (poly[:, 1] + y0 + 0.5)], -1)  # town metres
        centroid = poly.mean(0)
        setback = rng.uniform(*style.setback_m) + 1.0
        wing = rng.uniform(9, 14)
        wings = []
        for i in range(4):
            p0, p1 = poly[i], poly[(i + 1) % 4]
            d = p1 - p0
            length = float(np.linalg.norm(d)) - 2 * setback
            u = d / (np.linalg.norm(d) + 1e-9)
            nin = np.array([-u[1], u[0]])
            if nin @ (centroid - p0) < 0:
                nin = -nin
            if length < wing * 2:
                wings = []
                break
            mid = (p0 + p1) / 2 + nin * (setback + wing / 2)
            wings.append(rect_corners(*mid, float(np.arctan2(u[1], u[0])), length, wing))
        if not wings:
            continue
        test = np.zeros_like(occupied)
        for c in wings:
            cv2.fillPoly(test, [_grid_poly(c, n, 1.0)], 1)
        if (test & occupied).sum() > 0.01 * test.sum():
            continue
        occupied |= cv2.dilate(test, np.ones((3, 3), np.uint8))
        h0 = float(rng.uniform(12, 26))
        pitched = bool(rng.random() < 0.4)
        gap = rng.random() < 0.5  # a gateway or a missing corner building into the courtyard
        split = rng.random() < 0.6  # one building per plot along the street, or one long block
        for i, c in enumerate(wings):
            if gap and i == 1:
                continue
            for part in _split_wing(c, rng) if split else [c]:
                h = h0 * (rng.uniform(0.75, 1.25) if split else rng.uniform(0.9, 1.1))
                layout.buildings.append(Building(part, h, pitched, True, (128, 128, 128), "block"))


def _split_wing(c: np.ndarray, rng) -> list[np.ndarray]:
    """Cut a wing along its long side into plots 10-30 m wide."""
    e1, e3 = c[1] - c[0], c[3] - c[0]
    if np.linalg.norm(e1) < np.linalg.norm(e3):
        c = np.roll(c, -1, axis=0)
        e1, e3 = c[1] - c[0], c[3] - c[0]
    length = float(np.linalg.norm(e1))
    cuts = [0.0]
    while cuts[-1] < length - 12:
        cuts.append(min(cuts[-1] + rng.uniform(10, 30), length))
    cuts[-1] = length
    u = e1 / length
    return [
        np.array([c[0] + u * a, c[0] + u * b, c[0] + u * b + e3, c[0] + u * a + e3])
        for a, b in itertools.pairwise(cuts)
    ]


def _free_ground(layout: Layout, corners: np.ndarray, base: int) -> bool:
    """True when every ground cell under the polygon is still the town's base material."""
    test = np.zeros_like(layout.ground)
    _poly(test, corners, 1)
    sel = test.astype(bool)
    return bool(sel.any()) and bool((layout.ground[sel] == base).all())


def add_parking_lots(layout: Layout, style: TownStyle, rng) -> None:
    """Asphalt lots beside some roads, painted stalls, mostly full of cars (rows perpendicular to the road)."""
    base = GROUND_MATERIAL[style.ground]
    for r in list(layout.roads):
        if rng.random() >= style.parking_lot_prob:
            continue
        p, q = layout.nodes[r.a], layout.nodes[r.b]
        d = q - p
        length = float(np.linalg.norm(d))
        if length < 40:
            continue
        u, nrm = d / length, np.array([-d[1], d[0]]) / length
        side = rng.choice([-1, 1])
        lot_len = rng.uniform(20, min(70, length - 2 * r.width))
        rows = int(rng.integers(1, 3)) * 2  # stalls on both sides of each aisle
        depth = rows / 2 * (10.0 + 6.0)
        t = rng.uniform(r.width + lot_len / 2, length - r.width - lot_len / 2)
        off = r.width / 2 + style.sidewalk_m + 1.0 + depth / 2
        centre = p + u * t + nrm * side * off
        yaw = float(np.arctan2(u[1], u[0]))
        corners = rect_corners(*centre, yaw, lot_len, depth)
        if not _free_ground(layout, corners, base):
            continue
        _poly(layout.ground, corners, ASPHALT if rng.random() < 0.8 else GRAVEL)
        entry = p + u * t + nrm * side * (r.width / 2)
        _line(layout.ground, entry, entry + nrm * side * (style.sidewalk_m + 1.5), 6.0, ASPHALT)
        layout.lots.append(corners)
        fill = rng.uniform(0.5, 0.97)
        stall = rng.uniform(2.4, 2.8)
        for k in range(rows // 2):
            aisle = centre - nrm * side * depth / 2 + nrm * side * (k * 16.0 + 8.0)
            for sgn in (-1, 1):
                row_c = aisle + nrm * side * sgn * 5.5
                for s_ in np.arange(-lot_len / 2 + stall / 2, lot_len / 2 - stall / 2, stall):
                    a = row_c + u * (s_ - stall / 2)
                    _line(layout.ground, a - nrm * 2.5, a + nrm * 2.5, 0.12, MARKING)
                    if rng.random() < fill:
                        c = row_c + u * s_ + rng.normal(0, 0.15, 2)
                        car_yaw = yaw + np.pi / 2 + (np.pi if rng.random() < 0.5 else 0.0)
                        layout.cars.append(_car(c, car_yaw, rng))


def _car(c, yaw, rng) -> Box2:
    where = rng.choice(["both", "ortho", "lidar"], p=[0.8, 0.1, 0.1])
    van = rng.random() < 0.15  # vans and pick-ups stand taller than cars
    dims = (
        rng.uniform([5.0, 1.95, 1.9], [6.5, 2.1, 2.8])
        if van
        else rng.uniform([4.0, 1.7, 1.4], [5.0, 1.95, 1.7])
    )
    return Box2(
        float(c[0]),
        float(c[1]),
        float(yaw + rng.normal(0, 0.03)),
        *(float(v) for v in dims),
        tuple(int(v) for v in rng.integers(20, 235, 3)),
        str(where),
    )


def add_paths(layout: Layout, style: TownStyle, rng, occupied: np.ndarray) -> None:
    """Winding footpaths (gravel, dirt or asphalt) through the green, never over roads or lots."""
    base = GROUND_MATERIAL[style.ground]
    n_paths = rng.poisson(style.path_count_per_km2 * (layout.size_m / 1000) ** 2)
    mask = np.zeros_like(layout.ground)
    f = int(round(1.0 / GROUND_RES))
    m = occupied.shape[0] * f
    built = np.zeros(layout.ground.shape, bool)
    built[:m, :m] = np.kron(occupied, np.ones((f, f), np.uint8)).astype(bool)
    for _ in range(n_paths):
        p = rng.uniform(0, layout.size_m, 2)
        heading = rng.uniform(0, 2 * np.pi)
        pts = [p]
        for _ in range(int(rng.integers(8, 30))):
            heading += rng.normal(0, 0.25)
            pts.append(pts[-1] + 8.0 * np.array([np.cos(heading), np.sin(heading)]))
        pts = _px(mask.shape[0], np.array(pts))
        width = max(1, int(round(rng.uniform(1.5, 3.5) / GROUND_RES)))
        mat = int(rng.choice([GRAVEL, DIRT, ASPHALT, PAVEMENT]))
        mask[:] = 0
        cv2.polylines(mask, [pts], False, 1, width, cv2.LINE_8, 4)
        layout.ground[(mask > 0) & (layout.ground == base) & ~built] = mat


def place_street_furniture(layout: Layout, style: TownStyle, occ: np.ndarray, rng) -> None:
    """Street trees (rows, some overhanging the road), poles and parked cars along the curbs; park trees;
    driveways, hedges, bushes and fences around lots."""
    n = occ.shape[0]

    def free(x, y):
        c, r = int(x), int(n - y)
        return 0 <= r < n and 0 <= c < n and not occ[r, c]

    spacing = style.street_tree_spacing_m or (rng.uniform(9, 20) if rng.random() < 0.4 else 0.0)
    row_prob = rng.uniform(0.4, 1.0)  # share of streets that have a tree row
    for road in layout.roads:
        p, q = layout.nodes[road.a], layout.nodes[road.b]
        d = q - p
        length = float(np.linalg.norm(d))
        bent = road.a in layout.bends or road.b in layout.bends
        if length < 2 * road.width and not bent:
            continue
        u, nrm = d / length, np.array([-d[1], d[0]]) / length
        yaw = float(np.arctan2(u[1], u[0]))
        t0 = 0.0 if road.a in layout.bends else road.width
        t1 = length if road.b in layout.bends else length - road.width
        trees_here = spacing > 0 and rng.random() < row_prob
        big = rng.uniform(2.2, 5.5)  # a row has one species/age: similar crowns
        for side in (-1, 1):
            curb = road.width / 2
            for t in np.arange(t0, t1, 6.0):
                if rng.random() < style.parked_car_prob:
                    c = p + u * t + nrm * side * (curb - 1.1)
                    layout.cars.append(_car(c, yaw + (np.pi if side < 0 else 0.0), rng))
            if trees_here:
                for t in np.arange(t0 + rng.uniform(0, spacing / 2), t1, spacing):
                    c = p + u * (t + rng.normal(0, 0.5)) + nrm * side * (curb + style.sidewalk_m * 0.6 + 0.4)
                    if free(*c):
                        r = big * rng.uniform(0.8, 1.15)
                        layout.trees.append(
                            Tree(*c, r, 1.7 * r + rng.uniform(3.5, 6.0))
                        )  # crown clears traffic
            for t in np.arange(road.width * 0.7, length, rng.uniform(25, 40)):
                c = p + u * t + nrm * side * (curb + 0.4)
                layout.poles.append(Box2(*c, 0.0, 0.25, 0.25, rng.uniform(6, 9)))
    area_ha = layout.size_m**2 / 1e4
    # park trees in groves: clustered, so open lawns and woods alternate
    groves = rng.uniform(0, layout.size_m, (max(int(area_ha * 0.6), 1), 2))
    for _ in range(int(style.park_trees_per_ha * area_ha * 3)):
        if rng.random() < 0.6:
            x, y = groves[rng.integers(len(groves))] + rng.normal(0, rng.uniform(8, 30), 2)
        else:
            x, y = rng.uniform(0, layout.size_m, 2)
        if free(x, y) and (rng.random() < 0.45 or np.sin(x / 37.0) * np.cos(y / 53.0) > 0.3):
            r = rng.uniform(1.5, 5.0)
            layout.trees.append(Tree(x, y, r, max(r * 1.8, 3.5) + rng.uniform(1.0, 8.0)))
    base = GROUND_MATERIAL[style.ground]
    for b in layout.buildings:
        centre = b.corners.mean(0)
        diag = np.linalg.norm(b.corners[0] - b.corners[2])
        if b.kind == "house" and rng.random() < style.driveway_prob:
            _driveway(layout, b, base, rng)
        grow = 1.0 + rng.uniform(2, 6) / diag * 2
        ring = (b.corners - centre) * grow + centre
        hedge = rng.random() < style.hedge_prob
        fence = not hedge and rng.random() < style.fence_prob
        for i in range(4):
            a, c = ring[i], ring[(i + 1) % 4]
            mid, d = (a + c) / 2, c - a
            if not free(*mid) or rng.random() > 0.75:
                continue
            if hedge:
                layout.hedges.append(
                    Box2(
                        *mid,
                        float(np.arctan2(d[1], d[0])),
                        float(np.linalg.norm(d)),
                        rng.uniform(0.7, 1.6),
                        rng.uniform(0.8, 2.2),
                    )
                )
            elif fence:
                layout.fences.append(
                    Box2(
                        *mid,
                        float(np.arctan2(d[1], d[0])),
                        float(np.linalg.norm(d)),
                        0.08,
                        rng.uniform(1.0, 2.0),
                    )
                )
        # garden trees
        for _ in range(int(rng.poisson(style.park_trees_per_ha / 10)) if b.kind == "house" else 0):
            a = rng.uniform(0, 2 * np.pi)
            x, y = centre + np.array([np.cos(a), np.sin(a)]) * (diag / 2 + rng.uniform(2, 9))
            if free(x, y):
                r = rng.uniform(1.5, 4.0)
                layout.trees.append(Tree(x, y, r, max(r * 1.8, 3.5) + rng.uniform(0.5, 6.0)))
        # bushes along the walls
        for _ in range(int(rng.poisson(style.bushes_per_ha / 10))):
            i = int(rng.integers(4))
            a, c = b.corners[i], b.corners[(i + 1) % 4]
            out = (a + c) / 2 - centre
            out /= np.linalg.norm(out) + 1e-9
            x, y = a + (c - a) * rng.uniform(0.1, 0.9) + out * rng.uniform(1.2, 3.0)
            if free(x, y):
                r = rng.uniform(0.6, 1.6)
                layout.bushes.append(Tree(x, y, r, rng.uniform(0.8, 2.2)))
    for _ in range(int(style.bushes_per_ha * area_ha)):
        x, y = rng.uniform(0, layout.size_m, 2)
        if free(x, y):
            r = rng.uniform(0.5, 1.8)
            layout.bushes.append(Tree(x, y, r, rng.uniform(0.7, 2.5)))
    # street edges: hedges, fences or low walls behind the sidewalk, bollards, bins, signs and benches on it
    for road, p, _, u, nrm, length in layout.road_segments(min_length_m=10.0):
        yaw = float(np.arctan2(u[1], u[0]))
        for side in (-1, 1):
            edge = rng.choice(["hedge", "fence", "none"], p=[style.hedge_prob, 0.25, 0.75 - style.hedge_prob])
            back = road.width / 2 + style.sidewalk_m + rng.uniform(0.6, 1.5)
            for t in np.arange(rng.uniform(0, 4), length, 4.0) if edge != "none" else []:
                m = p + u * (t + 2.0) + nrm * side * back
                if free(*m) and rng.random() < 0.85:
                    if edge == "hedge":
                        layout.hedges.append(Box2(*m, yaw, 4.0, rng.uniform(0.7, 1.4), rng.uniform(0.8, 1.9)))
                    else:
                        layout.fences.append(Box2(*m, yaw, 4.0, 0.12, rng.uniform(0.6, 1.6)))
            for t in np.arange(rng.uniform(0, 10), length, rng.uniform(6, 20)):
                m = p + u * t + nrm * side * (road.width / 2 + rng.uniform(0.3, max(style.sidewalk_m, 0.6)))
                if rng.random() < 0.6:
                    w, h = rng.uniform(0.25, 0.7), rng.uniform(0.5, 1.3)
                    layout.furniture.append(Box2(*m, yaw, rng.uniform(0.25, 1.8), w, h))


def _driveway(layout: Layout, b: Building, base: int, rng) -> None:
    """Paved strip from the house to the nearest road, sometimes with a car on it."""
    centre = b.corners.mean(0)
    seg_a = np.array([layout.nodes[r.a] for r in layout.roads])
    seg_b = np.array([layout.nodes[r.b] for r in layout.roads])
    d = seg_b - seg_a
    t = np.clip(np.einsum("ij,ij->i", centre - seg_a, d) / np.maximum((d**2).sum(1), 1e-9), 0, 1)
    foot = seg_a + t[:, None] * d
    k = int(np.argmin(np.linalg.norm(foot - centre, axis=1)))
    to_road = foot[k] - centre
    dist = float(np.linalg.norm(to_road))
    if dist > 45 or dist < 1:
        return
    u = to_road / dist
    half = np.abs((b.corners - centre) @ u).max()
    start = centre + u * half * 0.6 + np.array([-u[1], u[0]]) * rng.uniform(-0.3, 0.3) * half
    end = start + u * (dist - half * 0.6 - layout.roads[k].width / 2 + 0.5)
    mask = np.zeros_like(layout.ground)
    _line(mask, start, end, rng.uniform(2.8, 4.5), 1)
    mat = int(rng.choice([PAVEMENT, GRAVEL, ASPHALT]))
    layout.ground[(mask > 0) & (layout.ground == base)] = mat
    free_len = dist - half - layout.roads[k].width / 2
    if free_len > 7 and rng.random() < 0.45:
        c = centre + u * (half + 3.0)
        layout.cars.append(_car(c, float(np.arctan2(u[1], u[0])), rng))


def generate_layout(style: TownStyle, size_m: float, rng: np.random.Generator) -> Layout:
    nodes, roads, bends = make_road_graph(style, size_m, rng)
    ground = paint_ground(style, size_m, nodes, roads, rng, bends)
    layout = Layout(size_m, nodes, roads, ground, bends=bends)
    layout.slope = tuple(float(v) for v in rng.uniform(-0.02, 0.02, 2))
    layout.bumps = (
        float(rng.uniform(0, 1.5)),
        float(rng.uniform(200, 600)),
        float(rng.uniform(0, 2 * np.pi)),
    )
    add_parking_lots(layout, style, rng)
    occupied = place_buildings(layout, style, rng)
    place_street_furniture(layout, style, occupied, rng)
    add_paths(layout, style, rng, occupied)
    for b in layout.buildings:
        b.hip = bool(b.pitched and b.kind != "block" and rng.random() < 0.3)
    if style.ground != "grass":
        add_green(layout, style, rng, occupied)
    return layout


def add_green(layout: Layout, style: TownStyle, rng, occupied: np.ndarray) -> None:
    """Lawns and planted strips in paved towns (courtyards, squares, verges), with trees and bushes on them."""
    base = GROUND_MATERIAL[style.ground]
    n = occupied.shape[0]
    for _ in range(rng.poisson(rng.uniform(60, 160) * (layout.size_m / 1000) ** 2)):
        c = rng.uniform(0, layout.size_m, 2)
        r = rect_corners(*c, rng.uniform(0, np.pi), rng.uniform(8, 50), rng.uniform(6, 35))
        mask = np.zeros_like(layout.ground)
        _poly(mask, r, 1)
        sel = (mask > 0) & (layout.ground == base)
        layout.ground[sel] = GRASS
        for _ in range(int(rng.poisson(sel.sum() * GROUND_RES**2 / 150))):
            x, y = c + rng.normal(0, 6, 2)
            col, row = int(x), int(n - y)
            if 0 <= row < n and 0 <= col < n and not occupied[row, col]:
                rad = rng.uniform(1.5, 4.5)
                layout.trees.append(Tree(x, y, rad, 1.7 * rad + rng.uniform(1.0, 6.0)))
        for _ in range(int(rng.poisson(sel.sum() * GROUND_RES**2 / 60))):
            x, y = c + rng.normal(0, 8, 2)
            col, row = int(x), int(n - y)
            if 0 <= row < n and 0 <= col < n and not occupied[row, col]:
                layout.bushes.append(Tree(x, y, rng.uniform(0.5, 1.5), rng.uniform(0.7, 2.0)))
