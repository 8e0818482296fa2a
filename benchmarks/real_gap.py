"""Synthetic-to-real gap, split with helsinki-dev's real 3-D city geometry (`cloud.ply`).

    python benchmarks/real_gap.py            # everything: imagery, ray-cast scans, table, statistics, figures
    python benchmarks/real_gap.py --no-write # without touching BENCHMARKS.md

Per site, from its `cloud.ply` (same frame as `ortho.tif` and the ground truth):
  true-ortho     top-down colour of the highest cloud point per 0.5 m pixel on ortho.tif's grid (no relief
                 displacement, no facades, the cloud's own colours); outside the cloud's 100 m footprint (and
                 in gaps wider than 1 m) the real orthophoto;
  geometry-only  hillshade + height of the same top-down heights, grey, no colour at all (mid-grey outside);
  ray-cast scans the project's LiDAR simulator (synth/lidar.py, Embree) on surfels built from the cloud, at
                 the ground-truth poses, written as KITTI-layout drives (same OXTS, timestamps, calibration).
Every {scans} x {imagery} x {method} cell is scored with the evaluation engine (protocol known, seed 0, all
frames), beside the "truth rank": the share of window positions whose best-over-yaw score beats the true
position's (0% = the truth is the mode, 50% = no information). Then BEV channel and aerial colour/texture
statistics, real vs ray-cast vs synthetic (the val towns' generator, re-run small), and the figures in docs/.
helsinki-dev is used for diagnosis only: nothing here trains or tunes anything.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import rasterio
import torch
from PIL import Image
from scipy.spatial import cKDTree

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.helsinki import HELSINKI  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.cloud import read_ply, render_top, shade_height  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive, rescan_drive  # noqa: E402
from translocnet_ros.evaluation.metrics import frame_errors  # noqa: E402
from translocnet_ros.evaluation.protocol import (  # noqa: E402
    PROTOCOLS,
    draw_priors,
    estimates,
    run_protocol,
    score_results,
)
from translocnet_ros.geo.crs import MapFrame  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.localization.types import LocalizationError  # noqa: E402
from translocnet_ros.model.rasterize import rasterize_bev  # noqa: E402
from translocnet_ros.synth.cloud_scene import CloudScene, raycast_drive  # noqa: E402
from translocnet_ros.synth.lidar import LidarModel  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402
from translocnet_ros.synth.town import TownSpec, generate_town, write_geotiff  # noqa: E402

DOCS = ROOT / "docs"
SCANS = {"real": "real scans", "raycast": "ray-cast scans (our simulator, cloud.ply)"}
IMAGERY = {
    "real": "real ortho",
    "true": "true-ortho from cloud",
    "geometry": "geometry-only (height shade)",
}
PROTOCOL = "known"
SEED = 0


def sites() -> list[Path]:
    return sorted(
        p for p in HELSINKI.iterdir() if (p / "cloud.ply").is_file() and (p / "ortho.tif").is_file()
    )


# ---------------------------------------------------------------- inputs built from the cloud


def build_site(site: Path, out: Path, force: bool) -> dict:
    """true-ortho / geometry-only GeoTIFFs on ortho.tif's grid and the ray-cast drive; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "imagery": {
            "real": site / "ortho.tif",
            "true": out / "true_ortho.tif",
            "geometry": out / "geometry.tif",
        },
        "scans": {"real": site / "drive", "raycast": out / "raycast_drive"},
    }
    cloud = None
    if force or not all(p.exists() for p in paths["imagery"].values()):
        cloud = read_ply(site / "cloud.ply")
        with rasterio.open(site / "ortho.tif") as ds:
            real, transform, crs = ds.read([1, 2, 3]).transpose(1, 2, 0), ds.transform, ds.crs
        top = render_top(cloud, transform, real.shape[:2])
        write_geotiff(paths["imagery"]["true"], np.where(top.valid[..., None], top.rgb, real), transform, crs)
        geo = shade_height(top.height, top.valid, abs(transform.a))
        write_geotiff(paths["imagery"]["geometry"], geo, transform, crs)
        np.save(out / "top_valid.npy", top.valid)
    drive_dir = paths["scans"]["raycast"]
    drive = KittiDrive(site / "drive")
    if force or not all(
        (drive_dir / "velodyne_points" / "data" / f"{f:010d}.bin").exists() for f in drive.frames
    ):
        cloud = read_ply(site / "cloud.ply") if cloud is None else cloud
        gt = np.loadtxt(site / "gt_grid.csv", delimiter=",", skiprows=1, ndmin=2)
        by_frame = {int(r[0]): r for r in gt}
        poses = np.array(
            [[by_frame[f][1], by_frame[f][2], by_frame[f][4], by_frame[f][3]] for f in drive.frames]
        )
        t0 = time.perf_counter()
        raycast_drive(CloudScene(cloud), drive, poses, drive_dir, seed=SEED)
        print(f"{site.name}: ray-cast {len(poses)} scans in {time.perf_counter() - t0:.1f} s", flush=True)
    return paths


