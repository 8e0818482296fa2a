"""The classic edge matcher's evidence added to TransLocNet's volume.

The learned model and NCC fail on different frames: the model where the imagery looks unlike the worlds it
was trained in (a real orthophoto's colours, relief and shadows), NCC where edges are ambiguous or missing.
Both volumes are likelihoods of the same pose, so their calibrated log-likelihoods add (a product of
evidence, as if independent); the localizer's temperature is then re-fitted on the sum. NCC is scored at the
model's own yaw hypotheses and its finer position grid max-pooled onto the model's cells, so the sum keeps the
model's volume layout and everything downstream (decoding, views' confidence, the filter) is unchanged.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import log_softmax

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.ncc import NccConfig, NccLocalizer
from translocnet_ros.localization.types import ImagerySource, LocalizationError, SearchWindow


def pool_onto(
    src: np.ndarray, src_m_per_px: float, src_centre: float, shape: tuple, m_per_px: float, centre: float
) -> np.ndarray:
    """A (K, h, w) volume on a finer grid with the same yaws and prior -> the (K, H, W) grid of `shape`: each
    cell takes the best source cell inside it; cells beyond the source take its lowest value."""
    ratio = m_per_px / src_m_per_px
    size = 2 * int(ratio // 2) + 1
    pooled = ndimage.maximum_filter(src, size=(1, size, size), mode="nearest") if size > 1 else src
    out = np.full(shape, src.min(), dtype=src.dtype)
    _, h, w = shape
    ii = np.rint(src_centre + (np.arange(h) - centre) * ratio).astype(int)
    jj = np.rint(src_centre + (np.arange(w) - centre) * ratio).astype(int)
    ki, kj = (ii >= 0) & (ii < src.shape[1]), (jj >= 0) & (jj < src.shape[2])
    out[np.ix_(np.arange(shape[0]), ki, kj)] = pooled[np.ix_(np.arange(shape[0]), ii[ki], jj[kj])]
    return out


class NccEvidence:
    """weight x NCC's log-likelihood (softmax at its own calibrated temperature), in the model's logit units."""

    def __init__(self, weight: float, config: NccConfig | None = None):
        self.weight = float(weight)
        self.ncc = NccLocalizer(config)

    def logits(
        self,
        scan: np.ndarray,
        imagery: ImagerySource,
        prior: Pose2D,
        window: SearchWindow,
        yaw_offsets: np.ndarray,
        shape: tuple,
        m_per_px: float,
    ) -> np.ndarray | None:
        """The term to add to a volume of `shape` centred on the prior; None where NCC cannot score (its 50 m
        template needs more imagery around the prior than the model does): the model's volume alone."""
        try:
            v = self.ncc.score_volume(scan, imagery, prior, window, yaw_offsets)
        except LocalizationError:
            return None
        ll = log_softmax(v.logits.astype(np.float64) / self.ncc.temperature, axis=None)
        return self.weight * pool_onto(ll, v.m_per_px, v.centre_px, shape, m_per_px, (shape[-1] - 1) / 2)
