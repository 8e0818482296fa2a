"""Orthophoto of a layout as an aerial camera would see it, not a re-rendering of LiDAR heights.

The cross-modal gap is built in on purpose: the image is a mosaic of perspective photos, so roofs, canopies,
cars and poles lean away from each photo's nadir and facades show on one side (`appearance.Relief`); tree
canopies hide the ground and cars under them; roofs and ground carry texture the LiDAR never sees (tiles,
gravel, moss, vents, chimneys, skylights, solar panels, worn lawns, patched asphalt, faded markings); sun
shadows fall on the ground; seasons change the vegetation; colours are randomized per material and per image;
the source resolution (0.1-0.6 m) is resampled to the output grid with the blur or aliasing that goes with it,
then sharpened, graded, noised, JPEG-compressed and slightly misregistered (by the writer).
"""

from __future__ import annotations

import itertools

import cv2
import numpy as np

from translocnet_ros.synth.appearance import Look, hsv
from translocnet_ros.synth.layout import GROUND_RES, Building, Layout, rect_corners
from translocnet_ros.synth.styles import ASPHALT, DIRT, GRASS, GRAVEL, MARKING, PAVEMENT, SIDEWALK, TownStyle

GROUND_COLOR_NAME = {  # ground materials -> their entry in the town look's colours
    GRASS: "grass",
    ASPHALT: "asphalt",
    MARKING: "marking",
    SIDEWALK: "sidewalk",
    DIRT: "dirt",
    PAVEMENT: "pavement",
    GRAVEL: "gravel",
}