def build_synthetic(out: Path, n_towns: int, n_frames: int) -> list[Path]:
    """The val towns' specs re-run with a short drive: a sample of what the model was trained on."""
    towns = []
    for name, spec in split_towns("val", n_towns):
        d = out / "synth" / name
        if not (d / "drive_00" / "velodyne_points" / "data" / f"{n_frames - 1:010d}.bin").exists():
            small = TownSpec(**{**spec.__dict__, "n_frames": n_frames, "size_m": 400.0})
            generate_town(small, d, progress=False)
        towns.append(d)
    return towns


def remap_intensity(src: Path, out: Path, source: np.ndarray, target: np.ndarray) -> Path:
    """A copy of a drive whose intensities are quantile-mapped from the `source` distribution onto `target`'s
    (geometry, poses, OXTS and calibration unchanged)."""
    q = np.linspace(0, 1, 201)
    sq, tq = np.quantile(source, q), np.quantile(target, q)
    drive = KittiDrive(src)

    def scan_of(f: int) -> np.ndarray:
        scan = drive.scan_velo(f).copy()
        scan[:, 3] = np.interp(scan[:, 3], sq, tq)
        return scan

    return rescan_drive(drive, out, scan_of)


def nn_intensity(geometry: Path, intensity: Path, out: Path) -> Path:
    """A copy of drive `geometry` whose points take the intensity of the nearest point of drive `intensity`
    (same poses): the real scans' geometry with the simulator's intensities."""
    geo, inten = KittiDrive(geometry), KittiDrive(intensity)

    def scan_of(f: int) -> np.ndarray:
        scan, ref = geo.scan_velo(f).copy(), inten.scan_velo(f)
        scan[:, 3] = ref[cKDTree(ref[:, :3]).query(scan[:, :3])[1], 3]
        return scan

    return rescan_drive(geo, out, scan_of)


def restyle_like(true_path: Path, real_path: Path, valid: np.ndarray, out: Path) -> Path:
    """The true-ortho with the real ortho's radiometry inside the cloud's footprint: per-channel histogram
    matching, then the Gaussian blur that gives the same mean gradient magnitude. Geometry stays the cloud's."""
    with rasterio.open(true_path) as ds:
        true, transform, crs = ds.read([1, 2, 3]).transpose(1, 2, 0), ds.transform, ds.crs
    with rasterio.open(real_path) as ds:
        real = ds.read([1, 2, 3]).transpose(1, 2, 0)
    q = np.linspace(0, 1, 257)
    styled = true.astype(np.float32)
    for c in range(3):
        styled[..., c] = np.interp(
            styled[..., c], np.quantile(true[valid, c], q), np.quantile(real[valid, c], q)
        )

    def grad(img):
        g = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1))[valid].mean()

    want = grad(real.astype(np.float32))
    sigmas = np.arange(0.0, 3.01, 0.25)
    blurred = [styled if s == 0 else cv2.GaussianBlur(styled, (0, 0), s) for s in sigmas]
    best = int(np.argmin([abs(grad(b) - want) for b in blurred]))
    img = np.where(valid[..., None], np.clip(blurred[best], 0, 255), real).astype(np.uint8)
    write_geotiff(out, img, transform, crs)
    print(f"{out.parent.name}: restyled true-ortho, blur sigma {sigmas[best]:.2f} px", flush=True)
    return out


def build_ablations(site_paths: dict, synth: list[Path], out: Path, force: bool) -> None:
    """Intensity swaps between the scan sets and a true-ortho restyled like the real ortho."""
    pooled = {
        key: np.concatenate(
            [
                KittiDrive(p["scans"][key]).scan_velo(f)[:, 3]
                for p in site_paths.values()
                for f in KittiDrive(p["scans"][key]).frames
            ]
        )
        for key in ("real", "raycast")
    }
    synthetic = np.concatenate(
        [
            KittiDrive(t / "drive_00").scan_velo(f)[:, 3]
            for t in synth
            for f in KittiDrive(t / "drive_00").frames
        ]
    )
    for name, p in site_paths.items():
        d = out / name
        for key, src, source, target in (
            ("real_as_synth", p["scans"]["real"], pooled["real"], synthetic),
            ("raycast_as_real", p["scans"]["raycast"], pooled["raycast"], pooled["real"]),
        ):
            dst = d / f"{key}_drive"
            if force or not dst.exists():
                remap_intensity(src, dst, source, target)
            p["scans"][key] = dst
        dst = d / "raycast_beams_drive"
        if force or not dst.exists():  # the real scans' beam layout: 64 beams evenly from +2.0 to -24.8 deg
            step = (2.0 + 24.8) / 63
            beams = LidarModel(upper_deg=(2.0, 2.0 - 31 * step), lower_deg=(2.0 - 32 * step, -24.8))
            drive = KittiDrive(p["scans"]["real"])
            gt = np.loadtxt(HELSINKI / name / "gt_grid.csv", delimiter=",", skiprows=1, ndmin=2)
            by_frame = {int(r[0]): r for r in gt}
            poses = np.array(
                [[by_frame[f][1], by_frame[f][2], by_frame[f][4], by_frame[f][3]] for f in drive.frames]
            )
            raycast_drive(CloudScene(read_ply(HELSINKI / name / "cloud.ply")), drive, poses, dst, SEED, beams)
        p["scans"]["raycast_beams"] = dst
        dst = d / "real_nn_int_drive"
        if force or not dst.exists():
            nn_intensity(p["scans"]["real"], p["scans"]["raycast"], dst)
        p["scans"]["real_nn_int"] = dst
        restyled = d / "true_ortho_restyled.tif"
        if force or not restyled.exists():
            restyle_like(p["imagery"]["true"], p["imagery"]["real"], np.load(d / "top_valid.npy"), restyled)
        p["imagery"]["restyled"] = restyled


