"""Temporal fusion (issue 10): the `sequence` protocol beside single-frame `known`, with and without bad scans, a
50 m kidnapping, and the cost of the filter step, on synthetic towns.

    python benchmarks/sequence.py                                # test towns, writes BENCHMARKS.md
    python benchmarks/sequence.py --split val --no-write --set tempering=1.0 motion.trans_per_m=0.1  # tuning

Every frame of every drive is used (the sequence protocol needs consecutive frames). Figures are also given with
each town's georegistration offset (town.json `registration_error_m`) subtracted from the estimates: no method
can remove it, so it bounds what the imagery allows.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.imagery_variants import VARIANTS, variant_towns  # noqa: E402
from benchmarks.report import machine, write_section  # noqa: E402
from benchmarks.shadow_bias import NEAR_M, towards_sun  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.evaluation.metrics import frame_errors, summarize  # noqa: E402
from translocnet_ros.evaluation.protocol import (  # noqa: E402
    PUBLISH_CONFIDENCE,
    estimates,
    run_protocol,
    write_frames_csv,
)
from translocnet_ros.evaluation.robustness import Corruption  # noqa: E402
from translocnet_ros.evaluation.sequence import CONVERGED_FROM, run_sequence, score_sequence  # noqa: E402
from translocnet_ros.geo.crs import MapFrame, wrap_angle  # noqa: E402
from translocnet_ros.geo.pose import Pose2D  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.filter import FilterConfig, MotionNoise  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402

RUNS = ("known", "sequence", "bad", "kidnap")
LABELS = {
    "known": "known (single frame)",
    "sequence": "sequence",
    "bad": "sequence, 20% bad scans",
    "kidnap": "sequence, 50 m kidnapping",
    "dead": "dead reckoning (sequence prior columns)",
}


def filter_config(settings: list[str]) -> FilterConfig:
    """FilterConfig with KEY=VALUE overrides (motion.KEY for the motion noise)."""
    cfg, motion = {}, {}
    for s in settings:
        key, _, value = s.partition("=")
        (motion if key.startswith("motion.") else cfg)[key.removeprefix("motion.")] = float(value)
    cfg = {k: int(v) if isinstance(getattr(FilterConfig(), k), int) else v for k, v in cfg.items()}
    return dataclasses.replace(FilterConfig(), **cfg, motion=dataclasses.replace(MotionNoise(), **motion))


def run_town(method, town: Path, run: str, cfg: FilterConfig, kidnap_index: int, out: Path):
    """(ground truth, results, summary) of one run on one town's drive."""
    drive, src = KittiDrive(town / "drive_00"), GeoTiffSource(town / "ortho.tif")
    if run == "known":
        gt, res = run_protocol(method, drive, src, src.crs, "known", progress=False)
        summary = None
    else:
        corruption = {
            "sequence": None,
            "bad": Corruption(bad_fraction=0.2),
            "kidnap": Corruption(kidnap_index=kidnap_index, kidnap_m=50.0),
        }[run]
        gt, res = run_sequence(
            method, drive, src, src.crs, progress=False, filter_config=cfg, corruption=corruption
        )
        summary = score_sequence(gt, res, method, kidnap_index if run == "kidnap" else None)
    out.mkdir(parents=True, exist_ok=True)
    write_frames_csv(out / f"{town.name}_{run}.frames.csv", res)
    return gt, res, summary


