"""Where a real orthophoto puts the estimate when the match is right: each helsinki-dev site's bias (the mean
error vector of its frames within NEAR_M, protocol known), beside the two things a real orthophoto does that
the scan does not see, both measured from the site's real geometry (`cloud.ply`, diagnosis use):
- cast shadows: the sun that best explains the orthophoto's dark ground (ground cells in the cloud's cast
  shadows darkest against the lit ones), and the direction its shadows fall;
- relief displacement: the lean (metres of image shift per metre of height) that best maps the orthophoto onto
  the cloud's own top-down colours (a true-ortho).
Then the same frames on the orthophoto with each removed using the cloud: shadows relit (each channel divided
by its shadow / lit ratio across the shadow boundaries) and relief undone (every pixel sampled where its
height's lean put it). A user has no city model; this says what a method would gain if it read past them.

    python benchmarks/real_bias.py [--methods ncc adapted] [--raycast 50]

Writes runs/real_bias/... and the `real-bias` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rasterio
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.adapt import adapted_model  # noqa: E402
from benchmarks.helsinki import raycast_drive_of, sites  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.cloud import read_ply, render_top  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import estimates, run_protocol  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.model.config import ModelConfig  # noqa: E402
from translocnet_ros.synth.town import write_geotiff  # noqa: E402

MODEL = ROOT / "models" / "translocnet.pt"
NEAR_M = 6.0  # frames farther off matched something else: a wrong match, not a bias
VARIANTS = {
    "real": "the real orthophoto",
    "relit": "cast shadows relit (cloud)",
    "deleaned": "relief undone (cloud)",
    "relit+deleaned": "both",
}


# ---------------------------------------------------------------- what the cloud says about the orthophoto


def cast_shadows(dsm: np.ndarray, sun_az: float, sun_el: float, m_per_px: float) -> np.ndarray:
    """Cells the surface hides from a sun at azimuth sun_az (rad, CCW from east) and elevation sun_el: some
    cell towards the sun (up to 40 m) rises above the ray from the cell to the sun."""
    rows, cols = np.indices(dsm.shape)
    step_c, step_r = np.cos(sun_az), -np.sin(sun_az)  # rows run south
    shadow = np.zeros(dsm.shape, bool)
    for s in range(1, int(40 / m_per_px)):
        r = np.clip(np.round(rows + step_r * s).astype(int), 0, dsm.shape[0] - 1)
        c = np.clip(np.round(cols + step_c * s).astype(int), 0, dsm.shape[1] - 1)
        shadow |= dsm[r, c] > dsm + s * m_per_px * np.tan(sun_el) + 0.3
    return shadow


def fit_sun(grey: np.ndarray, dsm: np.ndarray, ground: np.ndarray, m_per_px: float) -> tuple:
    """(azimuth, elevation, lit / shadow brightness of the ground) of the sun whose cast shadows on the ground
    cells are darkest against the lit ones: coarse over the whole circle, then refined."""

    def ratio(az, el):
        sh = cast_shadows(dsm, az, el, m_per_px)
        dark, lit = ground & sh, ground & ~sh
        if dark.sum() < 200 or lit.sum() < 200:
            return 0.0
        return float(np.log1p(grey[lit].mean()) - np.log1p(grey[dark].mean()))

    grid = [(np.radians(a), np.radians(e)) for a in range(0, 360, 20) for e in range(25, 66, 10)]
    az, el = max(grid, key=lambda p: ratio(*p))
    fine = [(az + np.radians(da), el + np.radians(de)) for da in (-10, -5, 0, 5, 10) for de in (-5, 0, 5)]
    az, el = max(fine, key=lambda p: ratio(*p))
    return az % (2 * np.pi), el, float(np.exp(ratio(az, el)))


def relight(img: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """Shadowed pixels brightened per channel by the lit / shadow ratio across the shadow's boundaries (a
    shadow multiplies the light, so dividing restores texture as well as level); the mask feathered."""
    f = img.astype(np.float32)
    inner = shadow & ~ndimage.binary_erosion(shadow, np.ones((5, 5))) & ndimage.binary_erosion(shadow)
    outer = ndimage.binary_dilation(shadow, np.ones((7, 7))) & ~ndimage.binary_dilation(
        shadow, np.ones((3, 3))
    )
    k = np.array([np.median(f[..., c][inner]) / max(np.median(f[..., c][outer]), 1.0) for c in range(3)])
    soft = cv2.GaussianBlur(shadow.astype(np.float32), (0, 0), 1.0)[..., None]
    return (f / (1 - soft * (1 - np.clip(k, 0.15, 1.0)))).clip(0, 255).astype(np.uint8)


def lean_warp(img: np.ndarray, height: np.ndarray, lean: np.ndarray, m_per_px: float) -> np.ndarray:
    """The image sampled at (x, y) + height * lean for every pixel: undoes a relief displacement of `lean`."""
    rows, cols = np.indices(height.shape).astype(np.float32)
    mx = (cols + height * lean[0] / m_per_px).astype(np.float32)
    my = (rows - height * lean[1] / m_per_px).astype(np.float32)
    if img.ndim == 2:
        return cv2.remap(img, mx, my, cv2.INTER_LINEAR)
    return np.stack(
        [cv2.remap(np.ascontiguousarray(img[..., c]), mx, my, cv2.INTER_LINEAR) for c in range(3)], -1
    )


def fit_lean(grey: np.ndarray, true_grey: np.ndarray, height: np.ndarray, mask: np.ndarray, m_per_px: float):
    """(lean E, N, correlation): the relief displacement that best maps the orthophoto onto the true-ortho over
    the raised cells (tangent of the off-nadir angle; +-0.15 in 0.01 steps)."""
    t = true_grey[mask]
    t = (t - t.mean()) / t.std()
    best = (-np.inf, 0.0, 0.0)
    for lx in np.arange(-0.15, 0.1501, 0.01):
        for ly in np.arange(-0.15, 0.1501, 0.01):
            v = lean_warp(grey, height, np.array([lx, ly]), m_per_px)[mask]
            best = max(best, (float((t * (v - v.mean()) / v.std()).mean()), lx, ly))
    return np.array(best[1:]), best[0]


def build_site(site: Path, out: Path) -> dict:
    """The site's sun, lean and orthophoto variants (GeoTIFFs under out/)."""
    out.mkdir(parents=True, exist_ok=True)
    with rasterio.open(site / "ortho.tif") as ds:
        img, transform, crs = ds.read([1, 2, 3]).transpose(1, 2, 0), ds.transform, ds.crs
    m_per_px = abs(transform.a)
    top = render_top(read_ply(site / "cloud.ply"), transform, img.shape[:2])
    floor = np.nanpercentile(top.height[top.valid], 5)
    height = np.where(top.valid, np.clip(top.height - floor, 0, 80), 0).astype(np.float32)
    grey = img.astype(np.float32).mean(-1)
    ground = top.valid & (height < 2.0)
    az, el, contrast = fit_sun(grey, height, ground, m_per_px)
    shadow = cast_shadows(height, az, el, m_per_px) & top.valid
    raised = top.valid & (height > 3.0)
    raised[:20], raised[-20:], raised[:, :20], raised[:, -20:] = False, False, False, False
    lean, corr = fit_lean(grey, top.rgb.astype(np.float32).mean(-1), height, raised, m_per_px)
    relit = relight(img, shadow)
    variants = {
        "real": img,
        "relit": relit,
        "deleaned": np.where(top.valid[..., None], lean_warp(img, height, lean, m_per_px), img),
        "relit+deleaned": np.where(top.valid[..., None], lean_warp(relit, height, lean, m_per_px), relit),
    }
    paths = {}
    for name, image in variants.items():
        paths[name] = site / "ortho.tif" if name == "real" else out / f"ortho_{name.replace('+', '_')}.tif"
        if name != "real":
            write_geotiff(paths[name], image, transform, crs)
    return dict(
        sun_az=az,
        sun_el=el,
        contrast=contrast,
        shadow_share=float(shadow[top.valid].mean()),
        lean=lean,
        lean_corr=corr,
        paths=paths,
    )