ABLATIONS = [  # (scans, imagery, what it isolates)
    ("real_as_synth", "true", "real scans, intensities mapped onto the synthetic towns' distribution"),
    ("real_as_synth", "real", "the same on the real ortho"),
    ("raycast_as_real", "true", "ray-cast scans, intensities mapped onto the real scans' distribution"),
    ("raycast", "restyled", "ray-cast scans on the true-ortho restyled like the real ortho (colours, blur)"),
    ("real_as_synth", "restyled", "real scans (synthetic-like intensities) on the restyled true-ortho"),
    ("real_nn_int", "true", "real scan geometry, each point with the nearest ray-cast point's intensity"),
    (
        "raycast_beams",
        "true",
        "ray-cast scans with the real scans' beam layout (64 beams evenly +2..-24.8 deg)",
    ),
]


# ---------------------------------------------------------------- evaluation with the engine


def evaluate(method, pairs: list[tuple[Path, Path]]):
    """pairs: (drive, ortho) per site -> (summary, gt (N, 3), results) over all sites, protocol known."""
    gts, results = [], []
    for drive_dir, ortho in pairs:
        src = GeoTiffSource(ortho)
        gt, res = run_protocol(method, KittiDrive(drive_dir), src, src.crs, PROTOCOL, SEED, progress=False)
        gts.append(gt)
        results += res
    gt = np.concatenate(gts)
    return score_results(gt, results, method, PROTOCOL), gt, results


def cell(method, pairs: list[tuple[Path, Path]], cache: Path, force: bool) -> dict:
    """Summary, per-frame position errors and truth ranks of one method on one {scans} x {imagery} pairing;
    kept in `cache` (JSON) so that adding a row does not re-run the others (--force re-runs everything)."""
    if cache.exists() and not force:
        return json.loads(cache.read_text())
    s, gt, res = evaluate(method, pairs)
    est = estimates(res)
    rank = truth_rank(method, pairs) if hasattr(method, "score_volume") else np.full(len(res), np.nan)
    out = {
        "summary": s,
        "errors": np.round(frame_errors(gt, est)["position"], 3).tolist(),
        "truth_rank": [None if np.isnan(r) else round(float(r), 4) for r in rank],
        "truth_rank_mean": None if np.isnan(rank).all() else float(np.nanmean(rank)),
        "no_estimate": sum(bool(r.error) for r in res),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out) + "\n")
    return out


def truth_rank(method, pairs: list[tuple[Path, Path]]) -> np.ndarray:
    """Per frame: share of window positions whose best-over-yaw score beats the true position's."""
    window = PROTOCOLS[PROTOCOL]
    out = []
    for drive_dir, ortho in pairs:
        src = GeoTiffSource(ortho)
        drive = KittiDrive(drive_dir)
        gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses
        priors = draw_priors(gt, PROTOCOL, SEED)
        for k, f in enumerate(drive.frames):
            try:
                vol = method.score_volume(drive.scan_base(f), src, priors[k], window)
            except LocalizationError:  # scored at the prior by the protocol; no volume to rank
                out.append(np.nan)
                continue
            best = vol.logits.max(axis=0)
            cell = vol.cell_of(gt[k])
            if cell is None:
                out.append(np.nan)
                continue
            out.append(float(np.mean(best > best[cell[1], cell[2]])))
    return np.array(out)


# ---------------------------------------------------------------- statistics


