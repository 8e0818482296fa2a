"""`translocnet adapt`: unsupervised adaptation of a model to a user's area, before any ground truth exists.

What a user has there: the orthophoto and unlabeled scans. Two label-free corrections, weights never touched:
- every imagery patch of the area is histogram-equalized per channel before the network (the localizer applies
  it; `--no-equalize` leaves the imagery as it is): it removes the product's own tone curve and colour balance,
  which differ between orthophoto products. On the default model it is no worse on any set and better on the
  real ones (helsinki-dev 7.29 -> 5.91 m mean, the ray-cast real-imagery set 12.34 -> 12.27 m, synthetic test
  towns 0.62 -> 0.61 m; BENCHMARKS.md "adapt");
- the aerial input normalization is corrected only for what lies outside the range of per-patch statistics the
  model was trained on (model/input_range.py; the range is in the model's metadata, `translocnet calibrate`): an
  area inside it keeps the model's normalization, one outside (a dark or flat product) is mapped onto the nearest
  trained statistics.
Re-estimating the statistics whatever they are (`--full-statistics`, the default before) and AdaBN
(`--batchnorm`: every BatchNorm's running statistics re-estimated on (scan, patch) pairs) hurt on helsinki-dev
(BENCHMARKS.md "adapt"); they stay as options. It reads scans and imagery only: never OXTS, GNSS, TF poses or
any other pose.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from translocnet_ros.dataset.unlabeled import unlabeled_scans
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.patch import equalize
from translocnet_ros.localization.translocnet import load_model
from translocnet_ros.localization.types import SearchWindow
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.export import write_model
from translocnet_ros.model.input_range import InputRange, fit_normalization
from translocnet_ros.model.network import TransLocNet
from translocnet_ros.model.rasterize import rasterize_bev


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", type=Path, default=None, help="model to adapt (default: the package's model)")
    p.add_argument("--ortho", type=Path, required=True, help="the area's orthophoto (GeoTIFF)")
    p.add_argument(
        "--scans",
        type=Path,
        default=None,
        help="unlabeled scans (with --batchnorm): a KITTI-layout drive folder, a folder of .bin scans, or a bag",
    )
    p.add_argument("--points-topic", default="/kitti/velo/pointcloud", help="bag topic of the scans")
    p.add_argument("--base-frame", default=None, help="bag: frame to express scans in (default: as recorded)")
    p.add_argument(
        "--batchnorm",
        action="store_true",
        help="also re-estimate every BatchNorm's statistics on (scan, patch) pairs (AdaBN; hurt on helsinki-dev)",
    )
    p.add_argument(
        "--full-statistics",
        action="store_true",
        help="re-estimate the aerial input statistics on the area whatever they are, not only what lies outside "
        "the trained range (the default before; hurt on helsinki-dev)",
    )
    p.add_argument(
        "--no-equalize",
        dest="equalize",
        action="store_false",
        help="leave the area's imagery patches as they are (default: each histogram-equalized per channel before "
        "the network, and the input statistics measured on equalized patches)",
    )
    p.add_argument("--patches", type=int, default=64, help="aerial patches drawn over the orthophoto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="the adapted model file (.pt, + .json)")


def eager_from_file(path: Path) -> tuple[TransLocNet, ModelConfig, dict]:
    """The eager network with a TorchScript file's weights: exported files carry no checkpoint."""
    module, cfg, meta = load_model(path, torch.device("cpu"))
    net = TransLocNet(cfg, cross_attention=meta["attention"])
    net.load_state_dict(module.state_dict())
    return net.eval(), cfg, meta


def random_patches(
    ortho: GeoTiffSource, n: int, size_m: float, m_per_px: float, rng, equalized: bool = False
) -> list[np.ndarray]:
    """n patches of the inference size at random places where the orthophoto has data (equalized as the
    localizer will see them)."""
    b = ortho.bounds
    out, tries = [], 0
    while len(out) < n and tries < 20 * n:
        tries += 1
        cx, cy = rng.uniform(b[0], b[2]), rng.uniform(b[1], b[3])
        patch = ortho.patch(cx, cy, size_m, m_per_px)
        if patch.valid.mean() >= 0.9:
            out.append((equalize(patch) if equalized else patch).image)
    if not out:
        raise ValueError(f"{ortho.path}: no patch of {size_m:.0f} m lies inside the imagery")
    return out


@torch.no_grad()
def adapt_input(net: TransLocNet, patches: list[np.ndarray], trained: InputRange | None) -> dict:
    """The aerial input normalization for the area: fitted into the trained range (`trained`), or the area's
    own pooled statistics (None: --full-statistics). Returns what changed, for the metadata."""
    before = {"rgb_mean": net.rgb_mean.flatten().tolist(), "rgb_std": net.rgb_std.flatten().tolist()}
    if trained is None:
        imgs = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 255.0
        mean, std = imgs.mean(dim=(0, 2, 3)), imgs.std(dim=(0, 2, 3))
        how = {"mode": "full: the area's own statistics"}
    else:
        fit = fit_normalization(
            net.rgb_mean.flatten().numpy(), net.rgb_std.flatten().numpy(), patches, trained
        )
        mean, std = torch.from_numpy(fit.rgb_mean).float(), torch.from_numpy(fit.rgb_std).float()
        how = {
            "mode": "range: only what lies outside the trained range",
            "area_patch_mean": fit.area_mean.round(4).tolist(),
            "area_patch_std": fit.area_std.round(4).tolist(),
            "outside_trained_range": fit.outside,
        }
    net.rgb_mean.copy_(mean.view(1, 3, 1, 1))
    net.rgb_std.copy_(std.view(1, 3, 1, 1))
    after = {"rgb_mean": net.rgb_mean.flatten().tolist(), "rgb_std": net.rgb_std.flatten().tolist()}
    return {**how, "before": before, "after": after}