# ---------------------------------------------------------------- scoring


def method_for(label: str, site: Path, ortho: Path, out: Path):
    """NCC, or the default model adapted on the orthophoto it is scored on (`adapted`) or as it is."""
    if label == "ncc":
        return make_method("ncc")
    model = adapted_model(MODEL, out, [] if label == "adapted" else None)(site, ortho)
    return make_method("translocnet", model_path=model)


def score(method, ortho: Path, drive: Path) -> np.ndarray:
    """(N, 2) error vectors (E, N) of a drive's frames on the orthophoto, protocol known, seed 0."""
    src = GeoTiffSource(ortho)
    gt, res = run_protocol(method, KittiDrive(drive), src, src.crs, "known", progress=False)
    return estimates(res)[:, :2] - gt[:, :2]


def bias(err: np.ndarray) -> tuple[np.ndarray, int]:
    near = np.hypot(*err.T) < NEAR_M
    return (err[near].mean(0) if near.any() else np.full(2, np.nan)), int(near.sum())


def heading(v: np.ndarray) -> str:
    """Direction of a vector in E, N: compass point and degrees CCW from east, e.g. 'NW (146)'."""
    ang = np.degrees(np.arctan2(v[1], v[0])) % 360
    return f"{['E', 'NE', 'N', 'NW', 'W', 'SW', 'S', 'SE'][int((ang + 22.5) // 45) % 8]} ({ang:.0f})"


