"""From a score volume over (yaw, row, col) around a prior to a pose, covariance and confidence.

Shared by every method, so the baseline and the learned model are judged by the same decoding.
"""

from __future__ import annotations

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import Estimate, ScoreVolume


def _parabola_peak(lo: float, mid: float, hi: float) -> float:
    """Sub-cell offset of a quadratic's vertex through three samples, clamped to half a cell."""
    den = lo - 2 * mid + hi
    return 0.0 if den >= 0 else float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))


NEAR_M, NEAR_RAD = 1.0, np.radians(2.0)  # the confidence is the probability of being this close to the mode


def decode_volume(volume: ScoreVolume, temperature: float = 1.0) -> Estimate:
    """Mode with sub-cell refinement; covariance and confidence from the distribution softmax(logits / T)."""
    logits = volume.logits / temperature
    prior, yaw_offsets, m_per_px, centre_px = (
        volume.prior,
        volume.yaw_offsets,
        volume.m_per_px,
        volume.centre_px,
    )
    k, i, j = np.unravel_index(int(np.argmax(logits)), logits.shape)
    nk, ni, nj = logits.shape
    di = _parabola_peak(logits[k, i - 1, j], logits[k, i, j], logits[k, i + 1, j]) if 0 < i < ni - 1 else 0.0
    dj = _parabola_peak(logits[k, i, j - 1], logits[k, i, j], logits[k, i, j + 1]) if 0 < j < nj - 1 else 0.0
    yaw = yaw_offsets[k]
    if 0 < k < nk - 1 and np.isclose(yaw_offsets[k + 1] - yaw, yaw - yaw_offsets[k - 1]):
        yaw += _parabola_peak(logits[k - 1, i, j], logits[k, i, j], logits[k + 1, i, j]) * (
            yaw_offsets[k + 1] - yaw
        )
    x = prior.x + (j + dj - centre_px) * m_per_px
    y = prior.y - (i + di - centre_px) * m_per_px
    pose = Pose2D(float(x), float(y), float(wrap_angle(prior.yaw + yaw)))

    p = np.exp(logits - logits.max())
    p /= p.sum()
    xs = prior.x + (np.arange(nj) - centre_px) * m_per_px
    ys = prior.y - (np.arange(ni) - centre_px) * m_per_px
    dx = (xs - pose.x)[None, None, :]
    dy = (ys - pose.y)[None, :, None]
    dyaw = wrap_angle(prior.yaw + yaw_offsets - pose.yaw)[:, None, None]
    cells = [np.broadcast_to(v, p.shape) for v in (dx, dy, dyaw)]
    cov = np.array([[np.sum(p * a * b) for b in cells] for a in cells])
    step_yaw = float(np.min(np.diff(np.sort(yaw_offsets)))) if nk > 1 else np.radians(1.0)
    cov += np.diag([m_per_px**2 / 12, m_per_px**2 / 12, step_yaw**2 / 12])  # quantization floor
    near = (np.hypot(cells[0], cells[1]) <= NEAR_M) & (np.abs(cells[2]) <= NEAR_RAD)
    return Estimate(pose, cov, float(p[near].sum()), p.max(axis=0).astype(np.float32))
