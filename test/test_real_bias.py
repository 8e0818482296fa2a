"""The real-imagery bias diagnosis (benchmarks/real_bias.py) recovers a sun and a relief lean it is given, so
its readings of helsinki-dev's orthophotos mean what BENCHMARKS.md says."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.real_bias import cast_shadows, fit_lean, fit_sun, heading, lean_warp, relight

PX = 0.5


def blocks(n: int = 160) -> np.ndarray:
    """A height raster (m) with a few flat-roofed buildings of different heights on flat ground."""
    h = np.zeros((n, n), np.float32)
    for r, c, size, height in [
        (30, 30, 20, 12.0),
        (90, 40, 14, 20.0),
        (40, 100, 24, 8.0),
        (110, 110, 18, 15.0),
    ]:
        h[r : r + size, c : c + size] = height
    return h


def test_shadow_falls_away_from_the_sun_with_its_length():
    h = np.zeros((120, 120), np.float32)
    h[50:60, 50:60] = 10.0
    # sun in the east (azimuth 0, CCW from east), 45 deg up: a 10 m block casts 10 m (20 px) to the west
    sh = cast_shadows(h, 0.0, np.radians(45.0), PX)
    assert sh[55, 49] and sh[55, 32] and not sh[55, 26]  # west: 1..18 px from the wall shaded, 24 not
    assert not sh[55, 61] and not sh[45, 55] and not sh[65, 55]  # east, north and south lit
    # sun in the north (rows run south): the shadow falls south
    sh = cast_shadows(h, np.pi / 2, np.radians(45.0), PX)
    assert sh[62, 55] and not sh[47, 55]


def test_fit_sun_recovers_the_sun_of_rendered_shadows():
    h = blocks()
    az, el = np.radians(300.0), np.radians(35.0)
    rng = np.random.default_rng(0)
    grey = rng.uniform(120, 160, h.shape).astype(np.float32)  # textured ground, roofs alike
    grey[cast_shadows(h, az, el, PX)] *= 0.5
    got_az, got_el, contrast = fit_sun(grey, h, h < 2.0, PX)
    assert abs((np.degrees(got_az - az) + 180) % 360 - 180) <= 10
    assert abs(np.degrees(got_el - el)) <= 5
    assert contrast == pytest.approx(2.0, rel=0.15)


def test_relight_restores_the_lit_level_and_texture():
    rng = np.random.default_rng(1)
    lit = rng.uniform(100, 200, (80, 80, 3)).astype(np.float32)
    shadow = np.zeros((80, 80), bool)
    shadow[20:60, 20:60] = True
    k = np.array([0.5, 0.55, 0.65])  # skylight: a shadow keeps more blue
    img = np.where(shadow[..., None], lit * k, lit).astype(np.uint8)
    out = relight(img, shadow).astype(np.float32)
    core = np.zeros_like(shadow)
    core[25:55, 25:55] = True
    assert np.abs(out[core] - lit[core]).mean() < 12  # level and texture back within ~5%
    assert np.array_equal(out[:10], img[:10].astype(np.float32))  # far from the shadow: untouched


def test_fit_lean_recovers_a_relief_displacement_and_the_warp_undoes_it():
    h = blocks()
    rng = np.random.default_rng(2)
    true = rng.uniform(60, 90, h.shape).astype(np.float32)
    rows, cols = np.indices(h.shape)
    true[h > 0] = (200 + 20 * np.sin(cols / 3.0) + 20 * np.sin(rows / 4.0))[h > 0]  # roofs bright, textured
    lean = np.array([0.08, -0.1])
    # the photo shows each point at (x, y) + h * lean: roofs splatted there, lowest first, over bare ground
    photo = np.where(h > 0, 75.0, true).astype(np.float32)
    rows, cols = np.nonzero(h > 0)
    order = np.argsort(h[rows, cols])
    rows, cols = rows[order], cols[order]
    hh = h[rows, cols]
    photo[np.round(rows - hh * lean[1] / PX).astype(int), np.round(cols + hh * lean[0] / PX).astype(int)] = (
        true[rows, cols]
    )
    mask = h > 3
    got, corr = fit_lean(photo, true, h, mask, PX)
    assert np.allclose(got, lean, atol=0.015) and corr > 0.5
    undone = lean_warp(photo, h, got, PX)
    assert np.abs(undone[mask] - true[mask]).mean() < np.abs(photo[mask] - true[mask]).mean() / 2


def test_heading_names_compass_points():
    assert heading(np.array([-1.0, 1.0])) == "NW (135)"
    assert heading(np.array([1.0, 0.0])) == "E (0)"
    assert heading(np.array([0.0, -2.0])) == "S (270)"
