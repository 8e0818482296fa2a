"""Orthophoto of a layout as an aerial camera would see it, not a re-rendering of LiDAR heights.

The cross-modal gap is built in on purpose: tree canopies hide the ground and cars under them, roofs carry
colour the LiDAR never sees, sun shadows fall on the ground, and the image is blurred, noisy, JPEG-compressed
and slightly misregistered.
"""

from __future__ import annotations

import cv2
import numpy as np

from translocnet_ros.synth.layout import Layout, rect_corners
from translocnet_ros.synth.styles import ASPHALT, DIRT, GRASS, MARKING, PAVEMENT, SIDEWALK, TownStyle


def _noise(shape, rng, scales=(4, 16, 64), weights=(0.5, 0.3, 0.2)) -> np.ndarray:
    """Zero-mean, unit-ish multi-scale texture."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for s, wt in zip(scales, weights):
        small = rng.normal(size=(max(h // s, 2), max(w // s, 2))).astype(np.float32)
        out += wt * cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    return out


def _jitter(color, rng, sd=14.0):
    return np.clip(np.asarray(color, np.float32) + rng.normal(0, sd, 3), 0, 255)


class OrthoRenderer:
    def __init__(self, layout: Layout, style: TownStyle, m_per_px: float, rng: np.random.Generator):
        self.layout, self.style, self.res, self.rng = layout, style, m_per_px, rng
        self.n = int(round(layout.size_m / m_per_px))
        az = rng.uniform(0, 2 * np.pi)
        self.sun_elev = np.radians(rng.uniform(30, 65))
        self.sun_dir = np.array([np.cos(az), np.sin(az)])  # towards the sun, town x/y
        self.shadow_strength = rng.uniform(0.35, 0.6)

    def px(self, pts) -> np.ndarray:
        pts = np.asarray(pts, float)
        out = np.stack([pts[..., 0] / self.res, self.n - pts[..., 1] / self.res], -1)
        return np.round(out * 16).astype(np.int32)

    def _fill(self, img, pts, color):
        cv2.fillPoly(img, [self.px(pts)], tuple(float(c) for c in color), cv2.LINE_AA, 4)

    def ground(self) -> np.ndarray:
        rng, st = self.rng, self.style
        mat = cv2.resize(self.layout.ground, (self.n, self.n), interpolation=cv2.INTER_NEAREST)
        grey = rng.uniform(60, 95)
        palette = {
            GRASS: (_jitter(st.ground_color, rng, 18), 22),
            ASPHALT: (np.full(3, grey) + rng.normal(0, 4, 3), 7),
            MARKING: (np.array([235, 235, 230]) if rng.random() < 0.8 else np.array([230, 200, 60]), 10),
            SIDEWALK: (_jitter((165, 160, 152), rng, 10), 9),
            DIRT: (_jitter(st.ground_color if st.ground == "dirt" else (140, 120, 95), rng), 15),
            PAVEMENT: (_jitter(st.ground_color if st.ground == "pavement" else (135, 130, 125), rng), 10),
        }
        tex = _noise((self.n, self.n), rng)
        img = np.zeros((self.n, self.n, 3), np.float32)
        for m, (color, amp) in palette.items():
            sel = mat == m
            img[sel] = color + (tex[sel] * amp)[:, None]
        # asphalt repairs and stains, lawn mowing patterns
        blobs = _noise(
            (self.n, self.n),
            rng,
            scales=(max(int(3 / self.res), 2), max(int(12 / self.res), 2)),
            weights=(0.6, 0.4),
        )
        img[(mat == ASPHALT) & (blobs > 1.0)] *= 0.8
        return img

    def shadows(self) -> np.ndarray:
        lay, k = self.layout, 1.0 / np.tan(self.sun_elev)
        mask = np.zeros((self.n, self.n), np.float32)
        away = -self.sun_dir
        for b in lay.buildings:
            pts = np.concatenate([b.corners, b.corners + away * b.height * k])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (1,))
        for t in lay.trees:
            ang = np.linspace(0, 2 * np.pi, 16, endpoint=False)
            circ = np.stack([np.cos(ang), np.sin(ang)], -1) * t.radius + [t.x, t.y]
            self._fill(mask, circ + away * (t.height - t.radius) * k, (0.8,))
        for c in lay.cars + lay.fences:
            r = rect_corners(c.x, c.y, c.yaw, c.length, max(c.width, 0.1))
            pts = np.concatenate([r, r + away * c.height * k])
            self._fill(mask, cv2.convexHull(pts.astype(np.float32))[:, 0], (0.9,))
        return cv2.GaussianBlur(mask, (0, 0), max(0.15 / self.res, 0.5))

    def objects(self, img: np.ndarray) -> None:
        """Paint cars, buildings and trees in order of height, so taller things cover lower ones."""
        rng, lay = self.rng, self.layout
        items = [(c.height, "car", c) for c in lay.cars]
        items += [(b.height, "building", b) for b in lay.buildings]
        items += [(t.height, "tree", t) for t in lay.trees]
        for _, kind, o in sorted(items, key=lambda i: i[0]):
            if kind == "car":
                self._fill(img, rect_corners(o.x, o.y, o.yaw, o.length, o.width), np.array(o.color, float))
                ws = rect_corners(
                    o.x + 0.6 * np.cos(o.yaw), o.y + 0.6 * np.sin(o.yaw), o.yaw, 0.8, o.width * 0.85
                )
                self._fill(img, ws, (35, 40, 45))
            elif kind == "building":
                self._building(img, o)
            else:
                ang = np.linspace(0, 2 * np.pi, 24, endpoint=False)
                wob = 1 + 0.12 * np.sin(3 * ang + rng.uniform(0, 6))
                circ = np.stack([np.cos(ang), np.sin(ang)], -1) * (o.radius * wob)[:, None] + [o.x, o.y]
                green = _jitter((55, 85, 45), rng, 12)
                self._fill(img, circ, green)
                lit = circ * 0.55 + np.array([o.x, o.y]) * 0.45 + self.sun_dir * o.radius * 0.3
                self._fill(img, lit, np.clip(green * 1.25, 0, 255))

    def _building(self, img, b) -> None:
        c = b.corners
        base = np.asarray(b.color, float)
        if not b.pitched:
            self._fill(img, c, base * 0.8)
            inner = (c - c.mean(0)) * 0.92 + c.mean(0)
            self._fill(img, inner, base)
            for _ in range(self.rng.integers(0, 4)):
                p = c.mean(0) + (self.rng.random(2) - 0.5) * (c[0] - c[2]) * 0.5
                self._fill(img, rect_corners(*p, 0.0, 1.5, 1.5), np.clip(base * 1.2 + 20, 0, 255))
            return
        e1, e2 = c[1] - c[0], c[2] - c[1]
        long_first = np.linalg.norm(e1) >= np.linalg.norm(e2)
        if long_first == b.ridge_along_long_side:
            m1, m2 = (c[3] + c[0]) / 2, (c[1] + c[2]) / 2
            halves = [np.array([c[0], c[1], m2, m1]), np.array([c[2], c[3], m1, m2])]
        else:
            m1, m2 = (c[0] + c[1]) / 2, (c[2] + c[3]) / 2
            halves = [np.array([c[1], c[2], m2, m1]), np.array([c[3], c[0], m1, m2])]
        ridge_mid = (m1 + m2) / 2
        for h in halves:
            outward = h[:2].mean(0) - ridge_mid
            outward /= np.linalg.norm(outward) + 1e-9
            shade = 0.75 + 0.35 * float(outward @ self.sun_dir)
            self._fill(img, h, np.clip(base * shade, 0, 255))

    def render(self) -> np.ndarray:
        rng = self.rng
        img = self.ground()
        img *= (1 - self.shadow_strength * self.shadows())[..., None]
        self.objects(img)
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.1))
        gamma = rng.uniform(0.85, 1.15)
        img = 255 * (np.clip(img, 0, 255) / 255) ** gamma * rng.uniform(0.9, 1.1, 3)
        img += rng.normal(0, rng.uniform(2, 5), img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        _, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(55, 90))])
        return cv2.imdecode(enc, cv2.IMREAD_UNCHANGED)


def render_orthophoto(layout: Layout, style: TownStyle, m_per_px: float, rng) -> np.ndarray:
    """(H, W, 3) uint8 RGB, row 0 = north edge of the town, covering [0, size_m]²."""
    return OrthoRenderer(layout, style, m_per_px, rng).render()
