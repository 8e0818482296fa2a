"""How much the cast shadows and the relief displacement of the orthophoto pull each method's estimate: the
synthetic test towns rendered from the same draws as generated, without cast shadows, with the sun turned by
180 deg, as true orthos (no relief displacement) and as true orthos without shadows; the same drives and priors
scored with protocol known. A method that reads shadows as structure is pulled away from the sun; the pull
flips with the sun and vanishes without shadows. Real orthophotos have long, dark shadows and lean, so a pull
here is an error source there too (docs/real_gap.md).

    python benchmarks/shadow_bias.py [--methods ncc translocnet] [--towns 8] [--every 4] [--variants ...]

Bias per town: the mean error vector of its frames within 2 m, minus the town's georegistration offset; its
size, and its components towards the sun (negative: pulled away from it) and across it. A bias the frames of a
drive share is what the `sequence` protocol cannot average away (issue 10).
Writes runs/shadow_bias/... and the `shadow-bias` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.imagery_variants import VARIANTS, variant_towns  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.protocol import run_protocol  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402

NEAR_M = 2.0  # frames farther off are wrong matches, not a bias


def towards_sun(meta: dict) -> np.ndarray:
    """Unit (east, north) vector towards a synthetic town's sun (town.json; its shadows fall the other way)."""
    az = np.radians(meta["imagery"]["sun_azimuth_deg"])
    return np.array([np.cos(az), np.sin(az)])


def town_bias(town: Path, method, every: int) -> dict:
    """Mean error, and the bias towards / across the sun of the frames within NEAR_M, for one town."""
    meta = json.loads((town / "town.json").read_text())
    src = GeoTiffSource(town / "ortho.tif")
    gt, res = run_protocol(
        method, KittiDrive(town / "drive_00"), src, src.crs, "known", every=every, progress=False
    )
    err = np.array([[r.est.x, r.est.y] for r in res]) - gt[:, :2]
    dist = np.hypot(err[:, 0], err[:, 1])
    near = dist < NEAR_M
    bias = err[near].mean(0) - np.array(meta["registration_error_m"]) if near.any() else np.full(2, np.nan)
    sun = towards_sun(meta)
    return dict(
        errors=dist.tolist(),
        towards_sun=float(bias @ sun),
        across_sun=float(bias @ [-sun[1], sun[0]]),
        bias_m=float(np.hypot(*bias)),
    )


def plot(results: dict, path: Path) -> None:
    """Each town's bias in the sun's frame (x: towards the sun), one panel per method, one colour per imagery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = list(dict.fromkeys(k.split(" / ")[0] for k in results))
    fig, axes = plt.subplots(1, len(methods), figsize=(4.2 * len(methods), 4.2), squeeze=False)
    for ax, m in zip(axes[0], methods):
        for variant, colour in zip(
            VARIANTS, ("tab:red", "tab:green", "tab:blue", "tab:purple", "tab:orange")
        ):
            towns = results.get(f"{m} / {variant}", [])
            ax.scatter(
                [t["towards_sun"] for t in towns], [t["across_sun"] for t in towns], c=colour, label=variant
            )
        ax.axhline(0, c="grey", lw=0.5)
        ax.axvline(0, c="grey", lw=0.5)
        ax.annotate("", (0.9, -1.1), (0.3, -1.1), arrowprops=dict(arrowstyle="->"))
        ax.text(0.3, -1.0, "towards the sun", fontsize=8)
        ax.set(xlim=(-1.4, 1.4), ylim=(-1.4, 1.4), aspect="equal", title=m, xlabel="bias towards the sun [m]")
        ax.set_ylabel("bias across the sun [m]")
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle("Per-town bias of the estimate (synthetic test towns, protocol known)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--methods", nargs="+", default=["ncc", "translocnet"], help="as in accuracy.py (name[@model])"
    )
    ap.add_argument("--towns", type=int, default=8, help="first N test towns")
    ap.add_argument("--every", type=int, default=4, help="frame stride")
    ap.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="imagery variants to score",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "shadow_bias")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md or docs/")
    args = ap.parse_args()

    jobs = variant_towns("test", args.towns, args.variants, args.out)
    rows, results = [], {}
    for spec in args.methods:
        name, _, model = spec.partition("@")
        method = make_method(name, **({"model_path": Path(model)} if model else {}))
        label = f"{name} ({Path(model).stem})" if model else name
        for variant, js in jobs.items():
            per_town = [town_bias(path, method, args.every) for path in js]
            results[f"{label} / {variant}"] = per_town
            errors = np.concatenate([t["errors"] for t in per_town])
            towards = np.array([t["towards_sun"] for t in per_town])
            across = np.array([t["across_sun"] for t in per_town])
            size = np.array([t["bias_m"] for t in per_town])
            rows.append(
                f"| {label} | {variant} | {len(errors)} | {errors.mean():.2f} | {np.median(errors):.2f} | "
                f"{np.nanmean(size):.2f} | {np.nanmean(towards):+.2f} | {np.nanmean(across):+.2f} | "
                f"{(towards < 0).sum()} of {len(towards)} | " + " ".join(f"{t:+.2f}" for t in towards) + " |"
            )
            print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1))
    chosen = (
        "" if args.variants == list(VARIANTS) else " --variants " + " ".join(f'"{v}"' for v in args.variants)
    )
    lines = [
        "## Shadow bias: the synthetic test towns with and without cast shadows and relief (protocol known)",
        "",
        f"Command: `python benchmarks/shadow_bias.py --methods {' '.join(args.methods)} --towns {args.towns} "
        f"--every {args.every}{chosen}`. The first {args.towns} test towns, every {args.every}th frame, each "
        "town rendered from the same draws as generated, without cast shadows (`generate --no-shadows`), with "
        "the sun turned by 180 deg (`--sun-turn-deg 180`) and as a true ortho (`--max-lean 0`, with and "
        f"without shadows); scans, drives and priors identical. Bias: the mean error of a town's frames within {NEAR_M:g} m minus its "
        "georegistration offset; its size (mean over towns), and its components towards the sun (negative: "
        f"pulled away from the sun, into the shadows) and across it. Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| method | imagery | n | pos. mean [m] | pos. median [m] | bias size [m] | bias towards sun [m] | "
        "bias across sun [m] | towns pulled away from the sun | per town, towards sun [m] |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "Figure: `docs/shadow_bias.png` (each town's bias in the sun's frame).",
    ]
    if not args.no_write:
        write_section("shadow-bias", "\n".join(lines))
        plot(results, ROOT / "docs" / "shadow_bias.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
