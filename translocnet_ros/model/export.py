"""`translocnet export`: checkpoint -> TorchScript file + metadata JSON (in models/ by default).

The network is written so that scripting it yields only operators the oldest supported torch has
(model/compat.py); export refuses to write a file that would not load there. The metadata carries what a
loader must agree with (resolutions, template size, channels), where the
weights came from (training towns, steps, validation figures) and the sha256 of the TorchScript file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import torch

from translocnet_ros.model.compat import FORMAT, OLDEST_TORCH, format_version, portability_problems
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.network import TransLocNet


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", type=Path, default=Path("runs/train/translocnet/best.pt"))
    p.add_argument("--out", type=Path, default=Path("models/translocnet.pt"))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_model(net: TransLocNet, info: dict, out: Path) -> dict:
    """Script `net` to `out` (refused when it would not load on the oldest supported torch) and write its
    metadata `info` beside it, completed with the format, torch and the file's sha256."""
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(net).save(str(out))
    problems = portability_problems(out)
    if problems:
        out.unlink()
        raise RuntimeError(f"{out} would not load on torch {OLDEST_TORCH}: " + "; ".join(problems))
    info = {
        **info,
        "format": FORMAT,
        "torch": torch.__version__,
        "loads_on_torch": f">={OLDEST_TORCH}",
        "format_version": format_version(out),
        "sha256": sha256(out),
    }
    out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n")
    return info


def export(checkpoint: Path, out: Path) -> dict:
    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    meta = ck["meta"]
    cfg = ModelConfig(**meta["model"])
    net = TransLocNet(cfg, cross_attention=meta["attention"])
    net.load_state_dict(ck["model"])
    info = {
        "model": cfg.to_dict(),
        "attention": meta["attention"],
        "infonce_weight": meta["infonce_weight"],
        "trained": {
            "steps": ck["step"],
            "lr": meta.get("lr"),
            "init": meta.get("init"),
            "best_val_mean_m": ck["best"],
            "train_towns": meta["train_towns"],
            "val_towns": meta["val_towns"],
            "sample": meta["sample"],
            "data": meta.get("data"),
            "generator": meta.get("generator"),
            "extra_drives": meta.get("extra_drives", []),
            "freeze_bev": meta.get("freeze_bev", False),
        },
        "exported": time.strftime("%Y-%m-%d"),
    }
    return write_model(net, info, out)


def run(args) -> int:
    info = export(args.checkpoint, args.out)
    size = args.out.stat().st_size / 1e6
    print(
        f"[export] {args.out} ({size:.1f} MB, sha256 {info['sha256'][:12]}...), metadata {args.out.with_suffix('.json')}"
    )
    return 0