def trained_range(meta: dict, path: Path) -> InputRange:
    if "aerial_input_range" not in meta:
        raise SystemExit(
            f"{path}: its metadata has no trained input range: run `translocnet calibrate --model {path} "
            "--write --input-range-only` first, or adapt with --full-statistics"
        )
    return InputRange.from_dict(meta["aerial_input_range"])


@torch.no_grad()
def adapt_batchnorm(
    net: TransLocNet, scans: list[np.ndarray], patches: list[np.ndarray], progress: bool = True
) -> int:
    """Every BatchNorm's running statistics re-estimated on (scan, patch) pairs; returns the pair count."""
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over every forward pass
        bn.train()
    n = max(len(scans), len(patches))
    for k in tqdm(range(n), disable=not progress, desc="adapt", unit="pair"):
        bev, _ = rasterize_bev(
            torch.from_numpy(np.ascontiguousarray(scans[k % len(scans)], dtype=np.float32)),
            net.bev_px,
            net.m_per_px,
            net.ground_block_m,
            net.max_height_m,
        )
        aerial = torch.from_numpy(np.ascontiguousarray(patches[k % len(patches)].transpose(2, 0, 1)))
        net.features(bev[None], aerial[None])
    for bn in bns:
        bn.momentum = 0.1
    net.eval()
    return n


def run(args) -> int:
    from translocnet_ros.localization.translocnet import DEFAULT_MODEL

    src_model = args.model or DEFAULT_MODEL
    net, cfg, meta = eager_from_file(src_model)
    if "adapted" in meta:
        raise SystemExit(
            f"{src_model} is already adapted (to {meta['adapted']['ortho']}); adapt the model it came from, "
            f"{meta['adapted']['from_model']['file']}"
        )
    ortho = GeoTiffSource(args.ortho)
    if args.batchnorm and args.scans is None:
        raise SystemExit("adapt --batchnorm needs --scans (unlabeled scans of the area)")
    scans = unlabeled_scans(args.scans, args.points_topic, args.base_frame) if args.batchnorm else []
    rng = np.random.default_rng(args.seed)
    size_m = cfg.aerial_m(SearchWindow().radius_m)  # patches as a known-heading search sees them
    patches = random_patches(ortho, args.patches, size_m, cfg.m_per_px, rng, args.equalize)
    if net.patch_norm:  # each patch standardized by the model itself: no input statistic to adapt
        stats = {"mode": "none: the model standardizes every patch itself", "outside_trained_range": []}
    else:
        trained = None if args.full_statistics else trained_range(meta, Path(src_model))
        stats = adapt_input(net, patches, trained)
    pairs = adapt_batchnorm(net, scans, patches) if args.batchnorm else 0
    what = (
        ("histogram equalization, " if args.equalize else "")
        + (
            "aerial input statistics"
            if args.full_statistics
            else "aerial input statistics outside the trained range"
        )
        + (" and every BatchNorm's statistics (AdaBN)" if args.batchnorm else "")
    )
    adapted = {
        "method": f"{what} re-estimated, weights unchanged",
        "from_model": {"file": Path(src_model).name, "sha256": meta["sha256"]},
        "ortho": Path(args.ortho).name,
        "scans": f"{Path(args.scans).name} ({len(scans)} scans)" if scans else None,
        "patches": len(patches),
        "equalize": args.equalize,
        "full_statistics": args.full_statistics,
        "batchnorm_pairs": pairs,
        "date": time.strftime("%Y-%m-%d"),
        "input_statistics": stats,
    }
    info = {k: v for k, v in meta.items() if k not in ("sha256", "format_version", "torch")}
    info["adapted"] = adapted
    write_model(net, info, args.out)
    outside = stats.get("outside_trained_range")
    print(
        f"[adapt] {args.out}: {len(patches)} patches from {Path(args.ortho).name}, {len(scans)} scans; "
        + (
            "the area lies inside the trained input range: normalization unchanged"
            if outside == []
            else (f"outside the trained range: {', '.join(outside)}; " if outside else "")
            + f"aerial mean {np.round(stats['before']['rgb_mean'], 3).tolist()} -> "
            f"{np.round(stats['after']['rgb_mean'], 3).tolist()}, std "
            f"{np.round(stats['before']['rgb_std'], 3).tolist()} -> {np.round(stats['after']['rgb_std'], 3).tolist()}"
        )
    )
    return 0
