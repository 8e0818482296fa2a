"""Per-image appearance of a synthetic orthophoto: camera geometry, sun, season, palettes and grading.

A real orthophoto is a mosaic of central-perspective aerial images rectified on the terrain only: anything
above the ground (roofs, canopies, cars, poles) lands displaced from its footprint away from each image's
nadir, by its height times the tangent of the off-nadir angle, and one side of every building shows. How much,
and in which direction, changes from image to image. `Relief` models that; the LiDAR geometry stays true.

Colours are drawn per material and per image, from plausible ranges or (with `wild`) from anywhere, and the
whole image is graded again, so that palettes carry no information and shape and layout are what is left.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field

import numpy as np

SEASONS = ("summer", "dry", "autumn", "bare", "snow")


@dataclass(frozen=True)
class Relief:
    """Lean of a mosaic: a point h metres above the ground at (x, y) appears at (x, y) + h * at(x, y).

    The town is cut into square tiles (one source image each); every tile has the tangent of the off-nadir
    angle at its centre (`lean`, a 2-vector pointing away from its nadir) and grows it linearly away from
    the centre by 1 / flying height (`inv_h`), as a central perspective does."""

    tile_m: float = 1e9
    origin: tuple[float, float] = (0.0, 0.0)
    lean: np.ndarray = field(default_factory=lambda: np.zeros((1, 1, 2)))  # (rows, cols, 2), row = y
    inv_h: np.ndarray = field(default_factory=lambda: np.zeros((1, 1)))

    @classmethod
    def constant(cls, lean_xy) -> Relief:
        return cls(lean=np.asarray(lean_xy, float).reshape(1, 1, 2), inv_h=np.zeros((1, 1)))

    def tile_of(self, x: float, y: float) -> tuple[int, int]:
        rows, cols = self.inv_h.shape
        i = int(np.clip(np.floor((y - self.origin[1]) / self.tile_m), 0, rows - 1))
        j = int(np.clip(np.floor((x - self.origin[0]) / self.tile_m), 0, cols - 1))
        return i, j

    def at(self, x: float, y: float) -> np.ndarray:
        i, j = self.tile_of(x, y)
        if self.tile_m >= 1e8:
            return self.lean[i, j].copy()
        centre = np.array(self.origin) + (np.array([j, i]) + 0.5) * self.tile_m
        return self.lean[i, j] + (np.array([x, y]) - centre) * self.inv_h[i, j]

    def max_lean(self) -> float:
        return float(np.linalg.norm(self.lean, axis=-1).max())


def hsv(h_deg: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h_deg % 360) / 360.0, np.clip(s, 0, 1), np.clip(v, 0, 1))) * 255.0


def _u(rng, lo, hi):
    return float(rng.uniform(lo, hi))


# Plausible HSV ranges per material and season: (hue range deg, saturation range, value range).
_GROUND = {
    "grass": {
        "summer": ((55, 110), (0.16, 0.5), (0.38, 0.62)),
        "dry": ((38, 62), (0.22, 0.48), (0.46, 0.68)),
        "autumn": ((48, 85), (0.22, 0.5), (0.34, 0.55)),
        "bare": ((35, 65), (0.1, 0.3), (0.33, 0.5)),
        "snow": ((190, 230), (0.0, 0.06), (0.8, 0.96)),
    },
    "canopy": {
        "summer": ((75, 125), (0.3, 0.6), (0.2, 0.4)),
        "dry": ((60, 100), (0.3, 0.5), (0.22, 0.4)),
        "autumn": ((12, 60), (0.45, 0.75), (0.3, 0.55)),
        "bare": ((18, 40), (0.08, 0.25), (0.25, 0.42)),
        "snow": ((18, 40), (0.05, 0.2), (0.3, 0.5)),
    },
}
_ROOF_FAMILIES = (  # name, weight, hue, sat, val
    ("red_tile", 1.0, (4, 22), (0.4, 0.7), (0.35, 0.6)),
    ("brown", 0.8, (15, 35), (0.2, 0.45), (0.25, 0.45)),
    ("black", 1.0, (0, 360), (0.0, 0.08), (0.1, 0.28)),
    ("grey", 1.2, (0, 360), (0.0, 0.08), (0.33, 0.55)),
    ("light", 1.0, (0, 360), (0.0, 0.06), (0.58, 0.86)),
    ("green_metal", 0.25, (120, 190), (0.15, 0.4), (0.3, 0.5)),
    ("blue_grey", 0.4, (195, 230), (0.06, 0.2), (0.35, 0.55)),
)


@dataclass
class Look:
    """Everything random about one orthophoto, drawn once per town from its seed."""

    gsd: float  # ground sample distance of the source imagery (m): 0.1 sharp .. 0.6 soft
    relief: Relief
    sun_az: float  # direction towards the sun, rad CCW from east
    sun_elev: float
    shadow_strength: float
    season: str
    wild: bool  # colours drawn from anywhere, not from plausible ranges
    conifer_share: float
    colors: dict = field(default_factory=dict)  # material name -> RGB 0..255
    roof_palette: list = field(default_factory=list)  # RGB per roof family of this town
    roof_weights: np.ndarray = field(default_factory=lambda: np.ones(1))
    texture: dict = field(default_factory=dict)  # material name -> (amplitude, weights fine/mid/coarse)
    grading: dict = field(default_factory=dict)

    @property
    def sun_dir(self) -> np.ndarray:
        return np.array([np.cos(self.sun_az), np.sin(self.sun_az)])

    def summary(self) -> dict:
        return dict(
            gsd_m=round(self.gsd, 3),
            season=self.season,
            wild_colors=self.wild,
            sun_azimuth_deg=round(float(np.degrees(self.sun_az)) % 360, 1),
            sun_elevation_deg=round(float(np.degrees(self.sun_elev)), 1),
            shadow_strength=round(self.shadow_strength, 2),
            relief_tile_m=round(self.relief.tile_m, 1) if self.relief.tile_m < 1e8 else None,
            relief_max_lean=round(self.relief.max_lean(), 3),
        )


def sample_relief(rng, size_m: float, lean_limit: float = 0.35) -> Relief:
    """A mosaic of source images: most towns lean noticeably (up to `lean_limit`, the tangent of the largest
    off-nadir angle), a few are near-true orthos."""
    scale = lean_limit / 0.35
    if rng.random() < 0.1:
        return Relief.constant(rng.normal(0, 0.01, 2) * scale)
    tile = _u(rng, 120, 450)
    k = int(np.ceil(size_m / tile)) + 1
    origin = tuple(float(v) for v in -rng.uniform(0, tile, 2))
    max_lean = _u(rng, 0.05, 0.35) * scale
    # a flight strip: neighbouring images lean similarly, with a common tendency plus per-image scatter
    common = rng.normal(0, max_lean * 0.5, 2)
    lean = common + rng.normal(0, max_lean * 0.5, (k, k, 2))
    norm = np.linalg.norm(lean, axis=-1, keepdims=True)
    lean = np.where(norm > max_lean, lean / np.maximum(norm, 1e-9) * max_lean, lean)
    inv_h = rng.uniform(1 / 3500, 1 / 900, (k, k))
    return Relief(tile, origin, lean, inv_h)


def _plausible(rng, h, s, v) -> np.ndarray:
    return hsv(_u(rng, *h), _u(rng, *s), _u(rng, *v))


def _wild(rng) -> np.ndarray:
    return hsv(_u(rng, 0, 360), _u(rng, 0.0, 0.8), _u(rng, 0.12, 0.92))


def sample_look(rng, size_m: float, wild_prob: float = 0.0, lean_limit: float = 0.35) -> Look:
    season = str(rng.choice(SEASONS, p=[0.45, 0.15, 0.15, 0.12, 0.13]))
    wild = bool(rng.random() < wild_prob)
    # mid-latitude daytime flights: sun in the south, give or take; some towns anywhere
    az = -np.pi / 2 + rng.normal(0, 0.6) if rng.random() < 0.7 else _u(rng, 0, 2 * np.pi)
    low = season in ("snow", "bare")
    look = Look(
        gsd=_u(rng, 0.1, 0.6),
        relief=sample_relief(rng, size_m, lean_limit),
        sun_az=float(az),
        sun_elev=float(np.radians(_u(rng, 15, 40) if low else _u(rng, 25, 65))),
        shadow_strength=_u(rng, 0.35, 0.75),
        season=season,
        wild=wild,
        conifer_share=_u(rng, 0.0, 0.7),
    )
    c = look.colors

    def pick(name, h, s, v):
        c[name] = _wild(rng) if wild else _plausible(rng, h, s, v)

    grass = _GROUND["grass"][season]
    pick("grass", *grass)
    pick("grass_worn", (25, 45), (0.15, 0.4), (0.4, 0.62))
    pick("canopy", *_GROUND["canopy"][season])
    pick("conifer", (90, 150), (0.25, 0.5), (0.12, 0.28))
    pick("asphalt", (0, 360), (0.0, 0.06), (0.45, 0.7) if season == "snow" else (0.2, 0.45))
    pick("sidewalk", (20, 50), (0.02, 0.12), (0.5, 0.74))
    pick("pavement", (20, 50), (0.02, 0.14), (0.45, 0.7))
    pick("dirt", (25, 42), (0.18, 0.4), (0.4, 0.62))
    pick("gravel", (25, 45), (0.05, 0.2), (0.55, 0.76))
    pick("marking", (40, 55) if rng.random() < 0.12 else (0, 360), (0.0, 0.05), (0.8, 0.95))
    pick("facade", (20, 50), (0.0, 0.25), (0.5, 0.9))
    pick("facade_brick", (5, 20), (0.35, 0.6), (0.32, 0.5))
    if season == "snow":
        for k in ("grass", "dirt", "gravel"):
            c[k] = hsv(_u(rng, 190, 230), _u(rng, 0, 0.06), _u(rng, 0.8, 0.97))
    fams = rng.choice(len(_ROOF_FAMILIES), size=int(rng.integers(2, 6)), replace=False)
    for f in fams:
        _, _, h, s, v = _ROOF_FAMILIES[f]
        look.roof_palette.append(_wild(rng) if wild else _plausible(rng, h, s, v))
    w = np.array([_ROOF_FAMILIES[f][1] for f in fams]) * rng.uniform(0.3, 1.0, len(fams))
    look.roof_weights = w / w.sum()
    for name in (
        "grass",
        "asphalt",
        "sidewalk",
        "pavement",
        "dirt",
        "gravel",
        "roof",
        "canopy",
        "facade",
    ):
        amp = _u(rng, 0.04, 0.18) if name != "canopy" else _u(rng, 0.15, 0.4)
        look.texture[name] = (amp, rng.dirichlet([1.0, 1.0, 1.0]))
    g = look.grading
    if wild:
        g.update(
            hue=_u(rng, -180, 180), sat=_u(rng, 0.0, 1.6), contrast=_u(rng, 0.5, 1.6), gamma=_u(rng, 0.6, 1.6)
        )
        g["gains"] = 1 + rng.normal(0, 0.12, 3)
    else:
        g.update(hue=float(rng.normal(0, 4)), sat=_u(rng, 0.45, 1.15), contrast=_u(rng, 0.8, 1.35))
        g.update(gamma=_u(rng, 0.8, 1.25))
        g["gains"] = 1 + rng.normal(0, 0.04, 3)
    g.update(
        haze=_u(rng, 0.0, 0.25),
        exposure=float(np.exp(rng.normal(0.12, 0.15))),  # aerial surveys are exposed bright
        brightness=_u(rng, -12, 12),
        optics_blur_px=_u(rng, 0.3, 0.9),
        sharpen=_u(rng, 0.2, 1.3) if rng.random() < 0.75 else 0.0,
        noise=_u(rng, 1.5, 5.0),
        jpeg=int(rng.integers(55, 92)),
        aliasing=bool(rng.random() < 0.35),
        seam_gain_sd=_u(rng, 0.0, 0.06),
    )
    return look
