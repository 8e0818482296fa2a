"""`translocnet train`: resumable training on the synthetic train split, validated on the val split.

Loss = NLL of the true pose in the likelihood volume + w * InfoNCE. Writes, under --out: last.pt and best.pt
checkpoints, log.csv (train and val rows) and curves.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.decode import decode_volume
from translocnet_ros.localization.types import ScoreVolume
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.data import SampleConfig, TownFrames, town_drives
from translocnet_ros.model.losses import info_nce, shadow_disagreement, subcell_loss, volume_nll
from translocnet_ros.model.network import TransLocNet
from translocnet_ros.model.style_mix import attach_style_mix
from translocnet_ros.synth.cli import build
from translocnet_ros.synth.cloud_scene import MARGIN_M, raycast_site
from translocnet_ros.synth.splits import split_towns
from translocnet_ros.synth.town import GENERATOR_VERSION, SHADOW_FREE_ORTHO, write_shadow_free_twin

LOG_FIELDS = [
    "step",
    "epoch",
    "loss",
    "nll",
    "infonce",
    "shadow",
    "lr",
    "sec_per_step",
    "val_nll",
    "val_mean_m",
    "val_median_m",
]


def split_jobs(data: Path, n_train: int | None, n_val: int | None, harsh_sun: bool = False):
    """(folder, spec) of the train and val towns: the train towns drawn as asked, the val towns always as the
    split defines them, so that every training run is selected on the same towns."""
    train = [(data / n, s) for n, s in split_towns("train", n_train, harsh_sun)]
    return train, [(data / n, s) for n, s in split_towns("val", n_val)]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", type=Path, default=Path("data/synth"), help="folder holding the train/val towns")
    p.add_argument("--out", type=Path, default=Path("runs/train/translocnet"))
    p.add_argument("--steps", type=int, default=6000)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument(
        "--lr", type=float, default=5e-4, help="peak learning rate (2e-3 collapsed the BEV features)"
    )
    p.add_argument(
        "--infonce-weight", type=float, default=0.3, help="0 disables the contrastive head (ablation)"
    )
    p.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this checkpoint's or exported model's weights (curriculum stages, fine-tuning)",
    )
    p.add_argument("--no-attention", action="store_true", help="ablation: no cross-attention")
    p.add_argument(
        "--width",
        type=int,
        default=ModelConfig.width,
        help="channels of the encoders' first stage (capacity; --init must have the same)",
    )
    p.add_argument(
        "--match-dim",
        type=int,
        default=ModelConfig.match_dim,
        help="per-cell matching feature size (capacity)",
    )
    p.add_argument(
        "--robust-aug",
        action="store_true",
        help="also crop the scan's range, blind a sector and blur the imagery (sensors and cameras unlike "
        "the generator's)",
    )
    p.add_argument(
        "--real-aug",
        action="store_true",
        help="--robust-aug plus palettes the generator never had (channel swaps, gamma, grey, CLAHE) and "
        "another LiDAR's reflectance, so features key on shape and layout (real orthophotos)",
    )
    p.add_argument(
        "--freeze-bev",
        action="store_true",
        help="keep the LiDAR encoder (weights and BatchNorm statistics) as initialized: fine-tune the aerial "
        "side only (the half that breaks on real orthophotos, see docs/real_gap.md)",
    )
    p.add_argument(
        "--aerial-norm",
        choices=["fixed", "patch"],
        default="fixed",
        help="aerial input normalization: training-set statistics, or each patch standardized",
    )
    p.add_argument(
        "--style-mix",
        type=float,
        default=0.0,
        metavar="P",
        help="with probability P mix the aerial encoder's early feature statistics between samples "
        "(training only; model/style_mix.py)",
    )
    p.add_argument(
        "--dihedral",
        type=float,
        default=0.0,
        metavar="P",
        help="with probability P turn a sample's world by a multiple of 90 deg about the prior and sometimes "
        "mirror it (scan, imagery, headings and target together): no sun azimuth, relief lean or street "
        "heading is special",
    )
    p.add_argument(
        "--subcell-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="train the volume's shape inside the true cell too: the imagery shifted by up to half a cell "
        "(a known offset, not misregistration) and W x the sub-cell peak's error added to the NLL (losses.py)",
    )
    p.add_argument(
        "--shadow-consistency",
        type=float,
        default=0.0,
        metavar="W",
        help="each train town's imagery also rendered without cast shadows (same draws, same crop and "
        "augmentation), and W x (1 - cosine) between the aerial features of the two added to the loss: "
        "shadows must not move what the aerial encoder sees (the pull into shadows, docs/real_gap.md)",
    )
    p.add_argument(
        "--shadow-target",
        choices=["self", "init"],
        default="self",
        help="--shadow-consistency's target: the shadow-free twin's features from the network being trained, "
        "or from a frozen copy of the initial weights (--init), so the target cannot drift with the student",
    )
    p.add_argument(
        "--shadow-cells",
        choices=["all", "shaded"],
        default="all",
        help="--shadow-consistency over every cell of the patch, or only over the cells where the two "
        "renderings differ (the shadows and their edges; most cells have none)",
    )
    p.add_argument(
        "--window-m", type=float, default=SampleConfig.window_m, help="training search window (+-)"
    )
    p.add_argument(
        "--extra-drive",
        action="append",
        default=[],
        metavar="DRIVE=ORTHO",
        help="a labelled KITTI-layout drive and its orthophoto to train on beside the synthetic towns "
        "(real fine-tuning data; repeatable)",
    )
    p.add_argument(
        "--extra-cloud",
        action="append",
        default=[],
        metavar="SITE",
        help="a real site given as geometry (SITE/cloud.ply in the CRS of SITE/ortho.tif): ray-cast "
        "--cloud-frames labelled scans at street level with the project's LiDAR simulator and train on them "
        "like an --extra-drive (cached under OUT/cloud_drives; repeatable)",
    )
    p.add_argument("--cloud-frames", type=int, default=200, help="scans ray-cast per --extra-cloud site")
    p.add_argument(
        "--cloud-margin-m",
        type=float,
        default=MARGIN_M,
        help="the --extra-cloud poses stand this far inside the geometry's extent (at the BEV radius or more, "
        "no scan is cut off where the geometry ends while the orthophoto goes on)",
    )
    p.add_argument(
        "--extra-repeat",
        type=int,
        default=20,
        help="each extra drive's frames count this many times per epoch",
    )
    p.add_argument(
        "--harsh-sun",
        action="store_true",
        help="the train towns drawn with `generate --harsh-sun` (a low sun, near-black shadows), val unchanged; "
        "give them their own --data folder (towns drawn otherwise are re-generated in place)",
    )
    p.add_argument("--train-towns", type=int, default=None, help="use only the first N train towns")
    p.add_argument("--val-towns", type=int, default=None)
    p.add_argument("--val-samples", type=int, default=48)
    p.add_argument("--val-every", type=int, default=250)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true")


def parse_extra(spec: str) -> tuple[Path, Path]:
    drive, sep, ortho = spec.partition("=")
    if not sep or not Path(drive).is_dir() or not Path(ortho).is_file():
        raise SystemExit(f"--extra-drive {spec!r}: expected DRIVE_FOLDER=ORTHO.tif, both existing")
    return Path(drive), Path(ortho)


def parse_cloud_site(spec: str) -> Path:
    site = Path(spec)
    if not (site / "cloud.ply").is_file() or not (site / "ortho.tif").is_file():
        raise SystemExit(f"--extra-cloud {spec!r}: expected a folder holding cloud.ply and ortho.tif")
    return site


def model_config(args) -> ModelConfig:
    """The network's geometry and size from the command line (the rest of ModelConfig stays fixed)."""
    return ModelConfig(width=args.width, match_dim=args.match_dim, aerial_norm=args.aerial_norm)