def converged_scores(parts, registration, method) -> tuple[dict, dict]:
    """§6 metrics over frames from the 10th on of every town, as is and with the georegistration removed."""
    gts, ests, ests_reg, lats = [], [], [], []
    for (gt, res), reg in zip(parts, registration):
        est = estimates(res)[CONVERGED_FROM:]
        gts.append(gt[CONVERGED_FROM:])
        ests.append(est)
        ests_reg.append(est - [reg[0], reg[1], 0.0])
        lats.append([r.latency_ms for r in res][CONVERGED_FROM:])
    gt, lat = np.concatenate(gts), np.concatenate(lats)
    return (
        summarize(gt, np.concatenate(ests), lat, method.name, "", method.device),
        summarize(gt, np.concatenate(ests_reg), lat, method.name, "", method.device),
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["ncc", "translocnet"])
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=RUNS)
    ap.add_argument("--split", default="test", help="synthetic split (val for tuning, test to report)")
    ap.add_argument("--synth", type=Path, default=ROOT / "data" / "synth")
    ap.add_argument("--towns", type=int, default=None, help="first N towns only")
    ap.add_argument(
        "--imagery",
        choices=list(VARIANTS),
        default="as generated",
        help="the towns re-rendered from their own draws with one property of the orthophoto changed "
        "(benchmarks/imagery_variants.py; built under runs/shadow_bias/towns): what the filter does when the "
        "imagery lacks what pulls the single-frame estimates",
    )
    ap.add_argument("--kidnap-frame", type=int, default=40, help="position in the drive of the kidnapping")
    ap.add_argument("--set", nargs="*", default=[], help="FilterConfig overrides KEY=VALUE (motion.KEY)")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "sequence")
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--note", default="", help="sentences about this run, printed under the tables")
    ap.add_argument(
        "--write-only",
        action="store_true",
        help="write BENCHMARKS.md from the saved per-method results (methods run as separate processes)",
    )
    args = ap.parse_args()
    if args.write_only:
        report = {"methods": {name: {} for name in args.methods}}
        for path in sorted(args.out.glob(f"summary_{args.split}_*.json")):
            for name, runs in json.loads(path.read_text())["methods"].items():
                report["methods"].setdefault(name, {}).update(runs)
        towns = [args.synth / name for name, _ in split_towns(args.split, args.towns)]
        for name, runs in report["methods"].items():
            if "known" in runs and "sequence" in runs:
                runs["town_offsets"] = town_offsets(
                    towns, *saved_frames(args.out / name, towns, ("known", "sequence"))
                )
        write_section("sequence", table(report, args))
        return 0

    cfg = filter_config(args.set)
    if args.imagery == "as generated":
        towns = [args.synth / name for name, _ in split_towns(args.split, args.towns)]
    elif args.no_write:
        towns = variant_towns(args.split, args.towns, [args.imagery], ROOT / "runs" / "shadow_bias")[
            args.imagery
        ]
    else:
        sys.exit("--imagery variants are ablations beside the generated towns: add --no-write")
    missing = [t.name for t in towns if not (t / "town.json").is_file()]
    if (
        missing
    ):  # not built here: the generator may be changing in this tree, the figures must use the split's towns
        sys.exit(
            f"missing towns {missing}: run `translocnet generate --split {args.split} --out {args.synth}`"
        )
    registration = [json.loads((t / "town.json").read_text())["registration_error_m"] for t in towns]
    report = {"config": dataclasses.asdict(cfg), "methods": {}}
    for name in args.methods:
        method = make_method(name)
        per_run = {}
        for run in args.runs:
            outs = [run_town(method, t, run, cfg, args.kidnap_frame, args.out / name) for t in towns]
            parts = [(gt, res) for gt, res, _ in outs]
            conv, conv_reg = converged_scores(parts, registration, method)
            res_all = [r for _, res in parts for r in res]
            entry = {
                "towns": len(towns),
                "converged": conv,
                "converged_registration_removed": conv_reg,
                "latency_ms": _percentiles([r.latency_ms for r in res_all]),
            }
            entry["published"] = published(parts, converged_errors(parts), filtered=run != "known")
            if run != "known":
                sums = [s for _, _, s in outs]
                entry["first_fix_frame"] = [s["first_fix_frame"] for s in sums]
                entry["divergences"] = sum(s["divergences"] for s in sums)
                entry["filter_ms"] = _percentiles([r.filter_ms for r in res_all if np.isfinite(r.filter_ms)])
                if run == "kidnap":
                    entry["kidnap_recovered_after"] = [s["kidnap"]["recovered_after_frames"] for s in sums]
            if run == "sequence":
                dead = [(gt, [dataclasses.replace(r, est=r.prior) for r in res]) for gt, res in parts]
                per_run["dead"] = {
                    "towns": len(towns),
                    "converged": converged_scores(dead, registration, method)[0],
                }
            per_run[run] = entry | {"_parts": parts}
            print(f"{name:12s} {run:9s} " + _line(entry), flush=True)
        if "known" in per_run and "sequence" in per_run:
            per_run["town_offsets"] = town_offsets(
                towns, per_run["known"]["_parts"], per_run["sequence"]["_parts"]
            )
            hard, hits = hard_frames(per_run["town_offsets"])
            print(f"{name:12s} hard frames: {hard}, the filter within 1 m on {hits}", flush=True)
        for run in args.runs:
            del per_run[run]["_parts"]
        report["methods"][name] = per_run
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.methods:
        one = {"config": report["config"], "machine": machine(), "methods": {name: report["methods"][name]}}
        (args.out / f"summary_{args.split}_{name}_{'-'.join(args.runs)}.json").write_text(
            json.dumps(one, indent=2)
        )
    if not args.no_write:
        write_section("sequence", table(report, args))
    return 0


