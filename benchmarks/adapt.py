"""What `translocnet adapt` buys on real imagery: each helsinki-dev site adapted on its own orthophoto (and,
with --batchnorm, its own unlabeled scans), then scored with protocol known beside the unadapted model.

    python benchmarks/adapt.py [--model models/translocnet.pt]

Writes runs/adapt/... and the `adapt` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.helsinki import score_sites, sites, table  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.cli import main as cli  # noqa: E402

VARIANTS = {
    "none": None,
    "input statistics (default)": [],
    "input + AdaBN (--batchnorm)": ["--batchnorm"],
    "equalized input + statistics (--equalize)": ["--equalize"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "translocnet.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "adapt")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.model = args.model.resolve()
    rows = []
    for label, flags in VARIANTS.items():

        def model_of(site: Path, flags=flags) -> Path:
            if flags is None:
                return args.model
            tag = "_".join(f.lstrip("-") for f in flags) or "input"
            out = args.out / f"{site.name}_{tag}.pt"
            argv = ["adapt", "--model", str(args.model), "--ortho", str(site / "ortho.tif")]
            cli([*argv, "--scans", str(site / "drive"), "--out", str(out), *flags])
            return out

        rows.append((label, score_sites(model_of, sites())))
        print(label, rows[-1][1].row(), flush=True)
    lines = [
        "## `translocnet adapt` on helsinki-dev (each site adapted on its own orthophoto / scans, protocol known)",
        "",
        f"Command: `python benchmarks/adapt.py --model {args.model.relative_to(ROOT)}`. Model: "
        f"`{args.model.name}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        *table("adaptation", rows),
    ]
    if not args.no_write:
        write_section("adapt", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
