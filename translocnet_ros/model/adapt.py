"""`translocnet adapt`: unsupervised adaptation of a model to a user's area, before any ground truth exists.

What a user has there: the orthophoto and unlabeled scans. The aerial encoder normalizes its input with RGB
statistics of the training worlds; a real orthophoto (other palette, sun, lens, season) shifts them. `adapt`
re-estimates them on patches drawn over the orthophoto's valid area. With `--batchnorm` it also re-estimates
every BatchNorm layer's running statistics on (scan, patch) pairs (AdaBN); weights stay untouched. On
helsinki-dev, with one test-time view, the input statistics alone helped a little (11.1 -> 10.1 m) and AdaBN
hurt, hence the default; with the eight views the default model now runs, every variant hurts (9.0 -> 10.5 m
at best, BENCHMARKS.md "adapt"), so it is kept as a tool, not a recommended step. It reads scans and
imagery only: never OXTS, GNSS, TF poses or any other pose.
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
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.export import write_model
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
        "--equalize",
        action="store_true",
        help="histogram-equalize every imagery patch of the area before the network (statistics re-estimated "
        "on equalized patches): for orthophotos whose contrast and colour balance differ from the training's",
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
def adapt_input(net: TransLocNet, patches: list[np.ndarray]) -> dict:
    """The aerial input statistics from the area's orthophoto; returns them before/after for the metadata."""
    imgs = torch.from_numpy(np.stack(patches)).permute(0, 3, 1, 2).float() / 255.0
    before = {"rgb_mean": net.rgb_mean.flatten().tolist(), "rgb_std": net.rgb_std.flatten().tolist()}
    net.rgb_mean.copy_(imgs.mean(dim=(0, 2, 3)).view(1, 3, 1, 1))
    net.rgb_std.copy_(imgs.std(dim=(0, 2, 3)).view(1, 3, 1, 1))
    after = {"rgb_mean": net.rgb_mean.flatten().tolist(), "rgb_std": net.rgb_std.flatten().tolist()}
    return {"before": before, "after": after}


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
    ortho = GeoTiffSource(args.ortho)
    if args.batchnorm and args.scans is None:
        raise SystemExit("adapt --batchnorm needs --scans (unlabeled scans of the area)")
    scans = unlabeled_scans(args.scans, args.points_topic, args.base_frame) if args.batchnorm else []
    rng = np.random.default_rng(args.seed)
    size_m = 2 * (20.0 + cfg.bev_radius_m)
    patches = random_patches(ortho, args.patches, size_m, cfg.m_per_px, rng, args.equalize)
    stats = adapt_input(net, patches)
    pairs = adapt_batchnorm(net, scans, patches) if args.batchnorm else 0
    what = (
        ("histogram equalization, " if args.equalize else "")
        + "aerial input statistics"
        + (" and every BatchNorm's statistics (AdaBN)" if args.batchnorm else "")
    )
    adapted = {
        "method": f"{what} re-estimated, weights unchanged",
        "from_model": {"file": Path(src_model).name, "sha256": meta["sha256"]},
        "ortho": Path(args.ortho).name,
        "scans": f"{Path(args.scans).name} ({len(scans)} scans)" if scans else None,
        "patches": len(patches),
        "equalize": args.equalize,
        "batchnorm_pairs": pairs,
        "date": time.strftime("%Y-%m-%d"),
        "input_statistics": stats,
    }
    info = {k: v for k, v in meta.items() if k not in ("sha256", "format_version", "torch")}
    info["adapted"] = adapted
    write_model(net, info, args.out)
    print(
        f"[adapt] {args.out}: {len(patches)} patches from {Path(args.ortho).name}, {len(scans)} scans; "
        f"aerial mean {np.round(stats['before']['rgb_mean'], 3).tolist()} -> "
        f"{np.round(stats['after']['rgb_mean'], 3).tolist()}"
    )
    return 0