def saved_frames(
    folder: Path, towns: list[Path], runs: tuple[str, ...]
) -> list[list[tuple[np.ndarray, list]]]:
    """Per run, (ground truth, results with est) of each town, read back from the frames CSVs."""
    out = []
    for run in runs:
        parts = []
        for town in towns:
            src, drive = GeoTiffSource(town / "ortho.tif"), KittiDrive(town / "drive_00")
            gt = drive.ground_truth(MapFrame.from_any(src.crs)).xy_yaw()
            with open(folder / f"{town.name}_{run}.frames.csv") as f:
                rows = list(csv.DictReader(f))
            est = [Pose2D(float(r["est_x"]), float(r["est_y"]), float(r["est_yaw"])) for r in rows]
            parts.append((gt[[int(r["frame"]) for r in rows]], [SimpleNamespace(est=e) for e in est]))
        out.append(parts)
    return out


def converged_errors(parts) -> list[np.ndarray]:
    """Per (ground truth, results) part, the position errors of the frames from the 10th on."""
    return [frame_errors(gt, estimates(res))["position"][CONVERGED_FROM:] for gt, res in parts]


def published(parts: list, errors: list[np.ndarray], filtered: bool) -> tuple[int, int, float]:
    """Frames from the 10th on (their position errors: `errors`, per part) that the node would publish: (how
    many, how many of them > 2 m off, the largest error among them). The filter's own decision when `filtered`
    (converged, posterior sound); else a single frame from confidence_publish up."""
    shown = [
        [r.published if filtered else r.confidence >= PUBLISH_CONFIDENCE for r in res[CONVERGED_FROM:]]
        for _, res in parts
    ]
    e, pub = np.concatenate(errors), np.concatenate(shown).astype(bool)
    return int(pub.sum()), int((e[pub] > 2.0).sum()), float(e[pub].max()) if pub.any() else float("nan")


def publish_cells(p: tuple[int, int, float] | None) -> str:
    if p is None:
        return " | | "
    n, off, worst = p
    return f"{n} | {off} | {'-' if not n else f'{worst:.1f}'}"


