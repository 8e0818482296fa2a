"""What `translocnet adapt` buys: each helsinki-dev site adapted on its own orthophoto (and, with --batchnorm, its
own unlabeled scans), then scored with protocol known beside the unadapted model; and the first synthetic test
towns with their orthophoto turned into a dark, flat product outside the trained input range (what the default
mode is for), adapted on that orthophoto.

    python benchmarks/adapt.py [--model models/translocnet.pt]

Writes runs/adapt/... and the `adapt` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import rasterio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.helsinki import score_sites, sites, table  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.cli import main as cli  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402

VARIANTS = {  # label -> adapt flags (None: the model as it is)
    "none": None,
    "default: equalized patches, statistics outside the trained range": [],
    "statistics outside the trained range only (--no-equalize)": ["--no-equalize"],
    "statistics whatever they are (--no-equalize --full-statistics; the default before)": [
        "--no-equalize",
        "--full-statistics",
    ],
    "equalized, statistics whatever they are (--full-statistics; --equalize before)": ["--full-statistics"],
    "default + AdaBN (--batchnorm)": ["--batchnorm"],
}
DARK = "the orthophoto as a dark, flat product: 0.3 x + 5 per channel (8-bit)"


def town_site(town: Path, out: Path, dark: bool) -> Path:
    """A synthetic town in the layout `score_sites` reads (ortho.tif, drive): its orthophoto as generated or
    `DARK` (a 16-bit product cast to 8 bit without a stretch looks like this), its first drive linked."""
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "ortho.tif").exists():
        if dark:
            with rasterio.open(town / "ortho.tif") as src:
                profile, data = src.profile, src.read()
            with rasterio.open(out / "ortho.tif", "w", **profile) as dst:
                dst.write(np.clip(0.3 * data.astype(np.float32) + 5, 0, 255).astype(data.dtype))
        else:
            (out / "ortho.tif").symlink_to((town / "ortho.tif").resolve())
        shutil.copy(town / "calib_imu_to_velo.txt", out / "calib_imu_to_velo.txt")
    if not (out / "drive").exists():
        (out / "drive").symlink_to((town / "drive_00").resolve())
    return out


def adapted_model(model: Path, out_dir: Path, flags: list[str] | None):
    """site [, orthophoto: the site's own by default] -> the model adapted there with `flags` (None: as is);
    each (site, orthophoto) is adapted once however many scan sets are scored with it."""

    @functools.cache
    def model_of(site: Path, ortho: Path | None = None) -> Path:
        if flags is None:
            return model
        tag = "_".join(f.lstrip("-") for f in flags) or "default"
        out = out_dir / f"{site.name}{f'_{ortho.stem}' if ortho else ''}_{tag}.pt"
        argv = ["adapt", "--model", str(model), "--ortho", str(ortho or site / "ortho.tif")]
        cli([*argv, "--scans", str(site / "drive"), "--out", str(out), *flags])
        return out

    return model_of


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "translocnet.pt")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "adapt")
    ap.add_argument("--data", type=Path, default=ROOT / "data" / "synth")
    ap.add_argument("--towns", type=int, default=4, help="synthetic test towns darkened")
    ap.add_argument("--every", type=int, default=4, help="frame stride on the synthetic towns")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    args.model = args.model.resolve()
    rows = []
    for label, flags in VARIANTS.items():
        rows.append((label, score_sites(adapted_model(args.model, args.out, flags), sites())))
        print(label, rows[-1][1].row(), flush=True)
    unknown_rows = []
    for label, flags in list(VARIANTS.items())[:2]:
        score = score_sites(adapted_model(args.model, args.out, flags), sites(), protocol="unknown")
        unknown_rows.append((label, score))
        print("unknown", label, score.row(), flush=True)
    towns = build([(args.data / name, spec) for name, spec in split_towns("test", args.towns)], force=False)
    plain = [town_site(t, args.out / "plain" / t.name, dark=False) for t in towns]
    dark = [town_site(t, args.out / "dark" / t.name, dark=True) for t in towns]
    synth_rows = []
    for label, flags, scored in (
        ("orthophoto as generated: none", None, plain),
        ("orthophoto as generated: default", [], plain),
        ("dark orthophoto: none", None, dark),
        ("dark orthophoto: default", [], dark),
        ("dark orthophoto: --no-equalize", ["--no-equalize"], dark),
        ("dark orthophoto: --no-equalize --full-statistics", ["--no-equalize", "--full-statistics"], dark),
    ):
        score = score_sites(
            adapted_model(args.model, args.out / scored[0].parent.name, flags),
            scored,
            every=args.every,
        )
        synth_rows.append((label, score))
        print("synthetic", label, score.row(), flush=True)
    lines = [
        "## `translocnet adapt` on helsinki-dev (each site adapted on its own orthophoto / scans, protocol known)",
        "",
        f"Command: `python benchmarks/adapt.py --model {args.model.relative_to(ROOT)}`. Model: "
        f"`{args.model.name}`. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        *table("adaptation", rows),
        "",
        "Protocol unknown (heading unknown too), same frames:",
        "",
        *table("adaptation", unknown_rows),
        "",
        f"The first {args.towns} synthetic test towns (every {args.every}th frame), with their orthophoto as "
        f"generated and as a dark one ({DARK}; far below the per-patch means and spreads the model was trained on, "
        "`aerial_input_range` in its metadata), each adapted on its own orthophoto. The per-site column is per "
        "town.",
        "",
        *table("synthetic test towns: orthophoto, adaptation", synth_rows),
    ]
    if not args.no_write:
        write_section("adapt", "\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
