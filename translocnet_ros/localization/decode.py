"""From a score volume over (yaw, row, col) around a prior to a pose, covariance and confidence.

Shared by every method, so the baseline and the learned model are judged by the same decoding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import Estimate, ImagerySource, ScoreVolume, SearchWindow


def _parabola_peak(lo: float, mid: float, hi: float) -> float:
    """Sub-cell offset of a quadratic's vertex through three samples, clamped to half a cell."""
    den = lo - 2 * mid + hi
    return 0.0 if den >= 0 else float(np.clip(0.5 * (lo - hi) / den, -0.5, 0.5))


# a quadratic in (k, i, j) over the 3x3x3 block around the mode: 1, k, i, j, k^2, i^2, j^2, ki, kj, ij
_OFFSETS = np.stack(np.meshgrid(*([np.arange(-1.0, 2.0)] * 3), indexing="ij"), -1).reshape(-1, 3)
_DESIGN = np.column_stack(
    [np.ones(27), _OFFSETS, _OFFSETS**2, _OFFSETS[:, [0]] * _OFFSETS[:, 1:], _OFFSETS[:, 1] * _OFFSETS[:, 2]]
)
_DESIGN_PINV = np.linalg.pinv(_DESIGN)


def _quadratic_peak(block: np.ndarray) -> np.ndarray | None:
    """Sub-cell offset (dk, di, dj) of the maximum of a quadratic fitted to a 3x3x3 block of log-likelihoods:
    a Gaussian peak with its correlations (yaw and position trade off along a road). None when the fit has no
    maximum within one cell of the centre."""
    c = _DESIGN_PINV @ block.reshape(27)
    hess = np.array(
        [
            [2 * c[4], c[7], c[8]],
            [c[7], 2 * c[5], c[9]],
            [c[8], c[9], 2 * c[6]],
        ]
    )
    if np.linalg.eigvalsh(hess).max() >= 0:
        return None
    offset = np.linalg.solve(hess, -c[1:4])
    return offset if np.all(np.abs(offset) <= 1.0) else None


NEAR_M, NEAR_RAD = 1.0, np.radians(2.0)  # the confidence is the probability of being this close to the mode


@dataclass(frozen=True)
class WrongMatchCurve:
    """P(the mode is a wrong match | confidence): non-increasing, piecewise linear between knots, constant
    beyond them; no knots = never (an uncalibrated method). Fitted on the validation towns
    (calibration.fit_wrong_match) and stored in the model's metadata."""

    confidence: tuple[float, ...] = ()
    probability: tuple[float, ...] = ()

    def __call__(self, confidence: float) -> float:
        if not self.confidence:
            return 0.0
        return float(np.interp(confidence, self.confidence, self.probability))

    def to_dict(self) -> dict:
        return {"confidence": list(self.confidence), "probability": list(self.probability)}

    @classmethod
    def from_dict(cls, d: dict | None) -> WrongMatchCurve:
        if not d:
            return cls()
        c, p = tuple(float(v) for v in d["confidence"]), tuple(float(v) for v in d["probability"])
        if len(c) != len(p) or any(np.diff(c) < 0) or any(np.diff(p) > 0) or not all(0 <= v <= 1 for v in p):
            raise ValueError(
                "wrong-match curve needs increasing confidences and non-increasing probabilities in [0, 1]: "
                f"{d}"
            )
        return cls(c, p)


NO_WRONG_MATCH = WrongMatchCurve()


def honest_covariance(
    covariance: np.ndarray,
    confidence: float,
    window: np.ndarray,
    covariance_scale: float = 1.0,
    wrong_match: WrongMatchCurve = NO_WRONG_MATCH,
) -> np.ndarray:
    """The published covariance, the second moment of a two-way mixture: with probability 1 - q the mode is
    right and the error follows the volume's own spread (times the calibrated scale); with q = wrong_match(
    confidence) the mode is a wrong match and the pose may be anywhere in the search window.

    A learned matcher can be peaked at the wrong place (on real imagery its volume often gives the truth almost
    no mass), so its own spread understates the error exactly when its confidence is low; the second term keeps
    such a covariance as wide as the window searched. Both parts are fitted on the validation towns (`translocnet
    calibrate`)."""
    q = wrong_match(float(np.clip(confidence, 0.0, 1.0)))
    return (1.0 - q) * covariance_scale * covariance + q * window


@dataclass
class DecodedVolume:
    """What a volume says before calibration: the mode, the distribution's second moment about it (with the
    quantization floor), the mass near it, and the second moment about it of a pose spread evenly over the
    window (where the pose may be when the mode is a wrong match)."""

    pose: Pose2D
    spread: np.ndarray
    confidence: float
    window: np.ndarray
    likelihood: np.ndarray


def decode_volume(
    volume: ScoreVolume,
    temperature: float = 1.0,
    covariance_scale: float = 1.0,
    wrong_match: WrongMatchCurve = NO_WRONG_MATCH,
) -> Estimate:
    """Mode with sub-cell refinement; covariance and confidence from the distribution softmax(logits / T); the
    published covariance is honest_covariance() of them with the calibrated scale and wrong-match curve."""
    d = decode_parts(volume, temperature)
    cov = honest_covariance(d.spread, d.confidence, d.window, covariance_scale, wrong_match)
    return Estimate(d.pose, cov, d.confidence, d.likelihood)