def town_offsets(towns: list[Path], known, sequence) -> list[dict]:
    """Per town, over the frames from the 10th on, single frame (`known`) beside filtered (`sequence`): the mean
    offset along the true heading, across it and towards the town's sun (its georegistration offset removed) and
    the mean yaw offset of the frames within NEAR_M, the yaw recall at 1 deg of all; and the frames where the
    single frame is more than 2 m off ('hard'), with how many of them the filter has within 1 m. A town's own
    offset is what no filter averages away: the imagery as the model reads it (docs/real_gap.md)."""
    rows = []
    for town, (gt, kres), (_, sres) in zip(towns, known, sequence):
        meta = json.loads((town / "town.json").read_text())
        g = gt[CONVERGED_FROM:]
        heading = np.stack([np.cos(g[:, 2]), np.sin(g[:, 2])], axis=1)
        row, errors = {"town": town.name}, {}
        for run, res in (("known", kres), ("sequence", sres)):
            est = estimates(res)[CONVERGED_FROM:]
            errors[run] = frame_errors(g, est)
            near = errors[run]["position"] <= NEAR_M  # a wrong match is not an offset
            off = est[near, :2] - g[near, :2] - np.asarray(meta["registration_error_m"])
            h = heading[near]
            row[run] = {
                "near": int(near.sum()),
                "along_heading_m": _mean(np.sum(off * h, axis=1)),
                "across_heading_m": _mean(h[:, 0] * off[:, 1] - h[:, 1] * off[:, 0]),
                "towards_sun_m": _mean(off @ towards_sun(meta)),
                "yaw_deg": _mean(np.degrees(wrap_angle(est[near, 2] - g[near, 2]))),
                "yaw_recall_1deg": float(np.mean(errors[run]["yaw_deg"] <= 1.0)),
            }
        hard = errors["known"]["position"] > 2.0
        row["hard"] = int(hard.sum())
        row["hard_filtered_within_1m"] = int((errors["sequence"]["position"][hard] <= 1.0).sum())
        rows.append(row)
    return rows


def _mean(x: np.ndarray) -> float | None:
    return float(np.mean(x)) if len(x) else None


def hard_frames(offsets: list[dict]) -> tuple[int, int]:
    """Over all towns of `town_offsets`: frames where the single frame is more than 2 m off, and how many of
    them the filter has within 1 m."""
    return sum(t["hard"] for t in offsets), sum(t["hard_filtered_within_1m"] for t in offsets)


def _percentiles(x) -> dict:
    return {"p50": float(np.percentile(x, 50)), "p95": float(np.percentile(x, 95))} if len(x) else {}


def _line(e: dict) -> str:
    c, r = e["converged"], e["converged_registration_removed"]
    s = (
        f"conv mean {c['position_error_m']['mean']:.3f} m (reg removed {r['position_error_m']['mean']:.3f}) "
        f"median {c['position_error_m']['median']:.3f} lat@1m {c['lateral_recall']['1m']:.1%} "
        f"lon@1m {c['longitudinal_recall']['1m']:.1%} yaw@1 {c['yaw_recall']['1deg']:.1%} "
        f"p50 {e['latency_ms']['p50']:.0f} ms"
    )
    if "filter_ms" in e:
        s += f" filter p50 {e['filter_ms'].get('p50', float('nan')):.1f} ms div {e['divergences']}"
    if "kidnap_recovered_after" in e:
        s += f" kidnap recovered after {e['kidnap_recovered_after']}"
    if e.get("published"):
        s += " published {} (> 2 m: {}, largest {:.1f} m)".format(*e["published"])
    return s


