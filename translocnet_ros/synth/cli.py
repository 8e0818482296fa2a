"""`translocnet generate`: one town from a seed, a whole documented split (train / val / test / demo), or a
labelled drive ray-cast from a real site given as geometry (`--cloud`)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from translocnet_ros.synth.cloud_scene import MARGIN_M, raycast_site
from translocnet_ros.synth.splits import SPLITS, split_towns
from translocnet_ros.synth.styles import STYLES
from translocnet_ros.synth.town import TownSpec, generate_town

# TownSpec fields added after towns were generated, with their defaults (a town.json without them)
LATER_OPTIONS = {k: getattr(TownSpec, k) for k in ("shadows", "sun_turn_deg", "harsh_sun")}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--out", required=True, type=Path, help="output folder (a town, or the split's parent folder)"
    )
    p.add_argument("--split", choices=sorted(SPLITS), help="build every town of a split into --out/<town>")
    p.add_argument("--limit", type=int, help="with --split: only the first N towns")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--style", choices=sorted(STYLES), default="suburban")
    p.add_argument("--size-m", type=float, default=1000.0, help="town side length")
    p.add_argument("--frames", type=int, default=500, help="frames per drive (10 Hz)")
    p.add_argument("--drives", type=int, default=1)
    p.add_argument(
        "--m-per-px",
        type=float,
        default=0.5,
        help="GeoTIFF resolution (the imagery's own is random, 0.1-0.6 m)",
    )
    p.add_argument(
        "--wild-appearance", type=float, default=0.0, help="probability of colours from anywhere (training)"
    )
    p.add_argument(
        "--max-lean",
        type=float,
        default=0.35,
        help="largest tan(off-nadir) of relief displacement (0: true ortho)",
    )
    p.add_argument("--plain-sensor", action="store_true", help="the plain HDL-64E model for every drive")
    p.add_argument("--no-shadows", action="store_true", help="imagery without cast shadows (ablations)")
    p.add_argument(
        "--sun-turn-deg", type=float, default=0.0, help="turn the drawn sun azimuth by this (ablations)"
    )
    p.add_argument(
        "--harsh-sun",
        action="store_true",
        help="a low sun and near-black shadows, as in real orthophotos flown at high latitudes (also with --split)",
    )
    p.add_argument("--force", action="store_true", help="rebuild towns that already exist")
    p.add_argument(
        "--cloud",
        type=Path,
        metavar="SITE",
        help="instead of a town: a labelled KITTI-layout drive of --frames scans ray-cast at street level from "
        "SITE/cloud.ply (a coloured point cloud in the CRS of SITE/ortho.tif), sensor drawn from --seed",
    )
    p.add_argument(
        "--continuous",
        action="store_true",
        help="with --cloud: one continuous 10 Hz drive along the site's longest open street (what `eval "
        "--protocol sequence` needs) instead of independent poses",
    )
    p.add_argument(
        "--margin-m",
        type=float,
        default=MARGIN_M,
        help="with --cloud: independent poses stand this far inside the geometry's extent (at the model's BEV "
        "radius, 32 m, no scan is cut off where the geometry ends while the orthophoto goes on)",
    )


def build(jobs: list[tuple[Path, TownSpec]], force: bool) -> list[Path]:
    """Generate each town unless a complete copy (town.json written last) is already there."""
    done = []
    for path, spec in jobs:
        meta = path / "town.json"
        if meta.exists() and not force:
            # an option newer than the town is missing from its town.json: it was made the default way
            existing = {**LATER_OPTIONS, **json.loads(meta.read_text())}
            if all(existing.get(k) == v for k, v in spec.__dict__.items()):
                print(f"[generate] {path.name}: up to date")
                done.append(path)
                continue
        t0 = time.perf_counter()
        generate_town(spec, path)
        print(
            f"[generate] {path.name}: {spec.style}, {spec.size_m:.0f} m, {spec.n_drives}x{spec.n_frames} frames "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        done.append(path)
    return done


def run(args) -> int:
    if args.cloud:
        missing = [f for f in ("cloud.ply", "ortho.tif") if not (args.cloud / f).is_file()]
        if missing:
            raise SystemExit(f"[generate] --cloud {args.cloud}: no {' or '.join(missing)} there")
        try:
            raycast_site(
                args.cloud, args.out, args.frames, args.seed, drive=args.continuous, margin_m=args.margin_m
            )
        except ValueError as e:
            raise SystemExit(f"[generate] --cloud {args.cloud}: {e}") from None
        print(f"[generate] {args.out}: {args.frames} scans ray-cast from {args.cloud / 'cloud.ply'}")
        return 0
    if args.split:
        jobs = [(args.out / name, spec) for name, spec in split_towns(args.split, args.limit, args.harsh_sun)]
    else:
        spec = TownSpec(
            seed=args.seed,
            style=args.style,
            size_m=args.size_m,
            m_per_px=args.m_per_px,
            n_drives=args.drives,
            n_frames=args.frames,
            wild_appearance=args.wild_appearance,
            max_lean=args.max_lean,
            sensor_variety=not args.plain_sensor,
            shadows=not args.no_shadows,
            sun_turn_deg=args.sun_turn_deg,
            harsh_sun=args.harsh_sun,
        )
        jobs = [(args.out, spec)]
    build(jobs, args.force)
    return 0