def scan_stats(scans: list[np.ndarray], bev_px: int, m_per_px: float) -> dict:
    """Raw scan and BEV-raster (the model's own rasterize_bev) statistics, averaged over scans."""
    rows = []
    for s in scans:
        r = np.hypot(s[:, 0], s[:, 1])
        bev, obs = rasterize_bev(
            torch.from_numpy(np.ascontiguousarray(s[:, :4], np.float32)), bev_px, m_per_px
        )
        bev, obs = bev.numpy(), obs[0].numpy() > 0
        ground = bev[1] > 0
        rows.append(
            {
                "points": len(s),
                "range_p50": np.percentile(r, 50),
                "range_p90": np.percentile(r, 90),
                "intensity_mean": s[:, 3].mean(),
                "intensity_std": s[:, 3].std(),
                "observed": obs.mean(),
                "log_density": bev[0][obs].mean(),
                "band_ground": bev[1][obs].mean(),
                "band_0.25-1": bev[2][obs].mean(),
                "band_1-2": bev[3][obs].mean(),
                "band_2-4": bev[4][obs].mean(),
                "band_>4": bev[5][obs].mean(),
                "ground_refl": bev[6][ground].mean() if ground.any() else 0.0,
                "top_height": bev[7][obs].mean(),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def image_stats(patches: list[np.ndarray], rgb_mean=(0.45, 0.45, 0.42), rgb_std=(0.22, 0.21, 0.21)) -> dict:
    """Colour and texture of aerial patches, as the aerial encoder sees them (after its normalization)."""
    rows = []
    for p in patches:
        x = p.astype(np.float32) / 255.0
        z = (x - np.array(rgb_mean)) / np.array(rgb_std)
        hsv = cv2.cvtColor(p, cv2.COLOR_RGB2HSV)
        grey = cv2.cvtColor(p, cv2.COLOR_RGB2GRAY).astype(np.float32)
        gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
        c = p.astype(np.int32)
        rows.append(
            {
                "norm_mean": float(z.mean()),
                "norm_std": float(z.std()),
                "saturation": float(hsv[..., 1].mean() / 255.0),
                "green_frac": float(np.mean((c[..., 1] > c[..., 0] + 8) & (c[..., 1] > c[..., 2] + 8))),
                "gradient": float(np.hypot(gx, gy).mean()),
                "laplacian_var": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
            }
        )
    return {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}


def patches_at(
    ortho: Path, drive_dir: Path, size_m: float, m_per_px: float, every: int = 1
) -> list[np.ndarray]:
    """Patches around the true poses that lie wholly inside the imagery."""
    src = GeoTiffSource(ortho)
    gt = KittiDrive(drive_dir).ground_truth(MapFrame.from_any(src.crs)).poses
    patches = [src.patch(p.x, p.y, size_m, m_per_px) for p in gt[::every]]
    return [q.image for q in patches if q.valid.all()]


# ---------------------------------------------------------------- figures


def save_small(fig, path: Path, dpi: int = 80, max_kb: int = 290) -> None:
    """PNG under max_kb: matplotlib's render, quantized to a palette when needed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    for colours in (None, 256, 128, 64):
        out = io.BytesIO()
        (img if colours is None else img.quantize(colours, method=Image.Quantize.MEDIANCUT)).save(
            out, "PNG", optimize=True
        )
        if out.tell() <= max_kb * 1024:
            break
    path.write_bytes(out.getvalue())
    print(f"wrote {path.relative_to(ROOT)} ({out.tell() // 1024} kB)")


def figure_imagery(site_paths: dict, synth_towns: list[Path]) -> None:
    names = list(site_paths)
    fig, axes = plt.subplots(len(names), 4, figsize=(13, 3.3 * len(names)))
    for r, name in enumerate(names):
        p = site_paths[name]
        drive = KittiDrive(p["scans"]["real"])
        gt = drive.ground_truth(MapFrame.from_any(GeoTiffSource(p["imagery"]["real"]).crs)).poses
        cx, cy = np.mean([q.x for q in gt]), np.mean([q.y for q in gt])
        for c, key in enumerate(IMAGERY):
            src = GeoTiffSource(p["imagery"][key])
            axes[r, c].imshow(src.patch(cx, cy, 100.0, 0.5).image, extent=[-50, 50, -50, 50])
            if c == 0:
                scan = drive.scan_base(drive.frames[0])
                q = gt[0]
                xy = q.transform_points(scan[:, :2].astype(np.float64)) - [cx, cy]
                keep = (scan[:, 2] > -0.5) & (np.abs(xy) < 50).all(1)
                axes[r, c].scatter(*xy[keep][::4].T, s=0.2, c="cyan", alpha=0.5)
            axes[r, c].set_title(f"{name[:6]}…: {IMAGERY[key]}" + (" + scan 0" if c == 0 else ""), fontsize=9)
        town = synth_towns[r % len(synth_towns)]
        src = GeoTiffSource(town / "ortho.tif")
        g = KittiDrive(town / "drive_00").ground_truth(MapFrame.from_any(src.crs)).poses[0]
        axes[r, 3].imshow(src.patch(g.x, g.y, 100.0, 0.5).image, extent=[-50, 50, -50, 50])
        axes[r, 3].set_title(f"synthetic (training look): {town.name}", fontsize=9)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(
        "helsinki-dev: real orthophoto, true-ortho and geometry-only from cloud.ply, and a synthetic town"
    )
    fig.tight_layout()
    save_small(fig, DOCS / "real_gap_imagery.png")


def _pca_rgb(maps: list[np.ndarray], masks: list[np.ndarray]) -> list[np.ndarray]:
    """Feature maps (D, H, W) -> RGB (H, W, 3) on one PCA basis fitted on all of them (masked cells)."""
    samples = np.concatenate([m.reshape(m.shape[0], -1)[:, k.ravel()].T for m, k in zip(maps, masks)])
    mean = samples.mean(0)
    _, _, vt = np.linalg.svd(samples - mean, full_matrices=False)
    proj = (samples - mean) @ vt[:3].T
    lo, hi = np.percentile(proj, 2, axis=0), np.percentile(proj, 98, axis=0)
    out = []
    for m, k in zip(maps, masks):
        x = ((m.reshape(m.shape[0], -1).T - mean) @ vt[:3].T - lo) / (hi - lo + 1e-9)
        rgb = np.clip(x, 0, 1).reshape(*m.shape[1:], 3)
        rgb[~k] = 1.0
        out.append(rgb)
    return out


FRAME_ROWS = [("real", "real"), ("raycast", "real"), ("real", "true"), ("raycast", "true")]


def _north_up(maps: np.ndarray, yaw: float) -> np.ndarray:
    """Vehicle-aligned maps (C, S, S) (x forward = +column) rotated counter-clockwise by yaw: north-up."""
    s = maps.shape[-1]
    m = cv2.getRotationMatrix2D(((s - 1) / 2, (s - 1) / 2), float(np.degrees(yaw)), 1.0)
    return np.stack([cv2.warpAffine(c.astype(np.float32), m, (s, s), flags=cv2.INTER_LINEAR) for c in maps])


def _crop(ma: np.ndarray, dx: float, dy: float, size: int) -> np.ndarray:
    """size x size cells of the aerial feature map (D, A, A, 1 m cells, prior at the centre corner) centred on
    (dx, dy) metres east / north of the prior."""
    a = ma.shape[-1]
    c0 = int(round(a / 2 + dx - size / 2))
    r0 = int(round(a / 2 - dy - size / 2))
    out = np.zeros((ma.shape[0], size, size), np.float32)
    rs, cs = slice(max(r0, 0), min(r0 + size, a)), slice(max(c0, 0), min(c0 + size, a))
    out[:, rs.start - r0 : rs.stop - r0, cs.start - c0 : cs.stop - c0] = ma[:, rs, cs]
    return out


def figure_frame(site_paths: dict, site: str, frame_pos: int, tln) -> dict:
    """One frame, TransLocNet with real / ray-cast scans on the real ortho / true-ortho: likelihood (best over
    yaw) over the patch, the aerial and LiDAR BEV matching features on one PCA basis in the 64 m square at the
    true pose, and their per-cell cosine similarity there (the score is its sum over observed cells)."""
    p = site_paths[site]
    crs = GeoTiffSource(p["imagery"]["real"]).crs
    window = PROTOCOLS[PROTOCOL]
    cfg = tln.cfg
    size_m = cfg.aerial_m(window.radius_m)
    rows, info = [], {"site": site}
    n = len(FRAME_ROWS)
    for scans_key, img_key in FRAME_ROWS:
        drive = KittiDrive(p["scans"][scans_key])
        f = drive.frames[frame_pos]
        gt = drive.ground_truth(MapFrame.from_any(crs)).poses
        prior, truth = draw_priors(gt, PROTOCOL, SEED)[frame_pos], gt[frame_pos]
        scan = drive.scan_base(f)
        src = GeoTiffSource(p["imagery"][img_key])
        patch = src.patch(prior.x, prior.y, size_m, cfg.m_per_px)
        est = tln.localize(scan, src, prior, window)
        with torch.no_grad():
            pts = torch.from_numpy(np.ascontiguousarray(scan, np.float32))
            mb, ma, observed = tln.module.encode(pts, torch.from_numpy(patch.image.transpose(2, 0, 1).copy()))
        mb, ma, ob = mb[0].numpy(), ma.numpy(), observed[0].numpy()
        s = mb.shape[-1]
        gx, gy = truth.x - prior.x, truth.y - prior.y
        bev_t = _north_up(mb * ob, truth.yaw)
        ob_t = _north_up(ob, truth.yaw)[0] > 0.5
        aer_t = _crop(ma, gx, gy, s)
        sim_t = np.where(ob_t, (bev_t * aer_t).sum(0), np.nan)
        ex, ey = est.pose.x - prior.x, est.pose.y - prior.y
        sim_e = (_north_up(mb * ob, est.pose.yaw) * _crop(ma, ex, ey, s)).sum(0)[
            _north_up(ob, est.pose.yaw)[0] > 0.5
        ]
        err = float(np.hypot(ex - gx, ey - gy))
        info[f"{scans_key}/{img_key}"] = {
            "frame": f,
            "error_m": round(err, 2),
            "confidence": round(est.confidence, 3),
            "cos_at_truth": round(float(np.nanmean(sim_t)), 3),
            "cos_at_estimate": round(float(sim_e.mean()), 3),
        }
        rows.append(
            (scans_key, img_key, patch, est, bev_t, ob_t, aer_t, sim_t, err, (gx, gy), (ex, ey), truth)
        )
    full = np.ones_like(rows[0][5])
    rgbs = _pca_rgb([r[6] for r in rows] + [r[4] for r in rows], [full] * n + [r[5] for r in rows])
    fig, axes = plt.subplots(n, 5, figsize=(17, 3.5 * n))
    half = size_m / 2
    wr = window.radius_m
    for r, (
        scans_key,
        img_key,
        patch,
        est,
        _bev,
        _ob,
        _aer,
        sim_t,
        err,
        (gx, gy),
        (ex, ey),
        truth,
    ) in enumerate(rows):
        lik = est.likelihood / est.likelihood.max()
        lik_ext = [-wr - 0.5, wr + 0.5, -wr - 0.5, wr + 0.5]
        ax = axes[r, 0]
        ax.imshow(patch.image, extent=[-half, half, -half, half])
        ax.add_patch(plt.Rectangle((-wr, -wr), 2 * wr, 2 * wr, fill=False, ec="white", ls="--", lw=0.8))
        ax.plot(0, 0, "wx", ms=8, mew=2, label="prior")
        ax.plot(gx, gy, "o", mfc="none", mec="lime", ms=11, mew=2, label="truth")
        ax.plot(ex, ey, "+", color="red", ms=13, mew=2.5, label="estimate")
        ax.arrow(gx, gy, 6 * np.cos(truth.yaw), 6 * np.sin(truth.yaw), color="lime", width=0.5)
        ax.set_title(
            f"{SCANS[scans_key].split(' (')[0]} on {IMAGERY[img_key]}: error {err:.1f} m", fontsize=9
        )
        if r == 0:
            ax.legend(fontsize=7, loc="lower left")
        ax = axes[r, 1]
        im = ax.imshow(np.log10(np.maximum(lik, 1e-4)), extent=lik_ext, cmap="viridis", vmin=-4, vmax=0)
        ax.plot(gx, gy, "o", mfc="none", mec="white", ms=11, mew=2)
        ax.plot(ex, ey, "+", color="red", ms=13, mew=2.5)
        ax.set_title(f"log10 likelihood, best over yaw (conf. {est.confidence:.2f})", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.045)
        b = cfg.bev_radius_m
        sq = [gx - b, gx + b, gy - b, gy + b]
        axes[r, 2].imshow(rgbs[r], extent=sq)
        axes[r, 2].set_title("aerial features at the truth (PCA)", fontsize=9)
        axes[r, 3].imshow(rgbs[n + r], extent=sq)
        axes[r, 3].set_title("LiDAR BEV features, north-up (same PCA)", fontsize=9)
        im = axes[r, 4].imshow(sim_t, extent=sq, cmap="RdBu_r", vmin=-1, vmax=1)
        fig.colorbar(im, ax=axes[r, 4], fraction=0.045)
        key = f"{scans_key}/{img_key}"
        axes[r, 4].set_title(
            f"cosine at truth: mean {info[key]['cos_at_truth']:.2f} (at estimate {info[key]['cos_at_estimate']:.2f})",
            fontsize=9,
        )
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.suptitle(
        f"TransLocNet, helsinki-dev site {site[:6]}…, frame {info['real/real']['frame']}; "
        "column 1: 104 m patch around the prior (dashed: search window); columns 3-5: the 64 m square at the truth"
    )
    fig.tight_layout()
    save_small(fig, DOCS / "real_gap_frame.png")
    return info


def figure_bev(examples: dict[str, np.ndarray], cfg) -> None:
    names = [
        "log density",
        "ground",
        "0.25-1 m",
        "1-2 m",
        "2-4 m",
        "> 4 m",
        "ground reflectance",
        "top height",
    ]
    fig, axes = plt.subplots(len(examples), 8, figsize=(16, 2.2 * len(examples)))
    for r, (label, scan) in enumerate(examples.items()):
        bev, _ = rasterize_bev(
            torch.from_numpy(np.ascontiguousarray(scan, np.float32)), cfg.bev_px, cfg.m_per_px
        )
        for c in range(8):
            vmax = {0: 4.0, 6: 0.8, 7: 1.0}.get(c, 1.0)
            axes[r, c].imshow(bev[c].numpy(), cmap="gray" if c < 6 else "viridis", vmin=0, vmax=vmax)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(names[c], fontsize=9)
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.suptitle("TransLocNet's BEV input channels (64 m, vehicle-aligned, x forward = right)")
    fig.tight_layout()
    save_small(fig, DOCS / "real_gap_bev.png")


def figure_stats(scan_sets: dict[str, list[np.ndarray]], patch_sets: dict[str, list[np.ndarray]]) -> None:
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for label, scans in scan_sets.items():
        allp = np.concatenate(scans)
        axes[0].hist(allp[:, 3], bins=50, range=(0, 1), density=True, histtype="step", lw=1.5, label=label)
        axes[1].hist(
            np.hypot(allp[:, 0], allp[:, 1]),
            bins=60,
            range=(0, 120),
            density=True,
            histtype="step",
            lw=1.5,
            label=label,
        )
    axes[0].set_title("LiDAR intensity")
    axes[1].set_title("horizontal range [m]")
    axes[1].set_yscale("log")
    for label, patches in patch_sets.items():
        px = np.concatenate([p.reshape(-1, 3) for p in patches]).astype(np.float32)
        axes[2].hist(px.mean(1), bins=64, range=(0, 255), density=True, histtype="step", lw=1.5, label=label)
        grads = []
        for p in patches:
            g = cv2.cvtColor(p, cv2.COLOR_RGB2GRAY).astype(np.float32)
            grads.append(np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)).ravel())
        axes[3].hist(
            np.concatenate(grads), bins=60, range=(0, 600), density=True, histtype="step", lw=1.5, label=label
        )
    axes[2].set_title("aerial brightness (mean of RGB)")
    axes[3].set_title("aerial gradient magnitude (Sobel, 0.5 m px)")
    axes[3].set_yscale("log")
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    save_small(fig, DOCS / "real_gap_stats.png")


# ---------------------------------------------------------------- main


def log_cell(what: str, name: str, c: dict) -> None:
    s = c["summary"]
    rank = "-" if c["truth_rank_mean"] is None else f"{c['truth_rank_mean']:.0%}"
    print(
        f"{what:32s} {name:12s} mean {s['position_error_m']['mean']:6.2f} m median "
        f"{s['position_error_m']['median']:6.2f} m lat R@1m {s['lateral_recall']['1m']:.0%} truth rank {rank}",
        flush=True,
    )


def pick_frame(site_paths: dict, per_frame: dict) -> tuple[str, int]:
    """A typical failure: TransLocNet fails with the real scans on the real ortho (> 5 m) and works with the
    ray-cast scans on the true-ortho (< 2 m), truth well inside the window; the largest such failure."""
    real = per_frame[("real", "real", "translocnet")]
    ok = per_frame[("raycast", "true", "translocnet")]
    names, pos, inside = [], [], []
    for name, p in site_paths.items():
        drive = KittiDrive(p["scans"]["real"])
        gt = drive.ground_truth(MapFrame.from_any(GeoTiffSource(p["imagery"]["real"]).crs)).poses
        priors = draw_priors(gt, PROTOCOL, SEED)
        for k, (g, q) in enumerate(zip(gt, priors)):
            names.append(name)
            pos.append(k)
            inside.append(max(abs(g.x - q.x), abs(g.y - q.y)) < PROTOCOLS[PROTOCOL].radius_m - 4)
    score = np.where((real > 5) & (ok < 2) & np.array(inside), real, -np.inf)
    k = int(np.argmax(score)) if np.isfinite(score).any() else int(np.argmax(real))
    return names[k], pos[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["prior", "ncc", "translocnet"])
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "real_gap")
    ap.add_argument("--force", action="store_true", help="rebuild the imagery and ray-cast scans")
    ap.add_argument("--synth-towns", type=int, default=4, help="val towns re-run small for the statistics")
    ap.add_argument("--synth-frames", type=int, default=20)
    ap.add_argument(
        "--frame", default=None, help="SITE:INDEX of the frame to draw (default: picked by error)"
    )
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--frame-only", action="store_true", help="only draw the --frame figure (inputs built)")
    args = ap.parse_args()
    torch.set_num_threads(2)

    site_paths = {s.name: build_site(s, args.out / s.name, args.force) for s in sites()}
    if args.frame_only:
        if not args.frame:
            ap.error("--frame-only needs --frame SITE:INDEX")
        site_key, _, idx = args.frame.partition(":")
        site = next(s for s in site_paths if s.startswith(site_key))
        print(json.dumps(figure_frame(site_paths, site, int(idx), make_method("translocnet")), indent=1))
        return 0
    synth = build_synthetic(args.out, args.synth_towns, args.synth_frames)
    args.synth_towns_list = synth

    # 1. the table
    table, per_frame = {}, {}
    methods = {name: make_method(name) for name in args.methods}
    cells = args.out / "cells"
    for scans in SCANS:
        for img in IMAGERY:
            pairs = [(p["scans"][scans], p["imagery"][img]) for p in site_paths.values()]
            for name, method in methods.items():
                c = cell(method, pairs, cells / f"{scans}__{img}__{name}.json", args.force)
                table[(scans, img, name)] = c
                per_frame[(scans, img, name)] = np.array(c["errors"])
                log_cell(f"{scans}/{img}", name, c)
    build_ablations(site_paths, synth, args.out, args.force)
    ablation = {}
    for scans, img, label in ABLATIONS:
        pairs = [(p["scans"][scans], p["imagery"][img]) for p in site_paths.values()]
        for name in ("ncc", "translocnet"):
            if name in methods:
                c = cell(methods[name], pairs, cells / f"{scans}__{img}__{name}.json", args.force)
                ablation[(scans, img, name)] = {**c, "label": label}
                log_cell(f"ablation {scans}/{img}", name, c)
    reference = {}
    for name in ("ncc", "translocnet"):
        if name in methods:
            pairs = [(t / "drive_00", t / "ortho.tif") for t in synth]
            reference[name] = cell(methods[name], pairs, cells / f"synthetic__{name}.json", args.force)
            log_cell("synthetic reference", name, reference[name])

    # 2. statistics
    tln = methods.get("translocnet") or make_method("translocnet")
    cfg = tln.cfg
    scan_sets = {
        "real scans": [
            KittiDrive(p["scans"]["real"]).scan_base(f)
            for p in site_paths.values()
            for f in KittiDrive(p["scans"]["real"]).frames
        ],
        "ray-cast scans": [
            KittiDrive(p["scans"]["raycast"]).scan_base(f)
            for p in site_paths.values()
            for f in KittiDrive(p["scans"]["raycast"]).frames
        ],
        "synthetic towns": [
            KittiDrive(t / "drive_00").scan_base(f) for t in synth for f in KittiDrive(t / "drive_00").frames
        ],
    }
    scan_table = {k: scan_stats(v, cfg.bev_px, cfg.m_per_px) for k, v in scan_sets.items()}
    size = 2 * cfg.bev_radius_m
    patch_sets = {
        IMAGERY["real"]: [
            q
            for p in site_paths.values()
            for q in patches_at(p["imagery"]["real"], p["scans"]["real"], size, cfg.m_per_px)
        ],
        IMAGERY["true"]: [
            q
            for p in site_paths.values()
            for q in patches_at(p["imagery"]["true"], p["scans"]["real"], size, cfg.m_per_px)
        ],
        "synthetic towns": [
            q for t in synth for q in patches_at(t / "ortho.tif", t / "drive_00", size, cfg.m_per_px, every=2)
        ],
    }
    image_table = {k: image_stats(v) for k, v in patch_sets.items()}
    (args.out / "stats.json").write_text(
        json.dumps({"scans": scan_table, "imagery": image_table}, indent=2) + "\n"
    )

    # 3. figures
    DOCS.mkdir(exist_ok=True)
    figure_imagery(site_paths, synth)
    figure_stats(scan_sets, patch_sets)
    figure_bev(
        {
            "real scan": scan_sets["real scans"][0],
            "ray-cast scan (same pose)": scan_sets["ray-cast scans"][0],
            "synthetic town scan": scan_sets["synthetic towns"][0],
        },
        cfg,
    )
    if args.frame:
        site_key, _, idx = args.frame.partition(":")
        site = next(s for s in site_paths if s.startswith(site_key))
        frame_pos = int(idx)
    else:
        site, frame_pos = pick_frame(site_paths, per_frame)
    info = figure_frame(site_paths, site, frame_pos, tln)
    (args.out / "frame.json").write_text(json.dumps(info, indent=2) + "\n")

    if not args.no_write:
        write_section("real-gap", section(table, ablation, reference, scan_table, image_table, args))
    return 0


def section(table, ablation, reference, scan_table, image_table, args) -> str:
    lines = [
        "## Synthetic-to-real gap: diagnosis",
        "",
        "Command: `python benchmarks/real_gap.py` (after `source scripts/env.sh`). helsinki-dev, 3 sites x 10 "
        "frames, protocol known, seed 0. Each site's `cloud.ply` gives a true-ortho (colour of the highest "
        "point per 0.5 m pixel; real ortho outside the cloud's 100 m footprint), a geometry-only picture "
        "(hillshade + height, grey) and ray-cast scans (`synth/lidar.py` on surfels of the cloud, at the true "
        f"poses). Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}. Reasoning and pictures: "
        "[docs/real_gap.md](docs/real_gap.md).",
        "",
        "Position error mean / median [m], lateral recall@1m, and the truth rank (share of window positions "
        "scoring above the true one, best over yaw; 0% = truth is the mode, ~50% = no information):",
        "",
        "| scans | imagery | " + " | ".join(args.methods) + " |",
        "|---|---|" + "---|" * len(args.methods),
    ]
    for scans, sl in SCANS.items():
        for img, il in IMAGERY.items():
            cells = []
            for m in args.methods:
                t = table[(scans, img, m)]
                s = t["summary"]
                cell = f"{s['position_error_m']['mean']:.1f} / {s['position_error_m']['median']:.1f}"
                if m != "prior":
                    cell += f", lat {s['lateral_recall']['1m']:.0%}, rank {t['truth_rank_mean']:.0%}"
                cells.append(cell)
            lines.append(f"| {sl.split(' (')[0]} | {il} | " + " | ".join(cells) + " |")
    for name, r in reference.items():
        s = r["summary"]
        lines.append(
            f"\nReference, {name} on {len(args.synth_towns_list)} synthetic val towns re-generated small "
            f"(400 m, {s['n']} frames, {r['no_estimate']} with the prior's patch off the town, scored at the "
            f"prior): {s['position_error_m']['mean']:.2f} / {s['position_error_m']['median']:.2f} m, "
            f"truth rank {r['truth_rank_mean']:.0%}."
        )
    lines += [
        "",
        "Ablations (what changes between the cells above), ncc | translocnet:",
        "",
        "| scans | imagery | what it isolates | ncc | translocnet |",
        "|---|---|---|---|---|",
    ]
    for scans, img, label in ABLATIONS:
        cells = []
        for m in ("ncc", "translocnet"):
            t = ablation.get((scans, img, m))
            if t is None:
                cells.append("-")
                continue
            s = t["summary"]
            cells.append(
                f"{s['position_error_m']['mean']:.1f} / {s['position_error_m']['median']:.1f}, "
                f"rank {t['truth_rank_mean']:.0%}"
            )
        lines.append(f"| {scans} | {img} | {label} | " + " | ".join(cells) + " |")
    keys = list(next(iter(scan_table.values())))
    lines += [
        "",
        "Scans (per-scan means; BEV channels as `model/rasterize.py` makes them over TransLocNet's 64 m template, "
        "averaged over observed cells):",
        "",
        "| scans | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name, st in scan_table.items():
        lines.append(f"| {name} | " + " | ".join(f"{st[k]:.3g}" for k in keys) + " |")
    keys = list(next(iter(image_table.values())))
    lines += [
        "",
        "Aerial patches (64 m around each true pose; `norm_*` after the model's input normalization):",
        "",
        "| imagery | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
    ]
    for name, st in image_table.items():
        lines.append(f"| {name} | " + " | ".join(f"{st[k]:.3g}" for k in keys) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