def table(report: dict, args) -> str:
    cmd = "python benchmarks/sequence.py" + (f" --towns {args.towns}" if args.towns else "")
    if args.synth != ROOT / "data" / "synth":
        cmd += f" --synth {args.synth.relative_to(ROOT) if args.synth.is_relative_to(ROOT) else args.synth}"
    if args.methods != ["ncc", "translocnet"]:
        cmd += " --methods " + " ".join(args.methods)
    lines = [
        "## Temporal fusion: `sequence` beside `known` (issue 10)",
        "",
        f"Command: `{cmd}` (after `source scripts/env.sh`). Synthetic `{args.split}` towns (column 'towns': "
        f"the first N of the split, styles in turn), every frame of each 100-frame drive. `known`: every frame alone from a +-20 m / +-10 deg prior (DESIGN.md §6); "
        "`sequence`: the first prior only, then noisy odometry, through the particle filter "
        "(`translocnet_ros/localization/filter.py`, defaults of `FilterConfig`). Bad scans: 20% of the scans "
        "replaced, in equal shares, by a scan from >= 30 m away on the same drive, an empty scan or a half-occluded "
        f"one. Kidnapping: at frame {args.kidnap_frame} the odometry misses a 50 m jump. Every figure is over the "
        "frames from the 10th on (the `converged` block); 'reg. removed' subtracts each town's georegistration "
        f"offset from the estimates. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| method | run | towns | n | pos. mean [m] | pos. median [m] | mean, reg. removed [m] | yaw mean [deg] "
        "| lat R@1m | lon R@1m | yaw R@1° | first fix (frame, per town) | divergences | step p50 / p95 [ms] "
        "| filter p50 / p95 [ms] | device | published | of those > 2 m | largest published error [m] |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in report["methods"].items():
        for run in ("dead", *RUNS):
            if run not in runs:
                continue
            e = runs[run]
            c = e["converged"]
            reg = e.get("converged_registration_removed", {}).get("position_error_m", {}).get("mean")
            lat, flt = e.get("latency_ms"), e.get("filter_ms")
            reg = "" if reg is None else f"{reg:.2f}"
            step = f"{lat['p50']:.0f} / {lat['p95']:.0f}" if lat else ""
            fstep = f"{flt['p50']:.1f} / {flt['p95']:.1f}" if flt else ""
            lines.append(
                f"| {name} | {LABELS[run]} | {e.get('towns', '')} | {c['n']} | {c['position_error_m']['mean']:.2f} "
                f"| {c['position_error_m']['median']:.2f} | {reg} "
                f"| {c['yaw_error_deg']['mean']:.2f} | {c['lateral_recall']['1m']:.1%} "
                f"| {c['longitudinal_recall']['1m']:.1%} | {c['yaw_recall']['1deg']:.1%} "
                f"| {' '.join(str(f) for f in e.get('first_fix_frame', []))} | {e.get('divergences', '')} "
                f"| {step} | {fstep} | {c['device'] if lat else ''} | {publish_cells(e.get('published'))} |"
            )
    lines += [
        "",
        "Kidnapping (50 m): frames until the estimate is back within 1 m and 2 deg for 5 frames in a row:",
        "",
    ]
    for name, runs in report["methods"].items():
        if "kidnap" in runs:
            lines.append(f"- {name}: {', '.join(str(k) for k in runs['kidnap']['kidnap_recovered_after'])}")
    lines += ["", "Frames (from the 10th on) where the single-frame estimate is off by more than 2 m:", ""]
    for name, runs in report["methods"].items():
        if "town_offsets" in runs:
            n, hits = hard_frames(runs["town_offsets"])
            share = f" ({hits / n:.0%})" if n else ""
            lines.append(f"- {name}: {n} frames; the filtered estimate is within 1 m on {hits}{share}")
    lines += [
        "",
        "Per town, frames from the 10th on, single frame (`known`) / filtered (`sequence`): of the frames within "
        f"{NEAR_M:g} m of the truth (a wrong match is not an offset; column 'near'), the mean offset along the true "
        "heading, across it (to the left) and towards the town's sun (town.json; negative: away from the sun, into "
        "the shadows), each with the town's georegistration offset removed, and the mean yaw offset; yaw R@1° of all "
        "frames; frames where the single frame is more than 2 m off (how many of them the filter has within 1 m). "
        "What a town keeps in every frame, the filter keeps too.",
        "",
        "| method | town | near | along heading [m] | across heading [m] | towards the sun [m] | yaw offset [deg] "
        "| yaw R@1° | single frame > 2 m off (filtered within 1 m) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, runs in report["methods"].items():
        for t in runs.get("town_offsets", []):
            k, q = t["known"], t["sequence"]
            pair = [
                " / ".join("-" if r[key] is None else f"{r[key]:+.2f}" for r in (k, q))
                for key in ("along_heading_m", "across_heading_m", "towards_sun_m", "yaw_deg")
            ]
            lines.append(
                f"| {name} | {t['town']} | {k['near']} / {q['near']} | {' | '.join(pair)} "
                f"| {k['yaw_recall_1deg']:.0%} / {q['yaw_recall_1deg']:.0%} "
                f"| {t['hard']} ({t['hard_filtered_within_1m']}) |"
            )
    if args.note:
        lines += ["", args.note]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