class VolumeLocalizer:
    """localize() of a method that scores a volume (score_volume) and carries its calibration (temperature,
    covariance_scale, wrong_match): the volume decoded as every method's is."""

    temperature: float
    covariance_scale: float
    wrong_match: WrongMatchCurve

    def localize(
        self, scan: np.ndarray, imagery: ImagerySource, prior: Pose2D, window: SearchWindow
    ) -> Estimate:
        return decode_volume(
            self.score_volume(scan, imagery, prior, window),
            self.temperature,
            self.covariance_scale,
            self.wrong_match,
        )


def decode_parts(volume: ScoreVolume, temperature: float = 1.0) -> DecodedVolume:
    """decode_volume() before the calibrated covariance (the calibration fits it from these parts)."""
    logits = volume.logits / temperature
    prior, yaw_offsets, m_per_px, centre_px = (
        volume.prior,
        volume.yaw_offsets,
        volume.m_per_px,
        volume.centre_px,
    )
    k, i, j = np.unravel_index(int(np.argmax(logits)), logits.shape)
    nk, ni, nj = logits.shape
    uniform_yaw = 0 < k < nk - 1 and np.isclose(
        yaw_offsets[k + 1] - yaw_offsets[k], yaw_offsets[k] - yaw_offsets[k - 1]
    )
    joint = (
        _quadratic_peak(logits[k - 1 : k + 2, i - 1 : i + 2, j - 1 : j + 2])
        if uniform_yaw and 0 < i < ni - 1 and 0 < j < nj - 1
        else None
    )
    if joint is not None:
        dk, di, dj = joint
    else:  # at the border of the volume, or no joint maximum: one parabola per axis
        di = _parabola_peak(*logits[k, i - 1 : i + 2, j]) if 0 < i < ni - 1 else 0.0
        dj = _parabola_peak(*logits[k, i, j - 1 : j + 2]) if 0 < j < nj - 1 else 0.0
        dk = _parabola_peak(*logits[k - 1 : k + 2, i, j]) if uniform_yaw else 0.0
    yaw = yaw_offsets[k] + (dk * (yaw_offsets[k + 1] - yaw_offsets[k]) if uniform_yaw else 0.0)
    x = prior.x + (j + dj - centre_px) * m_per_px
    y = prior.y - (i + di - centre_px) * m_per_px
    pose = Pose2D(float(x), float(y), float(wrap_angle(prior.yaw + yaw)))

    p = _softmax(logits)
    dx, dy, dyaw = _offsets(volume, pose)
    cells = [np.broadcast_to(v, p.shape) for v in (dx, dy, dyaw)]
    cov = np.array([[np.sum(p * a * b) for b in cells] for a in cells])
    step_yaw = float(np.min(np.diff(np.sort(yaw_offsets)))) if nk > 1 else np.radians(1.0)
    cov += np.diag([m_per_px**2 / 12, m_per_px**2 / 12, step_yaw**2 / 12])  # quantization floor
    near = (np.hypot(cells[0], cells[1]) <= NEAR_M) & (np.abs(cells[2]) <= NEAR_RAD)
    window = np.diag([np.mean(np.square(v)) for v in (dx, dy, dyaw)])
    return DecodedVolume(
        pose, cov, near_mass(volume, p, near, temperature), window, p.max(axis=0).astype(np.float32)
    )


def _offsets(volume: ScoreVolume, pose: Pose2D) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cell's (x, y, yaw) offset from `pose`, broadcastable to the volume's (K, H, W)."""
    xs, ys = volume.cell_centres()
    return (
        (xs - pose.x)[None, None, :],
        (ys - pose.y)[None, :, None],
        wrap_angle(volume.prior.yaw + volume.yaw_offsets - pose.yaw)[:, None, None],
    )


def mass_near(volume: ScoreVolume, pose: Pose2D, temperature: float = 1.0) -> float:
    """The probability a volume puts within NEAR_M / NEAR_RAD of a given pose (not its own mode): how far the scan
    backs that pose (the filter's belief), as its confidence says how far it backs its own mode."""
    p = _softmax(volume.logits / temperature)
    dx, dy, dyaw = _offsets(volume, pose)
    near = (np.hypot(dx, dy) <= NEAR_M) & (np.abs(dyaw) <= NEAR_RAD)
    return near_mass(volume, p, np.broadcast_to(near, p.shape), temperature)


def near_mass(volume: ScoreVolume, p: np.ndarray, near: np.ndarray, temperature: float) -> float:
    """The confidence: probability mass near the mode. With test-time views, the mass their mixture puts
    there (the mean over views of each view's own mass, at the same temperature): the averaged logits are a
    product of the views and stay peaked where the views disagree, which on unfamiliar imagery is exactly
    when the mode is a wrong match; the mixture is not."""
    if volume.view_logits is None:
        return float(p[near].sum())
    return float(np.mean([_softmax(v / temperature)[near].sum() for v in volume.view_logits]))


def _softmax(z: np.ndarray) -> np.ndarray:
    q = np.exp(z - z.max())
    return q / q.sum()
