"""Uncertainty calibration of every method on the val towns: the temperature in use vs. the NLL-optimal one.

    python benchmarks/calibration.py                      # ncc and translocnet, protocol known
    python benchmarks/calibration.py --every 10           # quicker

Writes the `calibration` section of BENCHMARKS.md. The held-out test figures with the temperature in use are in
the accuracy sections (NEES, coverage, confidence vs hit rate).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.evaluation.calibrate_cli import (  # noqa: E402
    collect,
    fit_calibrated_covariance,
    summary_at,
)
from translocnet_ros.evaluation.calibration import fit_temperature  # noqa: E402
from translocnet_ros.localization.decode import NO_WRONG_MATCH, WrongMatchCurve  # noqa: E402
from translocnet_ros.localization.methods import make_method  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402


def _curve(d: dict) -> str:
    curve = WrongMatchCurve.from_dict(d)
    return " / ".join(f"{curve(c):.2f}" for c in (0.05, 0.2, 0.5))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["ncc", "translocnet"])
    ap.add_argument("--model", type=Path, default=None, help="translocnet model (default models/)")
    ap.add_argument("--synth", type=Path, default=ROOT / "data" / "synth")
    ap.add_argument("--every", type=int, default=4)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    jobs = [(args.synth / name, spec) for name, spec in split_towns("val")]
    build(jobs, force=False)
    rows = []
    for name in args.methods:
        method = make_method(name, **({"model_path": args.model} if args.model else {}))
        volumes, truths = collect(method, [t for t, _ in jobs], "known", args.every, seed=1, progress=True)
        t_fit, _ = fit_temperature(volumes, truths)
        scale, wrong = fit_calibrated_covariance(volumes, truths, t_fit)
        in_use = (method.temperature, method.covariance_scale, getattr(method, "wrong_match", NO_WRONG_MATCH))
        for label, calib in (("in use", in_use), ("fitted here", (t_fit, scale, wrong))):
            s = summary_at(volumes, truths, *calib)
            rows.append((name, label, len(volumes), s))
            print(name, label, {k: round(v, 4) for k, v in s.items() if k != "wrong_match"}, flush=True)
    lines = [
        "## Uncertainty calibration on the val towns (protocol known)",
        "",
        f"Command: `python benchmarks/calibration.py --every {args.every}`. The {len(jobs)} val towns, every "
        f"{args.every}-th frame, priors drawn with seed 1. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "NLL = negative log-probability of the true pose's cell; NEES is 3 and 95% coverage is 0.95 for an honest "
        "covariance (the scale on the volume's spread makes the median NEES of the frames that are not wrong matches "
        "2.37, that of an honest 3-DoF estimate; P(wrong match | confidence) widens the rest to the search window); "
        "the confidence claims P(error <= 1 m and 2 deg) and should match the hit rate.",
        "",
        "| method | calibration | T | covariance scale | P(wrong match) at confidence 0.05 / 0.2 / 0.5 | frames | true-pose NLL | NEES mean | NEES median | 95% coverage "
        "| confidence | hit rate | Spearman(conf, err) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, label, n, s in rows:
        lines.append(
            f"| {name} | {label} | {s['temperature']:.4g} | {s['covariance_scale']:.3g} | {_curve(s['wrong_match'])} | {n} | {s['nll']:.2f} | {s['nees_mean']:.1f} "
            f"| {s['nees_median']:.1f} | {s['coverage_95']:.0%} | {s['confidence_mean']:.2f} "
            f"| {s['hit_rate_1m_2deg']:.0%} | {s['spearman_confidence_error']:+.2f} |"
        )
    if not args.no_write:
        write_section("calibration", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
