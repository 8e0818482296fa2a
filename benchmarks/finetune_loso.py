"""What fine-tuning on labelled real data buys, leave-one-site-out on helsinki-dev (its README allows this use):
for each site, the model is fine-tuned on the two OTHER sites (their labelled drives plus scans ray-cast at
street level from their cloud.ply, mixed with synthetic towns so it keeps what it knew), calibrated on the
synthetic val towns at the inference settings of the model it started from (its test-time views and NCC
evidence), and scored on the held-out site beside that model, each as it is and after `translocnet adapt` on the
site's orthophoto (label-free, as a user would run it). This is the workflow a user with a few labelled drives in
their area would run; it is not how the default model is made.

    python benchmarks/finetune_loso.py [--model models/translocnet.pt --steps 300 --cloud-frames 200]

Writes runs/loso/<held-out site>/... and the `finetune-loso` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.adapt import adapted_model  # noqa: E402
from benchmarks.helsinki import score_sites, sites, table  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.cli import main as cli  # noqa: E402
from translocnet_ros.synth.cloud_scene import MARGIN_M  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "translocnet.pt")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synth", help="synthetic train/val towns")
    ap.add_argument("--train-towns", type=int, default=6)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--cloud-frames", type=int, default=200)
    ap.add_argument("--cloud-margin-m", type=float, default=MARGIN_M, help="see `translocnet train`")
    ap.add_argument("--extra-repeat", type=int, default=3, help="weight of the real frames per epoch")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "loso")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    all_sites = sites()
    inference = json.loads(args.model.with_suffix(".json").read_text()).get("inference", {})
    views, ncc_weight = int(inference.get("views", 1)), float(inference.get("ncc_weight", 0.0))
    tuned = {}
    for held in all_sites:
        out = args.out / held.name
        model = out / "model.pt"
        if not model.exists():
            argv = ["train", "--data", str(args.data), "--init", str(args.model), "--real-aug", "--quiet"]
            argv += ["--steps", str(args.steps), "--lr", str(args.lr), "--train-towns", str(args.train_towns)]
            argv += ["--cloud-frames", str(args.cloud_frames), "--extra-repeat", str(args.extra_repeat)]
            argv += ["--cloud-margin-m", str(args.cloud_margin_m)]
            argv += ["--val-every", str(args.steps), "--workers", "0", "--out", str(out / "train")]
            for other in all_sites:
                if other != held:
                    argv += [
                        "--extra-drive",
                        f"{other / 'drive'}={other / 'ortho.tif'}",
                        "--extra-cloud",
                        str(other),
                    ]
            cli(argv)
            cli(["export", "--checkpoint", str(out / "train" / "last.pt"), "--out", str(model)])
            cli(
                [
                    "calibrate",
                    "--model",
                    str(model),
                    "--data",
                    str(args.data),
                    "--every",
                    "4",
                    "--views",
                    str(views),
                    "--ncc-weight",
                    str(ncc_weight),
                    "--no-sequence",
                    "--write",
                    "--quiet",
                ]
            )
        tuned[held] = model
    adapt_base = adapted_model(args.model, args.out / "adapted", [])
    adapt_tuned = {
        site: adapted_model(tuned[site], args.out / site.name / "adapted", []) for site in all_sites
    }
    rows = [
        (f"`{args.model.name}` (not fine-tuned)", score_sites(lambda _: args.model, all_sites)),
        (f"`{args.model.name}` after `adapt`", score_sites(adapt_base, all_sites)),
        ("fine-tuned on the two other sites", score_sites(lambda site: tuned[site], all_sites)),
        ("the same after `adapt`", score_sites(lambda site: adapt_tuned[site](site), all_sites)),
    ]
    lines = [
        "## Fine-tuning on labelled real data, leave-one-site-out on helsinki-dev (protocol known)",
        "",
        f"Command: `python benchmarks/finetune_loso.py --model {args.model.relative_to(ROOT)} --steps {args.steps} "
        f"--cloud-frames {args.cloud_frames}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        f"Each site is scored with a model fine-tuned ({args.steps} steps, lr {args.lr}, from `{args.model.name}`) "
        f"on the other two sites only: their 10 labelled frames each and {args.cloud_frames} scans each ray-cast "
        f"from their `cloud.ply` (`translocnet train --extra-drive ... --extra-cloud ...`), real frames weighted "
        f"x{args.extra_repeat}, mixed with {args.train_towns} synthetic train towns; then calibrated on the "
        f"synthetic val towns at the starting model's inference settings ({views} views, NCC weight {ncc_weight:g}); "
        "`adapt`: `translocnet adapt` on the scored site's orthophoto (label-free). Never part of the default model.",
        "",
        *table("model", rows),
    ]
    if not args.no_write:
        write_section("finetune-loso", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