def initial_weights(path: Path, device: torch.device) -> dict:
    """The state dict of a checkpoint or of an exported TorchScript model (fine-tuning the committed one)."""
    try:
        return torch.jit.load(str(path), map_location=device).state_dict()
    except RuntimeError:  # not a TorchScript archive: a training checkpoint
        return torch.load(path, map_location=device, weights_only=False)["model"]


def load_weights(net: TransLocNet, weights: dict, source: Path) -> None:
    """A state dict into net, or a clear exit when it belongs to another size of network (--init, resume)."""
    own = net.state_dict()
    wrong = [k for k, v in weights.items() if k in own and own[k].shape != v.shape]
    if wrong or own.keys() != weights.keys():
        raise SystemExit(
            f"{source}: its weights do not fit this network ({len(wrong)} tensors of another shape, e.g. "
            f"{wrong[:1] or sorted(own.keys() ^ weights.keys())[:1]}); give the same --width / --match-dim "
            "it was trained with"
        )
    net.load_state_dict(weights)


def load_initial(net: TransLocNet, path: Path, device: torch.device) -> None:
    """--init's weights (a checkpoint or an exported model) into net."""
    load_weights(net, initial_weights(path, device), path)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def batch_losses(
    net: TransLocNet,
    batch: dict,
    infonce_weight: float,
    gen: torch.Generator | None,
    subcell_weight: float = 0.0,
    shadow_weight: float = 0.0,
    teacher: TransLocNet | None = None,
    shaded_cells: bool = False,
):
    """(total, nll, infonce, shadow consistency) of one batch. The shadow term's target is the aerial features
    of the shadow-free twin: from `teacher` (frozen) when given, else from `net` itself (not differentiated);
    averaged over every cell, or with `shaded_cells` over the cells where the two renderings differ."""
    n = batch["bev"].shape[0]
    if shadow_weight > 0 and teacher is None:  # one pass over both renderings, so BatchNorm sees them alike
        mb, ma = net.features(batch["bev"].repeat(2, 1, 1, 1), torch.cat([batch["aerial"], batch["twin"]]))
        mb, ma, ma_twin = mb[:n], ma[:n], ma[n:]
    else:
        mb, ma = net.features(batch["bev"], batch["aerial"])
    if shadow_weight > 0:
        if teacher is not None:
            with torch.no_grad():
                ma_twin = teacher.features(batch["bev"], batch["twin"])[1]
        shadow = shadow_disagreement(
            ma, ma_twin, batch["aerial"], batch["twin"], batch["has_twin"], shaded_cells
        )
    else:
        shadow = torch.zeros((), device=mb.device)
    observed = F.max_pool2d(batch["observed"], net.stride)
    nll, nce = [], []
    for b in range(n):
        k, i, j = (int(v) for v in batch["target"][b])
        logits = net.score(mb[b : b + 1], ma[b], observed[b : b + 1], batch["yaws"][b])
        nll.append(volume_nll(logits, k, i, j))
        if subcell_weight > 0:
            nll[-1] = nll[-1] + subcell_weight * subcell_loss(logits, k, i, j, batch["frac"][b])
        if infonce_weight > 0:
            nce.append(
                info_nce(
                    mb[b : b + 1],
                    ma[b],
                    observed[b : b + 1],
                    batch["true_yaw"][b],
                    i,
                    j,
                    generator=gen,
                )
            )
    nll_t = torch.stack(nll).mean()
    nce_t = torch.stack(nce).mean() if nce else torch.zeros((), device=nll_t.device)
    return nll_t + infonce_weight * nce_t + shadow_weight * shadow, nll_t, nce_t, shadow


