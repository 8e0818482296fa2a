"""Dataset splits: disjoint seed ranges, every style in every split.

train: towns the model learns from; val: towns for tuning (baseline settings, checkpoints, calibration);
test: held-out towns, used only to report. Seeds never overlap, so no town appears in two splits.
"""

from __future__ import annotations

from translocnet_ros.synth.styles import STYLES
from translocnet_ros.synth.town import TownSpec

STYLE_ORDER = ("suburban", "downtown", "industrial", "rural")
# Share of towns whose colours are drawn from anywhere (not from plausible ranges): training only, so the
# aerial encoder cannot key on palettes; val/test/demo towns keep plausible (still randomized) colours.
WILD_APPEARANCE = {"train": 0.3}
SPLITS = {
    # name: (first seed, number of towns, size_m, frames per drive, drives per town)
    "train": (10_000, 32, 500.0, 150, 2),
    "val": (20_000, 12, 600.0, 100, 1),
    "test": (30_000, 8, 600.0, 100, 1),
    "demo": (40_000, 1, 400.0, 80, 1),
}
assert set(STYLE_ORDER) == set(STYLES)


def split_towns(split: str, limit: int | None = None, harsh_sun: bool = False) -> list[tuple[str, TownSpec]]:
    """(folder name, spec) of every town in a split, styles cycling; `harsh_sun`: drawn with a low sun."""
    first, n, size, frames, drives = SPLITS[split]
    out = []
    for k in range(n if limit is None else min(n, limit)):
        style = STYLE_ORDER[k % len(STYLE_ORDER)]
        seed = first + k
        out.append(
            (
                f"{split}_{style}_{seed}",
                TownSpec(
                    seed=seed,
                    style=style,
                    size_m=size,
                    n_frames=frames,
                    n_drives=drives,
                    wild_appearance=WILD_APPEARANCE.get(split, 0.0),
                    harsh_sun=harsh_sun,
                ),
            )
        )
    return out