def compass(v: np.ndarray) -> str:
    """Length and direction, e.g. '2.7 m NW (146)'."""
    return f"{np.hypot(*v):.1f} m {heading(v)}" if np.isfinite(v).all() else "-"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--methods", nargs="+", default=["ncc", "adapted"], choices=["ncc", "translocnet", "adapted"]
    )
    ap.add_argument(
        "--raycast", type=int, default=50, help="frames per site ray-cast from its cloud.ply (0: none)"
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "real_bias")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    built = {}
    for site in sites():
        built[site] = build_site(site, args.out / site.name)
        b = built[site]
        print(f"{site.name}: sun {np.degrees(b['sun_az']):.0f} deg CCW from E, {np.degrees(b['sun_el']):.0f} deg up "
              f"(lit / shadow ground x{b['contrast']:.2f}); lean {b['lean'].round(2)} (corr {b['lean_corr']:.2f})",
              flush=True)  # fmt: skip
    site_rows = []
    for site, b in built.items():
        away = np.array([-np.cos(b["sun_az"]), -np.sin(b["sun_az"])])
        site_rows.append(
            f"| {site.name} | {np.degrees(b['sun_az']):.0f} / {np.degrees(b['sun_el']):.0f} | x{b['contrast']:.2f} | "
            f"{b['shadow_share']:.0%} | {heading(away)} | {b['lean'][0]:+.2f} / {b['lean'][1]:+.2f} "
            f"({b['lean_corr']:.2f}) | {compass(b['lean'] * 20)} |"
        )
    # the sites' own 10 frames each, then (--raycast) more frames ray-cast from each site's geometry where the
    # scan sees a whole world (its BEV disc inside the cloud): the same bias on a larger sample, and from
    # this project's LiDAR simulator rather than helsinki-dev's
    margin = ModelConfig(**json.loads(MODEL.with_suffix(".json").read_text())["model"]).bev_radius_m
    scan_sets = {"real": lambda site: site / "drive"}
    if args.raycast:
        scan_sets[f"ray-cast, {args.raycast} per site"] = raycast_drive_of(
            args.out / "raycast", args.raycast, margin_m=margin
        )
    errs = {}  # (scans, method, variant) -> {site: error vectors}; each method adapted once per orthophoto
    for label in args.methods:
        for variant in VARIANTS:
            for site, b in built.items():
                ortho = b["paths"][variant]
                method = method_for(label, site, ortho, args.out / site.name)
                for scans, drive_of in scan_sets.items():
                    errs.setdefault((scans, label, variant), {})[site] = score(method, ortho, drive_of(site))
    rows = []
    for scans in scan_sets:
        for label in args.methods:
            for variant, what in VARIANTS.items():
                per_site_errs = errs[(scans, label, variant)].values()
                d = np.concatenate([np.hypot(*e.T) for e in per_site_errs])
                per_site = []
                for e in per_site_errs:
                    v, n = bias(e)
                    per_site.append(f"{compass(v)}, {n} frames")
                rows.append(
                    f"| {scans} | {label} | {what} | {d.mean():.2f} | {np.median(d):.2f} | {(d < 1).mean():.0%} | "
                    + " | ".join(per_site)
                    + " |"
                )
                print(rows[-1], flush=True)
    if args.no_write:
        return 0
    body = f"""## Real orthophotos' bias: cast shadows and relief displacement on helsinki-dev (protocol known)

Command: `python benchmarks/real_bias.py --methods {" ".join(args.methods)} --raycast {args.raycast}`. Scans
`real`: the 30 real frames; `ray-cast`: {args.raycast} more per site, ray-cast from the site's `cloud.ply` with this
project's LiDAR simulator at street-level poses at least {margin:.0f} m (the model's BEV radius) inside the
geometry, so that every scan sees a whole world, as the real frames do. Protocol known, seed 0;
`adapted`: the default model after `translocnet adapt` on the orthophoto it is scored on. Bias: the mean error
vector (estimate - truth) of a site's frames within {NEAR_M:.0f} m, as length, compass direction and angle (deg
CCW from east). Sun and lean are fitted to each orthophoto with the site's `cloud.ply` (diagnosis only; the
script's docstring says how). Machine: {machine()}. Date: {time.strftime("%Y-%m-%d")}. Run time
{(time.time() - t0) / 60:.0f} min.

| site | sun azimuth / elevation [deg] | lit / shadow ground brightness | ground in cast shadow | shadows fall to | relief lean E / N (correlation) | a 20 m roof shifted |
|---|---|---|---|---|---|---|
{chr(10).join(site_rows)}

| scans | method | orthophoto | mean [m] | median [m] | within 1 m | bias, {" | ".join(s.name for s in built)} |
|---|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""
    write_section("real-bias", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
