"""Inference cost on this machine (per-frame latency, peak memory): the committed TransLocNet model, the same
architecture with untrained weights (exported to a temporary TorchScript file, loaded the way the node loads
models), and the NCC baseline, all in the same run.

    python benchmarks/model_latency.py

Writes the `model-cost` section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.helsinki import HELSINKI  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import PROTOCOLS, draw_priors  # noqa: E402
from translocnet_ros.geo.crs import MapFrame  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.ncc import NccLocalizer  # noqa: E402
from translocnet_ros.localization.translocnet import DEFAULT_MODEL  # noqa: E402
from translocnet_ros.model.config import ModelConfig  # noqa: E402
from translocnet_ros.model.export import export  # noqa: E402
from translocnet_ros.model.network import TransLocNet  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402

DEFAULT_VIEWS = (
    json.loads(DEFAULT_MODEL.with_suffix(".json").read_text()).get("inference", {}).get("views", 1)
)


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


def time_method(
    kind: str,
    model: str | None,
    views: int | None,
    drive_dir: Path,
    ortho: Path,
    every: int,
    protocols: list[str],
    queue,
) -> None:
    """In a fresh process, so that its peak memory is this method's alone: per-frame latency per protocol."""
    from translocnet_ros.localization.translocnet import TransLocNetLocalizer

    drive = KittiDrive(drive_dir)
    src = GeoTiffSource(ortho)
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses
    frames = list(range(0, len(gt), every))
    method = NccLocalizer() if kind == "ncc" else TransLocNetLocalizer(model, device="cpu", views=views)
    out = {}
    for protocol in protocols:
        priors = draw_priors(gt, protocol, 0)
        lat = []
        for k in frames:
            scan = drive.scan_base(drive.frames[k])
            t0 = time.perf_counter()
            method.localize(scan, src, priors[k], PROTOCOLS[protocol])
            lat.append(1e3 * (time.perf_counter() - t0))
        out[protocol] = np.array(lat[1:])  # the first frame opens the GeoTIFF
    queue.put((out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, len(frames) - 1))


def main() -> int:
    name, spec = split_towns("test", 1)[0]
    town = ROOT / "data" / "synth" / name
    build([(town, spec)], force=False)
    datasets = [(f"synthetic `{name}`", town / "drive_00", town / "ortho.tif", 2)]
    site = HELSINKI / "111140337709579"
    if site.exists():  # real-size scans (about 120k points, returns to 80 m)
        datasets.append((f"helsinki-dev `{site.name}` (real size)", site / "drive", site / "ortho.tif", 1))
    protocols = ["known", "unknown"]
    ctx = multiprocessing.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [  # test-time views: the model's calibrated setting, and 1 (one network pass per scan)
            (
                "translocnet",
                f"trained: models/translocnet.pt, {DEFAULT_VIEWS} views",
                str(DEFAULT_MODEL),
                None,
            ),
            ("translocnet", "trained: models/translocnet.pt, 1 view", str(DEFAULT_MODEL), 1),
            ("translocnet", "untrained (same architecture), 1 view", str(untrained_model(Path(tmp))), 1),
            ("ncc", "classic baseline", None, None),
        ]
        for data_label, drive_dir, ortho, every in datasets:
            for kind, label, model, views in runs:
                queue = ctx.Queue()
                proc = ctx.Process(
                    target=time_method, args=(kind, model, views, drive_dir, ortho, every, protocols, queue)
                )
                proc.start()
                lat, peak_mb, n = queue.get()
                proc.join()
                for protocol in protocols:
                    rows.append((data_label, n, kind, label, protocol, lat[protocol], peak_mb))
                    print(
                        f"{data_label:40s} {kind:12s} {label:32s} {protocol:8s} "
                        f"p50 {np.percentile(lat[protocol], 50):7.1f} ms  "
                        f"p95 {np.percentile(lat[protocol], 95):7.1f} ms  peak {peak_mb:.0f} MB",
                        flush=True,
                    )
    lines = [
        "## Inference cost on CPU: TransLocNet (trained and untrained, test-time views) beside NCC",
        "",
        "Command: `python benchmarks/model_latency.py`. Frames per row as given (the first, which opens the "
        f"GeoTIFF, left out; imagery read from the GeoTIFF included), torch threads: {torch.get_num_threads()}, each method in its own process; peak "
        f"memory = that process's peak resident set (Python, torch, the model, imagery). Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| scans | frames | method | weights | protocol | yaw hypotheses | p50 [ms] | p95 [ms] | peak memory [MB] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for data_label, n, kind, label, protocol, lat, peak_mb in rows:
        k = (
            "21 (1 deg)"
            if protocol == "known"
            else ("144 (2.5 deg)" if kind == "translocnet" else "120 + refine")
        )
        lines.append(
            f"| {data_label} | {n} | {kind} | {label} | {protocol} | {k} | {np.percentile(lat, 50):.0f} | {np.percentile(lat, 95):.0f} "
            f"| {peak_mb:.0f} |"
        )
    write_section("model-cost", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
