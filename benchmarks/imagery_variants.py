"""The synthetic test towns re-rendered from their own draws with one property of the orthophoto changed
(ablations: which part of the imagery a method reads, and what it costs): shared by `shadow_bias.py` and
`sequence.py --imagery` so both score the same towns."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from translocnet_ros.synth.cli import build
from translocnet_ros.synth.splits import split_towns

VARIANTS = {  # label -> TownSpec changes; the order numbers the towns' folders, so append only
    "as generated": {},
    "no cast shadows": {"shadows": False},
    "sun turned 180 deg": {"sun_turn_deg": 180.0},
    "true ortho (no relief displacement)": {"max_lean": 0.0},
    "true ortho, no cast shadows": {"max_lean": 0.0, "shadows": False},
}


def variant_towns(split: str, n: int | None, variants: list[str], folder: Path) -> dict[str, list[Path]]:
    """Per variant, the first n towns of the split rendered that way under folder/towns (built once)."""
    towns = split_towns(split, n)
    jobs = {
        v: [(folder / "towns" / f"{name}_{i}", replace(spec, **kw)) for name, spec in towns]
        for i, (v, kw) in enumerate(VARIANTS.items())
        if v in variants
    }
    build([j for js in jobs.values() for j in js], force=False)
    return {v: [path for path, _ in js] for v, js in jobs.items()}