@torch.no_grad()
def validate(net: TransLocNet, loader: DataLoader, m_per_px: float, device) -> dict:
    net.eval()
    nlls, errs = [], []
    for batch in loader:
        batch = {k: v.to(device) for k, v in batch.items()}
        mb, ma = net.features(batch["bev"], batch["aerial"])
        observed = F.max_pool2d(batch["observed"], net.stride)
        for b in range(mb.shape[0]):
            k, i, j = (int(v) for v in batch["target"][b])
            logits = net.score(mb[b : b + 1], ma[b], observed[b : b + 1], batch["yaws"][b])
            nlls.append(float(volume_nll(logits, k, i, j)))
            centre = (logits.shape[-1] - 1) / 2
            yaws = batch["yaws"][b].cpu().numpy()
            est = decode_volume(
                ScoreVolume(
                    logits.cpu().numpy(),
                    Pose2D(0.0, 0.0, float(yaws[len(yaws) // 2])),
                    yaws - yaws[len(yaws) // 2],
                    m_per_px,
                    centre,
                )
            )
            gx, gy = (j - centre) * m_per_px, -(i - centre) * m_per_px
            errs.append(math.hypot(est.pose.x - gx, est.pose.y - gy))
    net.train()
    if not next(net.bev_encoder.parameters()).requires_grad:
        net.bev_encoder.eval()
    return {
        "val_nll": float(np.mean(nlls)),
        "val_mean_m": float(np.mean(errs)),
        "val_median_m": float(np.median(errs)),
    }


def plot_curves(log_path: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(log_path) as f:
        rows = list(csv.DictReader(f))
    tr = [r for r in rows if r["loss"]]
    va = [r for r in rows if r["val_nll"]]
    fig, ax = plt.subplots(1, 2, figsize=(12, 4.5))
    if tr:
        s = np.array([float(r["step"]) for r in tr])
        for key in ("loss", "nll", "infonce", "shadow"):
            if not tr[0].get(key):  # a log from before the term existed
                continue
            v = np.array([float(r[key]) for r in tr])
            k = max(len(v) // 50, 1)
            ax[0].plot(s[k - 1 :], np.convolve(v, np.ones(k) / k, "valid"), label=key)
    if va:
        ax[0].plot([float(r["step"]) for r in va], [float(r["val_nll"]) for r in va], "o-", label="val nll")
        s = [float(r["step"]) for r in va]
        ax[1].plot(s, [float(r["val_mean_m"]) for r in va], "o-", label="val mean error [m]")
        ax[1].plot(s, [float(r["val_median_m"]) for r in va], "o-", label="val median error [m]")
        ax[1].set_yscale("log")
    for a in ax:
        a.set_xlabel("step")
        a.grid(alpha=0.3)
        a.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def run(args) -> int:
    torch.manual_seed(args.seed)
    device = pick_device(args.device)
    mcfg = model_config(args)
    scfg = replace(SampleConfig(), window_m=args.window_m, dihedral_prob=args.dihedral)
    if args.robust_aug or args.real_aug:
        scfg = replace(scfg, range_crop_prob=0.4, sector_dropout_prob=0.3, blur_prob=0.3)
    if args.real_aug:
        scfg = replace(scfg, palette_prob=0.7, intensity_drop_prob=0.5, color_jitter=0.25)
    if args.subcell_weight > 0:  # the truth anywhere inside its cell
        scfg = replace(scfg, misregistration_m=0.5 * mcfg.out_m_per_px)
    train_towns, val_towns = split_jobs(args.data, args.train_towns, args.val_towns, args.harsh_sun)
    build(train_towns + val_towns, force=False)
    if args.shadow_consistency > 0:
        scfg = replace(scfg, shadow_twin=True)
        for town, _ in tqdm(train_towns, desc="shadow-free twins", disable=args.quiet):
            if not (town / SHADOW_FREE_ORTHO).is_file():
                write_shadow_free_twin(town)
    synth = [d for t, _ in train_towns for d in town_drives(t)]
    extra = [parse_extra(spec) for spec in args.extra_drive] + [
        (
            raycast_site(
                site,
                args.out / "cloud_drives" / site.name,
                args.cloud_frames,
                args.seed,
                margin_m=args.cloud_margin_m,
            ),
            site / "ortho.tif",
        )
        for site in map(parse_cloud_site, args.extra_cloud)
    ]
    train_set = TownFrames(
        synth + extra, mcfg, scfg, seed=args.seed, repeat=[1] * len(synth) + [args.extra_repeat] * len(extra)
    )
    val_full = TownFrames(
        [d for t, _ in val_towns for d in town_drives(t)], mcfg, replace(scfg, augment=False), seed=12345
    )
    pick = np.random.default_rng(0).choice(len(val_full), min(args.val_samples, len(val_full)), replace=False)
    val_loader = DataLoader(Subset(val_full, sorted(pick.tolist())), batch_size=4, num_workers=0)

    net = TransLocNet(mcfg, cross_attention=not args.no_attention).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.steps, pct_start=0.05)
    args.out.mkdir(parents=True, exist_ok=True)
    last, best_path, log_path = args.out / "last.pt", args.out / "best.pt", args.out / "log.csv"
    step, epoch, best = 0, 0, float("inf")
    if last.exists():  # resume
        ck = torch.load(last, map_location=device, weights_only=False)
        load_weights(net, ck["model"], last)
        opt.load_state_dict(ck["optimizer"])
        sched.load_state_dict(ck["scheduler"])
        step, epoch, best = ck["step"], ck["epoch"], ck["best"]
        print(f"[train] resumed from {last} at step {step}")
    else:
        if args.init is not None:  # weights only: a new stage gets its own optimizer and schedule
            load_initial(net, args.init, device)
            print(f"[train] initialized from {args.init}")
        with open(log_path, "w", newline="") as f:
            csv.DictWriter(f, LOG_FIELDS).writeheader()
    meta = {
        "model": mcfg.to_dict(),
        "sample": asdict(scfg),
        "attention": not args.no_attention,
        "infonce_weight": args.infonce_weight,
        "data": args.data.name,
        "generator": GENERATOR_VERSION,
        "harsh_sun": args.harsh_sun,
        "train_towns": [t.name for t, _ in train_towns],
        "val_towns": [t.name for t, _ in val_towns],
        "steps": args.steps,
        "batch": args.batch,
        "lr": args.lr,
        "init": f"{args.init.parent.name}/{args.init.name}" if args.init else None,
        "freeze_bev": args.freeze_bev,
        "style_mix": args.style_mix,
        "subcell_weight": args.subcell_weight,
        "shadow_consistency": args.shadow_consistency,
        "shadow_target": args.shadow_target,
        "shadow_cells": args.shadow_cells,
        "extra_drives": [
            f"{d.parent.name}/{d.name} on {o.parent.name}/{o.name} x{args.extra_repeat}" for d, o in extra
        ],
    }
    (args.out / "config.json").write_text(json.dumps(meta, indent=2))

    def save(path: Path) -> None:
        torch.save(
            {
                "model": net.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "step": step,
                "epoch": epoch,
                "best": best,
                "meta": meta,
            },
            path,
        )

    gen = torch.Generator().manual_seed(args.seed)
    teacher = None
    if args.shadow_consistency > 0 and args.shadow_target == "init":
        if args.init is None:
            raise SystemExit(
                "--shadow-target init needs --init (the weights whose shadow-free view is the target)"
            )
        teacher = TransLocNet(mcfg, cross_attention=not args.no_attention).to(device)
        load_initial(teacher, args.init, device)
        teacher.requires_grad_(False)
        teacher.eval()
    if args.style_mix > 0:
        attach_style_mix(net.aerial_encoder, args.style_mix, args.seed)
    bar = tqdm(total=args.steps, initial=step, disable=args.quiet, desc="train", unit="step")
    net.train()
    if args.freeze_bev:
        net.bev_encoder.requires_grad_(False)
        net.bev_encoder.eval()
    while step < args.steps:
        train_set.epoch = epoch
        loader = DataLoader(
            train_set,
            batch_size=args.batch,
            shuffle=True,
            num_workers=args.workers,
            generator=torch.Generator().manual_seed(args.seed * 1000 + epoch),
            drop_last=True,
            persistent_workers=False,
        )
        for batch in loader:
            t0 = time.perf_counter()
            batch = {k: v.to(device) for k, v in batch.items()}
            loss, nll, nce, shadow = batch_losses(
                net,
                batch,
                args.infonce_weight,
                gen,
                args.subcell_weight,
                args.shadow_consistency,
                teacher,
                args.shadow_cells == "shaded",
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            step += 1
            row = {
                "step": step,
                "epoch": epoch,
                "loss": f"{loss.item():.4f}",
                "nll": f"{nll.item():.4f}",
                "infonce": f"{nce.item():.4f}",
                "shadow": f"{shadow.item():.4f}",
                "lr": f"{sched.get_last_lr()[0]:.3g}",
                "sec_per_step": f"{time.perf_counter() - t0:.3f}",
            }
            if step % args.val_every == 0 or step == args.steps:
                v = validate(net, val_loader, mcfg.out_m_per_px, device)
                row.update({k: f"{x:.4f}" for k, x in v.items()})
                if v["val_mean_m"] < best:
                    best = v["val_mean_m"]
                    save(best_path)
                save(last)
            with open(log_path, "a", newline="") as f:
                csv.DictWriter(f, LOG_FIELDS).writerow(row)
            if "val_nll" in row:
                plot_curves(log_path, args.out / "curves.png")
                bar.write(
                    f"[train] step {step}: val mean {row['val_mean_m']} m, median {row['val_median_m']} m, "
                    f"nll {row['val_nll']}"
                )
            bar.set_postfix(loss=row["loss"], nll=row["nll"], nce=row["infonce"])
            bar.update(1)
            if step >= args.steps:
                break
        epoch += 1
    bar.close()
    return 0
