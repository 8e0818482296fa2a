"""Inference cost of the TransLocNet architecture on this machine (per-frame latency, peak memory), with the
NCC baseline timed in the same run. Weights do not change the cost, so this runs before a model is trained:
an untrained network is exported to a temporary TorchScript file and loaded the way the node loads models.

    python benchmarks/model_latency.py

Writes the `model-cost` section of BENCHMARKS.md.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import PROTOCOLS, draw_priors  # noqa: E402
from translocnet_ros.geo.crs import MapFrame  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.ncc import NccLocalizer  # noqa: E402
from translocnet_ros.localization.translocnet import TransLocNetLocalizer  # noqa: E402
from translocnet_ros.model.config import ModelConfig  # noqa: E402
from translocnet_ros.model.export import export  # noqa: E402
from translocnet_ros.model.network import TransLocNet  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402


def untrained_model(folder: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig()
    ck = folder / "untrained.pt"
    meta = {
        "model": cfg.to_dict(),
        "attention": True,
        "infonce_weight": 0.0,
        "train_towns": [],
        "val_towns": [],
        "sample": {},
    }
    torch.save({"model": TransLocNet(cfg).state_dict(), "step": 0, "best": float("nan"), "meta": meta}, ck)
    export(ck, folder / "translocnet.pt")
    return folder / "translocnet.pt"


def main() -> int:
    name, spec = split_towns("test", 1)[0]
    town = ROOT / "data" / "synth" / name
    build([(town, spec)], force=False)
    drive = KittiDrive(town / "drive_00")
    src = GeoTiffSource(town / "ortho.tif")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses
    frames = list(range(0, len(gt), 2))
    scans = [drive.scan_base(drive.frames[k]) for k in frames]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        methods = [TransLocNetLocalizer(untrained_model(Path(tmp)), device="cpu"), NccLocalizer()]
        for protocol in ("known", "unknown"):
            priors = draw_priors(gt, protocol, 0)
            for m in methods:
                lat = []
                for k, scan in zip(frames, scans):
                    t0 = time.perf_counter()
                    m.localize(scan, src, priors[k], PROTOCOLS[protocol])
                    lat.append(1e3 * (time.perf_counter() - t0))
                rows.append((m.name, protocol, np.array(lat[1:])))  # the first call warms up
                print(
                    f"{m.name:12s} {protocol:8s} p50 {np.percentile(lat, 50):7.1f} ms  p95 {np.percentile(lat, 95):7.1f} ms"
                )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = [
        "## TransLocNet architecture: inference cost on CPU (untrained weights)",
        "",
        f"Command: `python benchmarks/model_latency.py`. {len(frames) - 1} frames of `{name}` per row (imagery read "
        f"from the GeoTIFF included), torch threads: {torch.get_num_threads()}. Peak resident memory of the "
        f"whole benchmark process (both methods, all scans in memory): {peak_mb:.0f} MB. Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}. Weights do not change the cost; accuracy needs a trained model.",
        "",
        "| method | protocol | yaw hypotheses | p50 [ms] | p95 [ms] |",
        "|---|---|---|---|---|",
    ]
    for method, protocol, lat in rows:
        k = (
            "21 (1 deg)"
            if protocol == "known"
            else ("144 (2.5 deg)" if method == "translocnet" else "120 + refine")
        )
        lines.append(
            f"| {method} | {protocol} | {k} | {np.percentile(lat, 50):.0f} | {np.percentile(lat, 95):.0f} |"
        )
    write_section("model-cost", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
