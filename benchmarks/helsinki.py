"""helsinki-dev scored the same way by every benchmark that compares models on it: protocol known (or unknown), every site's
own drive on its own orthophoto, pooled over the sites, plus the confidence rule (frames the node would publish)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.protocol import PUBLISH_CONFIDENCE, run_protocol, score_results
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.methods import make_method
from translocnet_ros.synth.cloud_scene import MARGIN_M, raycast_site

HELSINKI = Path(__file__).resolve().parents[2] / "shared" / "data" / "helsinki-dev"


def sites() -> list[Path]:
    return sorted(p for p in HELSINKI.iterdir() if (p / "ortho.tif").exists())


@dataclass
class SiteScore:
    score: dict  # score_results over all frames of the scored sites
    per_site_mean_m: list[float]
    published: int  # frames with confidence >= PUBLISH_CONFIDENCE
    published_within_2m: float | None  # their share within 2 m (None: none published)

    def per_site(self) -> str:
        return " / ".join(f"{v:.1f}" for v in self.per_site_mean_m)

    def row(self) -> str:
        s, hit = self.score, self.published_within_2m
        return (
            f"{s['n']} | {s['position_error_m']['mean']:.2f} | {s['position_error_m']['median']:.2f} "
            f"| {s['lateral_recall']['1m']:.0%} | {self.per_site()} "
            f"| {self.published} | {'-' if hit is None else f'{hit:.0%}'}"
        )


ROW_HEADER = (
    f"n | mean m | median m | lateral@1m | per-site mean m | published (conf >= {PUBLISH_CONFIDENCE:g}) "
    "| of those < 2 m"
)


def table(first_column: str, rows: list[tuple[str, SiteScore]]) -> list[str]:
    """Markdown table lines: one row per (label, score)."""
    head = [f"| {first_column} | {ROW_HEADER} |", "|---" * (ROW_HEADER.count("|") + 2) + "|"]
    return head + [f"| {label} | {score.row()} |" for label, score in rows]


def raycast_drive_of(
    out: Path, n_frames: int = 100, seed: int = 7, margin_m: float = MARGIN_M
) -> Callable[[Path], Path]:
    """A larger real-imagery check than the 10 frames per site: scans ray-cast at n_frames street-level poses
    of each site's geometry (cloud.ply, diagnosis use), localized on the site's real orthophoto. With margin_m
    at least the model's BEV radius, every scan sees a whole world around it, as helsinki-dev's own frames do
    (those stand 4-15 m from the middle of their 100 m geometry); the default also takes poses near its edge."""
    return lambda site: raycast_site(site, out / site.name, n_frames, seed, progress=False, margin_m=margin_m)


def score_sites(
    model_of_site: Callable[[Path], Path],
    scored: list[Path],
    drive_of: Callable[[Path], Path] = lambda site: site / "drive",
    views: int | None = None,
    every: int = 1,
    protocol: str = "known",
) -> SiteScore:
    """Each site's drive (its own real scans by default; every `every`-th frame) localized with
    `model_of_site(site)` (the default model, or one adapted / fine-tuned for it)."""
    gts, results, per_site = [], [], []
    for site in scored:
        method = make_method("translocnet", model_path=model_of_site(site), views=views)
        src = GeoTiffSource(site / "ortho.tif")
        gt, res = run_protocol(
            method, KittiDrive(drive_of(site)), src, src.crs, protocol, every=every, progress=False
        )
        per_site.append(float(np.mean([np.hypot(r.est.x - g[0], r.est.y - g[1]) for r, g in zip(res, gt)])))
        gts.append(gt)
        results += res
    gt_all = np.concatenate(gts)
    err = np.array([np.hypot(r.est.x - g[0], r.est.y - g[1]) for r, g in zip(results, gt_all)])
    pub = np.array([r.confidence >= PUBLISH_CONFIDENCE for r in results])
    return SiteScore(
        score_results(gt_all, results, method, protocol),
        per_site,
        int(pub.sum()),
        float((err[pub] < 2).mean()) if pub.any() else None,
    )