def _noise(shape, rng, scales=(4, 16, 64), weights=(0.5, 0.3, 0.2)) -> np.ndarray:
    """Zero-mean, unit-ish multi-scale texture."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for s, wt in zip(scales, weights):
        small = rng.normal(size=(max(h // s, 2), max(w // s, 2))).astype(np.float32)
        out += wt * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out


def _circle(n: int = 20) -> np.ndarray:
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([np.cos(a), np.sin(a)], -1)


_UNIT_CIRCLE = _circle()


class OrthoRenderer:
    def __init__(self, layout: Layout, style: TownStyle, look: Look, rng: np.random.Generator):
        self.layout, self.style, self.look, self.rng = layout, style, look, rng
        # finer sources are rendered at 0.25 m (cost); a whole number of pixels spans the town exactly, and no
        # pixel centre falls on a ground-raster cell edge (an even multiple of its cell would put them all there,
        # and every material edge would then snap the same way)
        self.n = int(round(layout.size_m / float(np.clip(look.gsd, 0.25, 0.6))))
        cells = layout.size_m / self.n / GROUND_RES
        self.n += int(abs(cells - round(cells)) < 1e-6 and round(cells) % 2 == 0)
        self.res = layout.size_m / self.n
        self.sun_dir = look.sun_dir
        self.shadow_k = 1.0 / np.tan(look.sun_elev)
        n = self.n
        self.fine = cv2.GaussianBlur(rng.standard_normal((n, n), dtype=np.float32), (0, 0), 0.7)
        self.fine /= self.fine.std() + 1e-6
        px = max(1.0 / self.res, 1.0)
        self.mid = _noise((n, n), rng, scales=(int(2 * px), int(6 * px)), weights=(0.5, 0.5))
        self.coarse = _noise((n, n), rng, scales=(int(20 * px), int(60 * px)), weights=(0.5, 0.5))
        self.coarse2 = _noise((n, n), rng, scales=(int(10 * px), int(35 * px)), weights=(0.5, 0.5))

    # -- drawing helpers -------------------------------------------------------------------------------------
    def to_px(self, pts) -> np.ndarray:
        """Town metres -> cv2 drawing coordinates, where integer coordinates are pixel centres: pixel (r, c)
        covers [c, c + 1] x res east and [n - r - 1, n - r] x res north, as the GeoTIFF's geotransform says."""
        pts = np.asarray(pts, float)
        return np.stack([pts[..., 0] / self.res - 0.5, self.n - pts[..., 1] / self.res - 0.5], -1)

    def px(self, pts) -> np.ndarray:
        return np.round(self.to_px(pts) * 16).astype(np.int32)

    def _fill(self, img, pts, color):
        cv2.fillPoly(
            img, [self.px(pts)], tuple(float(c) for c in np.broadcast_to(color, (3,))), cv2.LINE_AA, 4
        )

    def _line(self, img, p, q, width_m, color):
        a, b = self.px(np.array([p, q]))
        w = max(1, int(round(width_m / self.res)))
        cv2.line(img, tuple(a), tuple(b), tuple(float(c) for c in color), w, cv2.LINE_AA, 4)

    def _tex(self, y0, y1, x0, x1, name):
        amp, (wf, wm, wc) = self.look.texture[name]
        t = 0.6 * wf * self.fine[y0:y1, x0:x1] + wm * self.mid[y0:y1, x0:x1] + wc * self.coarse2[y0:y1, x0:x1]
        return 1.0 + amp * 1.6 * t

    def _paint(self, img, polys, color, tex="roof", alpha=1.0, stripe=None, shade=None, circles=None):
        """Composite a textured, anti-aliased shape (polygons and/or circles, town metres) into img.

        stripe = (direction in town xy, period m, amplitude): roof tiles / metal seams.
        shade = (centre xy, radius m, strength): a crown lit from the sun side."""
        pts_px = [self.to_px(p) for p in polys] + [
            self.to_px(np.array([[cx - r, cy - r], [cx + r, cy + r]])) for cx, cy, r in circles or []
        ]
        allp = np.concatenate([p.reshape(-1, 2) for p in pts_px])
        x0, y0 = np.floor(allp.min(0)).astype(int) - 1
        x1, y1 = np.ceil(allp.max(0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.n), min(y1, self.n)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.float32)
        off = np.array([x0, y0])
        for p in polys:
            cv2.fillPoly(mask, [np.round((self.to_px(p) - off) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, 4)
        for cx, cy, r in circles or []:
            c = (self.to_px(np.array([cx, cy])) - off) * 16
            cv2.circle(
                mask, tuple(np.round(c).astype(int)), int(round(r / self.res * 16)), 1.0, -1, cv2.LINE_AA, 4
            )
        f = self._tex(y0, y1, x0, x1, tex)
        if stripe is not None or shade is not None:
            ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            wx, wy = (xs + 0.5) * self.res, (self.n - ys - 0.5) * self.res
            if stripe is not None:
                d, period, amp = stripe
                f = f * (1 + amp * np.sin(2 * np.pi * (wx * d[0] + wy * d[1]) / period))
            if shade is not None:
                (sx, sy), r, k = shade
                f = f * (1 + k * ((wx - sx) * self.sun_dir[0] + (wy - sy) * self.sun_dir[1]) / r)
        region = img[y0:y1, x0:x1]
        m = (mask * alpha)[..., None]
        region += (np.asarray(color, np.float32) * f[..., None] - region) * m

    # -- ground ----------------------------------------------------------------------------------------------
    def ground(self) -> np.ndarray:
        """Ground materials with per-material colour and texture (look-up tables: whole-image operations)."""
        rng, look, n = self.rng, self.look, self.n
        centres = (np.arange(n) + 0.5) * self.res  # the material under each pixel's centre
        mat = self.layout.material_at(centres[None, :], self.layout.size_m - centres[:, None])
        color = np.zeros((256, 3), np.float32)
        weights = np.zeros((256, 3), np.float32)  # amplitude x (fine, mid, coarse)
        for m, name in GROUND_COLOR_NAME.items():
            color[m] = look.colors[name]
            if name != "marking":
                amp, w = look.texture[name]
                weights[m] = amp * 1.6 * np.asarray(w) * (0.5, 1.0, 1.0)
        w = weights[mat]
        t = 1.0 + w[..., 0] * self.fine + w[..., 1] * self.mid + w[..., 2] * self.coarse
        img = color[mat] * t[..., None]
        # worn lawns and lush patches
        lawn = (mat == GRASS).astype(np.float32)
        if look.season != "snow":
            wear = np.clip((self.coarse2 - rng.uniform(0.6, 1.5)) * 2.0, 0, 1) * (
                rng.uniform(0.2, 0.7) * lawn
            )
            img += (look.colors["grass_worn"].astype(np.float32) - img) * wear[..., None]
            lush = np.clip((self.mid - 1.0) * 1.5, 0, 1) * (0.25 * lawn)
            img *= (1 - lush)[..., None]
        else:  # snow: trodden and thin in places
            thin = np.clip((self.coarse2 - 0.8) * 1.5, 0, 1) * (0.35 * lawn)
            img *= (1 - thin)[..., None]
        self._road_wear(img, mat)
        # markings fade: blend back towards the asphalt
        mk = mat == MARKING
        fade = np.clip(rng.uniform(0.5, 0.95) + 0.25 * self.fine[mk], 0.2, 1.0)
        img[mk] = look.colors["asphalt"] + (img[mk] - look.colors["asphalt"]) * fade[:, None]
        return img

    def _road_wear(self, img, mat) -> None:
        """Asphalt repairs, manholes, wheel tracks and curbs, only where there is asphalt."""
        rng, lay = self.rng, self.layout
        layer = np.ones((self.n, self.n), np.float32)
        for r, p, q, u, nrm, length in lay.road_segments():
            for side in (-1, 1):  # wheel tracks: darker (or polished) lanes
                off = nrm * side * r.width / 4
                self._line(layer, p + off, q + off, 1.4, (0.93,) * 3)
            for _ in range(rng.poisson(length / 40)):  # patches
                t = rng.uniform(0, length)
                c = p + u * t + nrm * rng.uniform(-r.width / 3, r.width / 3)
                k = rng.uniform(0.75, 1.25)
                self._fill(
                    layer,
                    rect_corners(
                        *c, np.arctan2(u[1], u[0]), rng.uniform(1.5, 12), rng.uniform(1, r.width / 2)
                    ),
                    (k,) * 3,
                )
            for _ in range(rng.poisson(length / 60)):  # manholes
                c = p + u * rng.uniform(0, length) + nrm * rng.uniform(-r.width / 3, r.width / 3)
                self._fill(layer, c + _UNIT_CIRCLE * 0.35, (0.6,) * 3)
            if rng.random() < 0.3:  # a sealed crack along the road
                t0 = rng.uniform(0, length)
                pts = [
                    p + u * (t0 + k * 2) + nrm * rng.normal(0, 0.4) for k in range(int(rng.integers(3, 15)))
                ]
                for a, b in itertools.pairwise(pts):
                    self._line(layer, a, b, 0.1, (0.6,) * 3)
        asphalt = (mat == ASPHALT) | (mat == MARKING)
        img *= np.where(asphalt, layer, 1.0)[..., None]
        # curbs: a light line along the road edge where there are sidewalks
        if self.style.sidewalk_m > 0:
            curb = np.zeros((self.n, self.n), np.float32)
            for r, p, q, _, nrm, _ in lay.road_segments():
                for side in (-1, 1):
                    self._line(
                        curb, p + nrm * side * r.width / 2, q + nrm * side * r.width / 2, 0.3, (1.0,) * 3
                    )
            sel = (curb > 0.3) & (mat == SIDEWALK)
            img[sel] = img[sel] * 0.6 + self.look.colors["sidewalk"] * 1.15 * 0.4

    # -- shadows on the ground (true 3-D geometry, not displaced) -------------------------------------------
    def shadows(self) -> np.ndarray:
        lay, k = self.layout, self.shadow_k
        mask = np.zeros((self.n, self.n), np.float32)
        away = -self.sun_dir
        for b in lay.buildings:
            pts = np.concatenate([b.corners, b.corners + away * b.height * k])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (1,))
        for t in lay.trees:  # the crown's shadow sweeps its section from the crown bottom to its top
            circ = _UNIT_CIRCLE * t.radius * 0.9 + [t.x, t.y]
            bottom = max(t.height - 1.7 * t.radius, 1.5)
            lo, hi = (bottom + 0.3 * t.radius) * k, (t.height - 0.4 * t.radius) * k
            pts = np.concatenate([circ + away * lo, circ + away * hi])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (0.8,))
            self._line(mask, (t.x, t.y), np.array([t.x, t.y]) + away * bottom * k, 0.3, (0.8,))
        for t in lay.bushes:
            circ = _UNIT_CIRCLE * t.radius + [t.x, t.y]
            pts = np.concatenate([circ, circ + away * t.height * k * 0.8])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (0.8,))
        for c in [c for c in lay.cars if c.where != "lidar"] + lay.fences + lay.hedges + lay.furniture:
            r = rect_corners(c.x, c.y, c.yaw, c.length, max(c.width, 0.1))
            pts = np.concatenate([r, r + away * c.height * k])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (0.9,))
        for p in lay.poles:
            self._line(mask, (p.x, p.y), np.array([p.x, p.y]) + away * p.height * k, 0.25, (0.8,))
        return cv2.GaussianBlur(mask, (0, 0), max(0.2 / self.res, 0.5))

    def elevated_shadows(self) -> np.ndarray:
        """Shadows of taller buildings and trees on lower roofs and crowns (the ground has its own), in image
        pixels: each painted top surface looks up, at its true (undisplaced) position, the shadow of every
        caster taller than it."""
        lay, k, n, res = self.layout, self.shadow_k, self.n, self.res
        away = -self.sun_dir
        shapes = [(b.corners, b.height, b.height * (0.85 if b.pitched else 1.0)) for b in lay.buildings]
        shapes += [
            (_UNIT_CIRCLE * t.radius + [t.x, t.y], t.height, t.height - 0.8 * t.radius) for t in lay.trees
        ]
        if not shapes:
            return np.zeros((n, n), np.float32)
        top = np.zeros((n, n), np.float32)  # height of the painted top surface (0: ground)
        shift = np.zeros((n, n, 2), np.float32)  # its relief displacement, pixels (x right, y down)
        for poly, _, z in sorted(shapes, key=lambda s_: s_[2]):
            d = self.look.relief.at(*poly.mean(0)) * z
            pts = [self.px(poly + d)]
            cv2.fillPoly(top, pts, float(z), cv2.LINE_8, 4)
            cv2.fillPoly(shift, pts, (float(d[0] / res), float(-d[1] / res)), cv2.LINE_8, 4)
        levels = np.array([2.5, 5.0, 8.0, 12.0, 17.0, 24.0, 33.0, 1e9])
        level = np.digitize(top, levels) - 1
        cols, rows = np.meshgrid(np.arange(n, dtype=np.float32), np.arange(n, dtype=np.float32))
        map_x, map_y = cols - shift[..., 0], rows - shift[..., 1]
        out = np.zeros((n, n), np.float32)
        for li in range(len(levels) - 1):
            sel = level == li
            if not sel.any():
                continue
            z_lo, z_hi = levels[li], levels[li + 1]
            mask = np.zeros((n, n), np.float32)
            for poly, hc, _ in shapes:
                if hc < min(z_hi, 1e3) + 1.0:  # only casters taller than every receiver of this level
                    continue
                pts = np.concatenate([poly, poly + away * (hc - z_lo) * k])
                self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (1,))
            if mask.any():
                looked = cv2.remap(mask, map_x, map_y, cv2.INTER_LINEAR, borderValue=0)
                out[sel] = looked[sel]
        return cv2.GaussianBlur(out, (0, 0), max(0.2 / res, 0.5))

    def contact(self) -> np.ndarray:
        """Ambient occlusion at wall bases: ground next to buildings is a little darker."""
        m = np.zeros((self.n, self.n), np.float32)
        for b in self.layout.buildings:
            self._fill(m, b.corners, (1,))
        return cv2.GaussianBlur(m, (0, 0), 1.2 / self.res)

    # -- objects ---------------------------------------------------------------------------------------------
    def objects(self, img: np.ndarray) -> None:
        """Paint objects low to high, each displaced by its height along the local lean."""
        lay = self.layout
        items = [(c.height, 0, c) for c in lay.cars if c.where != "lidar"]
        items += [(h.height, 1, h) for h in lay.hedges]
        items += [(b.height, 2, b) for b in lay.bushes]
        items += [(b.height, 3, b) for b in lay.buildings]
        items += [(t.height, 4, t) for t in lay.trees]
        items += [(p.height, 5, p) for p in lay.poles]
        paint = (self._car, self._hedge, self._bush, self._building, self._tree, self._pole)
        for _, kind, o in sorted(items, key=lambda i: (i[0], i[1])):
            paint[kind](img, o)
        for o in lay.furniture:
            top = rect_corners(o.x, o.y, o.yaw, o.length, o.width) + self.look.relief.at(o.x, o.y) * o.height
            self._fill(img, top, (95, 95, 95))
        for fe in lay.fences:
            lean = self.look.relief.at(fe.x, fe.y)
            r = rect_corners(fe.x, fe.y, fe.yaw, fe.length, 0.1)
            a, b = (r[0] + r[3]) / 2, (r[1] + r[2]) / 2
            self._line(img, a + lean * fe.height, b + lean * fe.height, 0.1, (70, 70, 70))

    def _car(self, img, o) -> None:
        rng, lean = self.rng, self.look.relief.at(o.x, o.y)
        u = rng.random()
        if u < 0.25:
            body = hsv(0, 0, rng.uniform(0.82, 0.95))
        elif u < 0.45:
            body = hsv(0, 0, rng.uniform(0.08, 0.2))
        elif u < 0.75:
            body = hsv(rng.uniform(180, 240), rng.uniform(0, 0.08), rng.uniform(0.42, 0.7))
        else:
            body = hsv(rng.uniform(0, 360), rng.uniform(0.4, 0.85), rng.uniform(0.3, 0.7))
        if self.look.wild:
            body = body[rng.permutation(3)]
        fwd = np.array([np.cos(o.yaw), np.sin(o.yaw)])
        self._fill(img, rect_corners(o.x, o.y, o.yaw, o.length, o.width) + lean * o.height * 0.5, body)
        top = np.array([o.x, o.y]) - fwd * 0.1 * o.length + lean * o.height
        self._fill(img, rect_corners(*top, o.yaw, o.length * 0.55, o.width * 0.82), (35, 40, 48))
        self._fill(
            img,
            rect_corners(*(top - fwd * 0.05 * o.length), o.yaw, o.length * 0.3, o.width * 0.78),
            body * 0.95,
        )

    def _veg_color(self, conifer: bool) -> np.ndarray:
        c = self.look.colors["conifer" if conifer else "canopy"]
        return np.clip(c * self.rng.uniform(0.8, 1.2) + self.rng.normal(0, 6, 3), 0, 255)

    def _tree(self, img, t) -> None:
        rng, look = self.rng, self.look
        lean = look.relief.at(t.x, t.y)
        conifer = rng.random() < look.conifer_share
        c = np.array([t.x, t.y]) + lean * max(t.height - 0.8 * t.radius, 0.5)
        color = self._veg_color(conifer)
        bare = not conifer and look.season in ("bare", "snow")
        if conifer:
            k = int(rng.integers(9, 14))
            ang = np.linspace(0, 2 * np.pi, 2 * k, endpoint=False) + rng.uniform(0, 1)
            rad = np.where(np.arange(2 * k) % 2 == 0, 1.0, rng.uniform(0.55, 0.8)) * t.radius * 0.85
            star = np.stack([np.cos(ang), np.sin(ang)], -1) * rad[:, None] + c
            self._paint(img, [star], color, "canopy", shade=(c, t.radius, 0.35))
            return
        blobs = [(c[0], c[1], t.radius * rng.uniform(0.55, 0.75))]
        for _ in range(int(rng.integers(3, 7))):
            a, d = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 0.6) * t.radius
            blobs.append((c[0] + d * np.cos(a), c[1] + d * np.sin(a), t.radius * rng.uniform(0.35, 0.55)))
        self._paint(
            img,
            [],
            color,
            "canopy",
            alpha=rng.uniform(0.6, 0.85) if bare else 1.0,
            shade=(c, t.radius, 0.3),
            circles=blobs,
        )

    def _bush(self, img, b) -> None:
        lean = self.look.relief.at(b.x, b.y)
        c = np.array([b.x, b.y]) + lean * b.height * 0.8
        color = self._veg_color(self.rng.random() < 0.3) * 1.05
        self._paint(img, [c + _UNIT_CIRCLE * b.radius], color, "canopy", shade=(c, b.radius, 0.3))

    def _hedge(self, img, h) -> None:
        lean = self.look.relief.at(h.x, h.y)
        r = rect_corners(h.x, h.y, h.yaw, h.length, h.width)
        color = self._veg_color(self.rng.random() < 0.5)
        side = np.concatenate([r, r + lean * h.height])
        self._paint(img, [cv2.convexHull(side.astype(np.float32))[:, 0]], color * 0.75, "canopy")
        self._paint(img, [r + lean * h.height], color, "canopy")

    def _pole(self, img, p) -> None:
        lean = self.look.relief.at(p.x, p.y)
        base = np.array([p.x, p.y])
        if np.linalg.norm(lean) * p.height > self.res:
            self._line(img, base, base + lean * p.height, 0.15, (90, 90, 90))
        self._fill(img, rect_corners(*(base + lean * p.height), 0.0, 0.5, 0.5), (150, 150, 140))

    # -- buildings -------------------------------------------------------------------------------------------
    def _building(self, img, b: Building) -> None:
        rng, look = self.rng, self.look
        c = b.corners
        centre = c.mean(0)
        lean = look.relief.at(*centre)
        e1, e2 = c[1] - c[0], c[2] - c[1]
        short = min(np.linalg.norm(e1), np.linalg.norm(e2))
        wall_top = max(b.height - (short * 0.35 if b.pitched else 0.0), 2.5)
        fam = int(rng.choice(len(look.roof_palette), p=look.roof_weights))
        roof = np.clip(look.roof_palette[fam] * rng.uniform(0.85, 1.15) + rng.normal(0, 5, 3), 0, 255)
        facade = look.colors["facade_brick" if rng.random() < 0.25 else "facade"] * rng.uniform(0.85, 1.1)
        snow = look.season == "snow" and rng.random() < 0.8
        if snow:
            roof = roof + (np.array([235, 238, 242]) - roof) * rng.uniform(0.5, 0.95)
        # facades that face the camera (their outward normal points back towards the nadir)
        for i in range(4):
            a, d = c[i], c[(i + 1) % 4]
            edge = d - a
            nrm = np.array([edge[1], -edge[0]]) / (np.linalg.norm(edge) + 1e-9)  # outward for CCW corners
            if float(nrm @ lean) >= -1e-6:
                continue
            quad = np.array([a, d, d + lean * wall_top, a + lean * wall_top])
            lit = 0.55 + 0.45 * max(float(nrm @ self.sun_dir), 0.0) * np.cos(look.sun_elev)
            self._fill(img, quad, facade * lit)
            if np.linalg.norm(lean) * 3.0 > 1.5 * self.res:  # window bands per storey
                for z in np.arange(1.8, wall_top - 0.8, 3.0):
                    self._line(
                        img, a + lean * z, d + lean * z, 0.9 * np.linalg.norm(lean) * 1.5, facade * lit * 0.55
                    )
        if b.pitched:
            self._pitched_roof(img, b, lean, wall_top, roof, facade, snow)
        else:
            self._flat_roof(img, b, lean, roof, snow)

    def _flat_roof(self, img, b, lean, roof, snow) -> None:
        rng = self.rng
        top = b.corners + lean * b.height
        self._paint(img, [top], roof, "roof")
        centre = top.mean(0)
        # moss / dirt / water stains
        if rng.random() < 0.6 and not snow:
            k = rng.uniform(0.7, 0.95)
            for _ in range(int(rng.integers(1, 4))):
                p = centre + (rng.random(2) - 0.5) * (top[0] - top[2]) * 0.6
                self._paint(img, [p + _UNIT_CIRCLE * rng.uniform(1, 4)], roof * k, "roof", alpha=0.6)
        # parapet rim
        rim = roof * (0.75 if rng.random() < 0.5 else 1.25)
        pts = self.px(top)
        cv2.polylines(
            img,
            [pts],
            True,
            tuple(float(v) for v in np.clip(rim, 0, 255)),
            max(1, int(0.5 / self.res)),
            cv2.LINE_AA,
            4,
        )
        e1, e2 = top[1] - top[0], top[3] - top[0]
        l1, l2 = np.linalg.norm(e1), np.linalg.norm(e2)
        yaw = float(np.arctan2(e1[1], e1[0]))
        area = l1 * l2
        away = -self.sun_dir * self.shadow_k
        # HVAC units and vents with their shadows on the roof
        for _ in range(int(rng.poisson(area / 250))):
            s, t = rng.uniform(0.1, 0.9, 2)
            p = top[0] + e1 * s + e2 * t
            w, h, z = rng.uniform(1, 4), rng.uniform(1, 3), rng.uniform(0.5, 2)
            box = rect_corners(*p, yaw, w, h)
            self._fill(img, box + away * z * 0.7, roof * 0.55)
            self._fill(img, box + lean * z, np.clip(hsv(0, 0, rng.uniform(0.5, 0.85)), 0, 255))
        for _ in range(int(rng.poisson(area / 120))):
            s, t = rng.uniform(0.05, 0.95, 2)
            self._fill(img, rect_corners(*(top[0] + e1 * s + e2 * t), yaw, 0.6, 0.6), roof * 0.45)
        if rng.random() < 0.35:  # skylights in a row
            s = rng.uniform(0.2, 0.8)
            col = hsv(210, 0.1, rng.uniform(0.2, 0.9))
            for t in np.arange(0.15, 0.85, rng.uniform(0.08, 0.2)):
                self._fill(img, rect_corners(*(top[0] + e1 * t + e2 * s), yaw, 2.0, 1.2), col)
        if rng.random() < 0.25 and not snow:  # solar panel field
            col = hsv(rng.uniform(210, 240), rng.uniform(0.2, 0.5), rng.uniform(0.12, 0.3))
            s0, t0 = rng.uniform(0.1, 0.4, 2)
            for s in np.arange(s0, 0.9, 2.2 / max(l1, 1)):
                for t in np.arange(t0, 0.9, 1.6 / max(l2, 1)):
                    self._fill(img, rect_corners(*(top[0] + e1 * s + e2 * t), yaw, 1.8, 1.1), col)

    def _pitched_roof(self, img, b, lean, wall_top, roof, facade, snow) -> None:
        rng, c = self.rng, b.corners
        e1, e2 = c[1] - c[0], c[2] - c[1]
        long_first = np.linalg.norm(e1) >= np.linalg.norm(e2)
        if long_first == b.ridge_along_long_side:
            m1, m2 = (c[3] + c[0]) / 2, (c[1] + c[2]) / 2
            halves = [(c[0], c[1], m2, m1), (c[2], c[3], m1, m2)]
            ends = [(c[3], c[0], m1), (c[1], c[2], m2)]
        else:
            m1, m2 = (c[0] + c[1]) / 2, (c[2] + c[3]) / 2
            halves = [(c[1], c[2], m2, m1), (c[3], c[0], m1, m2)]
            ends = [(c[0], c[1], m1), (c[2], c[3], m2)]
        hip = b.hip
        ridge = np.array([m1, m2])
        if hip:  # hipped roof: the ridge is shorter, the ends slope too
            ridge = ridge * 0.75 + ridge[::-1] * 0.25
        r1, r2 = ridge + lean * b.height
        # gable end walls facing the camera
        if not hip:
            for a, d, m in ends:
                edge = d - a
                nrm = np.array([edge[1], -edge[0]]) / (np.linalg.norm(edge) + 1e-9)
                if float(nrm @ lean) < 0:
                    tri = np.array([a + lean * wall_top, d + lean * wall_top, m + lean * b.height])
                    self._fill(img, tri, facade * 0.7)
        ridge_dir = (m2 - m1) / (np.linalg.norm(m2 - m1) + 1e-9)
        period = rng.uniform(0.5, 1.6)
        across = np.array([-ridge_dir[1], ridge_dir[0]])
        stripe_dir, amp = (ridge_dir, 0.06) if rng.random() < 0.4 else (across, 0.04)  # seams or tile rows
        faces = []
        for a, d, q1, _ in halves:
            rq1 = r1 if np.allclose(q1, m1) else r2
            rq2 = r2 if rq1 is r1 else r1
            poly = np.array([a + lean * wall_top, d + lean * wall_top, rq1, rq2])
            outward = np.array([a, d]).mean(0) - ridge.mean(0)
            outward /= np.linalg.norm(outward) + 1e-9
            faces.append((float(outward @ -lean), poly, outward))
        if hip:
            for a, d, m in ends:
                end_r = r1 if np.linalg.norm(m - m1) < 1e-6 else r2
                poly = np.array([a + lean * wall_top, d + lean * wall_top, end_r])
                outward = m - ridge.mean(0)
                outward /= np.linalg.norm(outward) + 1e-9
                faces.append((float(outward @ -lean), poly, outward))
        for _, poly, outward in sorted(faces, key=lambda f: f[0]):  # faces turned to the camera on top
            shade = 0.78 + 0.3 * float(outward @ self.sun_dir) * np.cos(self.look.sun_elev) / 0.8
            self._paint(img, [poly], np.clip(roof * shade, 0, 255), "roof", stripe=(stripe_dir, period, amp))
        self._line(img, r1, r2, 0.35, np.clip(roof * rng.uniform(0.7, 1.3), 0, 255))  # ridge
        if rng.random() < 0.5:  # chimney on the ridge, with its shadow on the roof
            p = ridge[0] + (ridge[1] - ridge[0]) * rng.uniform(0.2, 0.8) + across * rng.uniform(-1, 1)
            h = b.height + rng.uniform(0.6, 1.5)
            box = rect_corners(*p, float(np.arctan2(ridge_dir[1], ridge_dir[0])), 0.8, 0.8)
            self._fill(img, box + lean * b.height - self.sun_dir * self.shadow_k * 1.0, roof * 0.5)
            self._fill(img, box + lean * h, np.clip(hsv(15, 0.3, rng.uniform(0.25, 0.6)), 0, 255))
        if rng.random() < 0.3 and not snow:  # skylights or solar panels on one slope
            a, d, _, _ = halves[int(rng.integers(2))]
            z = (wall_top + b.height) / 2
            mid = (a + d) / 2 * 0.5 + ridge.mean(0) * 0.5 + lean * z
            col = hsv(rng.uniform(200, 240), rng.uniform(0.1, 0.5), rng.uniform(0.12, 0.35))
            w = rng.uniform(1.0, 0.7 * np.linalg.norm(d - a))
            self._fill(
                img,
                rect_corners(*mid, float(np.arctan2(ridge_dir[1], ridge_dir[0])), w, rng.uniform(1.0, 3.0)),
                col,
            )

    # -- whole image -----------------------------------------------------------------------------------------
    def render(self, out_m_per_px: float) -> np.ndarray:
        rng, look, g = self.rng, self.look, self.look.grading
        img = self.ground()
        img *= (1 - 0.25 * self.contact())[..., None]
        shadow = self.shadows() * look.shadow_strength
        tint = np.array([-0.08, 0.0, 0.12], np.float32)  # skylight fills shadows: bluish
        img *= (1 - shadow)[..., None] * (1 + shadow[..., None] * tint)
        self.objects(img)
        up = self.elevated_shadows() * look.shadow_strength
        img *= (1 - up)[..., None] * (1 + up[..., None] * tint)
        img = cv2.GaussianBlur(img, (0, 0), g["optics_blur_px"] * (0.6 if look.gsd < self.res else 1.0))
        n_out = int(round(self.layout.size_m / out_m_per_px))
        if n_out < self.n:
            interp = cv2.INTER_LINEAR if g["aliasing"] else cv2.INTER_AREA
        else:
            interp = cv2.INTER_CUBIC if rng.random() < 0.5 else cv2.INTER_LINEAR
        img = cv2.resize(img, (n_out, n_out), interpolation=interp)
        if g["sharpen"] > 0:
            img = img + g["sharpen"] * (img - cv2.GaussianBlur(img, (0, 0), 1.2))
        img = self._seams(img, out_m_per_px)
        img = grade(np.clip(img, 0, 255), g)
        img += rng.normal(0, g["noise"], img.shape).astype(np.float32)
        img = np.clip(img, 0, 255).astype(np.uint8)
        _, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, g["jpeg"]])
        return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)

    def _seams(self, img, res) -> np.ndarray:
        """Mosaic tiles differ a little in exposure and colour balance."""
        rel, sd = self.look.relief, self.look.grading["seam_gain_sd"]
        if rel.tile_m >= 1e8 or sd <= 0:
            return img
        rows, cols = rel.inv_h.shape
        gains = (1 + self.rng.normal(0, sd, (rows, cols, 3))).astype(np.float32)
        n = img.shape[0]
        xs = ((np.arange(n) + 0.5) * res - rel.origin[0]) / rel.tile_m
        ys = ((n - np.arange(n) - 0.5) * res - rel.origin[1]) / rel.tile_m
        j = np.clip(xs.astype(int), 0, cols - 1)
        i = np.clip(ys.astype(int), 0, rows - 1)
        field = gains[i[:, None], j[None, :]]
        field = cv2.GaussianBlur(field, (0, 0), 3.0 / res)
        return img * field


def grade(img: np.ndarray, g: dict) -> np.ndarray:
    """Per-image colour grading: hue rotation, saturation, white balance and exposure, contrast, gamma, haze,
    brightness."""
    x = (img / 255.0).astype(np.float32)
    hsv_img = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)
    hsv_img[..., 0] = (hsv_img[..., 0] + g["hue"]) % 360
    hsv_img[..., 1] = np.clip(hsv_img[..., 1] * g["sat"], 0, 1)
    x = cv2.cvtColor(hsv_img, cv2.COLOR_HSV2RGB) * (
        np.asarray(g["gains"], np.float32) * g.get("exposure", 1.0)
    )
    mean = x.mean()
    x = np.clip((x - mean) * g["contrast"] + mean, 0, 1) ** g["gamma"]
    x = x * (1 - g["haze"]) + g["haze"] * np.array([0.75, 0.8, 0.88], np.float32)
    return x * 255.0 + g["brightness"]


def render_orthophoto(layout: Layout, style: TownStyle, look: Look, m_per_px: float, rng) -> np.ndarray:
    """(H, W, 3) uint8 RGB, row 0 = north edge of the town, covering [0, size_m]², as `look` says."""
    return OrthoRenderer(layout, style, look, rng).render(m_per_px)
