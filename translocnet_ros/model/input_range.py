"""The aerial input statistics a model was trained on, and an area's statistics fitted into that range.

Training randomizes appearance hard (colour jitter, palettes, grey, CLAHE, blur), so a model is already
invariant to an orthophoto whose per-patch channel means and spreads fall inside what it saw. Re-normalizing such
an area onto the training mean does not help, it only moves the input (on helsinki-dev: 7.29 -> 8.35 m, BENCHMARKS
`adapt`). What lies outside the trained range (a dark or flat 16-bit product badly stretched, a false-colour
band order) is what adaptation must correct: the area's typical patch statistics are clipped into the range and
the input normalization maps the area onto those clipped values; inside the range it stays as trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

QUANTILES = (0.02, 0.98)  # the range: this central share of the augmented training patches


@dataclass(frozen=True)
class InputRange:
    """Per-channel bounds (0..1 scale) of the per-patch mean and standard deviation seen in training."""

    mean_lo: tuple[float, float, float]
    mean_hi: tuple[float, float, float]
    std_lo: tuple[float, float, float]
    std_hi: tuple[float, float, float]
    patches: int

    def to_dict(self) -> dict:
        return {
            "mean": [[round(v, 4) for v in self.mean_lo], [round(v, 4) for v in self.mean_hi]],
            "std": [[round(v, 4) for v in self.std_lo], [round(v, 4) for v in self.std_hi]],
            "quantiles": list(QUANTILES),
            "patches": self.patches,
        }

    @staticmethod
    def from_dict(d: dict) -> InputRange:
        return InputRange(*map(tuple, d["mean"]), *map(tuple, d["std"]), int(d["patches"]))


def patch_statistics(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) per-channel means and (N, 3) standard deviations, 0..1 scale, of HxWx3 uint8 patches."""
    px = [img.reshape(-1, 3).astype(np.float64) / 255.0 for img in images]
    return np.stack([p.mean(0) for p in px]), np.stack([p.std(0) for p in px])


def measure(frames: Dataset, n: int, seed: int = 0) -> InputRange:
    """The range over n training samples drawn at random, with the training augmentation (`aerial` of
    model/data.TownFrames items, i.e. exactly what the aerial encoder was fed)."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(frames), size=min(n, len(frames)), replace=False)
    images = [frames[int(i)]["aerial"].numpy().transpose(1, 2, 0) for i in picks]
    means, stds = patch_statistics(images)
    q = lambda a, k: tuple(float(v) for v in np.quantile(a, QUANTILES[k], axis=0))  # noqa: E731
    return InputRange(q(means, 0), q(means, 1), q(stds, 0), q(stds, 1), len(images))


@dataclass(frozen=True)
class Fitted:
    """The input normalization for an area, and what it was derived from (for the metadata)."""

    rgb_mean: np.ndarray
    rgb_std: np.ndarray
    area_mean: np.ndarray  # the area's typical patch: median over its patches
    area_std: np.ndarray
    target_mean: np.ndarray  # the same, clipped into the trained range
    target_std: np.ndarray

    @property
    def outside(self) -> list[str]:
        """Which statistics lay outside the trained range (empty: the normalization is unchanged)."""
        names = ("R", "G", "B")
        out = [f"{names[c]} mean" for c in range(3) if self.area_mean[c] != self.target_mean[c]]
        return out + [f"{names[c]} spread" for c in range(3) if self.area_std[c] != self.target_std[c]]


def fit_normalization(
    rgb_mean: np.ndarray, rgb_std: np.ndarray, images: list[np.ndarray], trained: InputRange
) -> Fitted:
    """Normalization (mean', std') so that the area's pixels x, through (x - mean') / std', look like pixels of
    an area with the clipped statistics through the model's own (x - mean) / std: an affine map of each channel
    onto the nearest statistics the model was trained on; the identity when the area is inside the range."""
    means, stds = patch_statistics(images)
    m_a, s_a = np.median(means, 0), np.maximum(np.median(stds, 0), 1e-4)
    m_t = np.clip(m_a, trained.mean_lo, trained.mean_hi)
    s_t = np.clip(s_a, trained.std_lo, trained.std_hi)
    gain = s_a / s_t
    new_std = np.where(s_t == s_a, rgb_std, rgb_std * gain)
    new_mean = np.where((m_t == m_a) & (s_t == s_a), rgb_mean, m_a - (m_t - rgb_mean) * gain)
    return Fitted(new_mean, new_std, m_a, s_a, m_t, s_t)
