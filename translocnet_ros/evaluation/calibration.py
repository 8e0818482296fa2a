"""Is the reported uncertainty honest? Temperature fitting of score volumes and consistency statistics.

A downstream filter (robot_localization, a Kalman filter in Nav2) trusts the covariance; the node gates on the
confidence. Both are only useful when they match the real errors, so both are measured, never assumed.
"""

from __future__ import annotations

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.decode import NEAR_M, NEAR_RAD, WrongMatchCurve
from translocnet_ros.localization.types import ScoreVolume

CHI2_3DOF_95 = 7.8147  # 95% quantile of the chi-square distribution with 3 degrees of freedom
CHI2_3DOF_MEDIAN = 2.3660
CHI2_2DOF_MEDIAN = 1.3863
CHI2_1DOF_MEDIAN = 0.4549


def true_pose_nll(volumes: list[ScoreVolume], truths: list[Pose2D], temperature: float) -> float:
    """Mean negative log-probability of the true pose's cell under softmax(logits / T)."""
    nll = []
    for vol, truth in zip(volumes, truths):
        cell = vol.cell_of(truth)
        if cell is None:
            continue
        z = vol.logits / temperature
        m = z.max()
        nll.append(m + np.log(np.exp(z - m).sum()) - z[cell])
    if not nll:
        raise ValueError("no true pose lies inside any volume")
    return float(np.mean(nll))


def fit_temperature(volumes: list[ScoreVolume], truths: list[Pose2D]) -> tuple[float, float]:
    """(T, NLL) minimizing the true-pose NLL: a log-spaced scan over six decades, then a finer one."""
    lo, hi = -3.0, 3.0
    for _ in range(3):
        grid = np.linspace(lo, hi, 25)
        nll = [true_pose_nll(volumes, truths, 10.0**g) for g in grid]
        best = int(np.argmin(nll))
        step = grid[1] - grid[0]
        lo, hi = grid[best] - step, grid[best] + step
    return float(10.0 ** grid[best]), float(nll[best])


def covariance_scale(nees: np.ndarray) -> float:
    """Factor on the covariance that makes the median NEES that of an honest 3-DoF estimate. The median, not
    the mean: a few gross failures must not inflate every covariance."""
    return float(np.median(nees) / CHI2_3DOF_MEDIAN)


def axis_scales(gt: np.ndarray, est: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """(position, yaw) factors on the covariances (filter.scale_axes) that make the median x/y NEES that of an
    honest 2-DoF estimate and the median yaw NEES that of an honest 1-DoF one. Two factors, not one: the filter's
    position error is mostly what every scan shares (the imagery's registration, a look read with a bias), its
    yaw spread mostly the odometry's yaw noise; one factor on the 3-DoF NEES made the position honest on the val
    drives by making the yaw variance 16 times too wide (test towns: median yaw NEES 0.03, honest 0.45)."""
    return (
        float(np.median(nees_xy(gt, est, cov)) / CHI2_2DOF_MEDIAN),
        float(np.median(nees_yaw(gt, est, cov)) / CHI2_1DOF_MEDIAN),
    )


def nees(gt: np.ndarray, est: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """e^T C^-1 e of the (x, y, yaw) error per frame."""
    e = np.column_stack([est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1], wrap_angle(est[:, 2] - gt[:, 2])])
    return np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)


def nees_xy(gt: np.ndarray, est: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """e^T C^-1 e of the position error alone (x, y block of the covariance): what a filter fusing only the
    position sees; chi-square with 2 degrees of freedom (median 1.39) when honest."""
    e = est[:, :2] - gt[:, :2]
    return np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov[:, :2, :2]), e)


def nees_yaw(gt: np.ndarray, est: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """The yaw error's NEES alone (chi-square with 1 degree of freedom, median 0.45, when honest)."""
    return wrap_angle(est[:, 2] - gt[:, 2]) ** 2 / cov[:, 2, 2]


WRONG_MATCH_M, WRONG_MATCH_DEG = (
    5.0,
    5.0,
)  # a wrong match: beyond DESIGN.md §6's 5 m / 5 deg recall thresholds


def is_wrong_match(gt: np.ndarray, est: np.ndarray) -> np.ndarray:
    pos = np.hypot(est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1])
    return (pos > WRONG_MATCH_M) | (np.abs(wrap_angle(est[:, 2] - gt[:, 2])) > np.radians(WRONG_MATCH_DEG))


def fit_wrong_match(confidence: np.ndarray, wrong: np.ndarray) -> WrongMatchCurve:
    """P(wrong match | confidence) as the non-increasing step function closest to the observed rates (pool
    adjacent violators), one knot per pooled block at its mean confidence."""
    order = np.argsort(confidence)
    blocks: list[list[float]] = []  # [sum of wrong, frames, sum of confidence], confidence ascending
    for c, w in zip(confidence[order], wrong[order].astype(float)):
        blocks.append([w, 1.0, c])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            last = blocks.pop()
            blocks[-1] = [a + b for a, b in zip(blocks[-1], last)]
    knots = [(b[2] / b[1], b[0] / b[1]) for b in blocks]
    # a flat run needs only its ends: the curve is linear between knots and constant beyond them
    keep = [
        k
        for k in range(len(knots))
        if k in (0, len(knots) - 1) or not knots[k - 1][1] == knots[k][1] == knots[k + 1][1]
    ]
    return WrongMatchCurve(tuple(float(knots[k][0]) for k in keep), tuple(float(knots[k][1]) for k in keep))


def fit_covariance(
    gt: np.ndarray, est: np.ndarray, spread: np.ndarray, window: np.ndarray, confidence: np.ndarray
) -> tuple[float, WrongMatchCurve]:
    """(covariance_scale, wrong-match curve) of honest_covariance() fitted on these frames, one part of the
    mixture each: the curve is the observed rate of wrong matches (beyond 5 m or 5 deg) as a function of the
    confidence; the scale on the volume's own spread makes the median NEES of the other frames that of an honest
    3-DoF estimate (2.37)."""
    wrong = is_wrong_match(gt, est)
    right = ~wrong if (~wrong).any() else np.ones_like(wrong)
    scale = covariance_scale(nees(gt[right], est[right], spread[right]))
    return scale, fit_wrong_match(confidence, wrong)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(float)
    rb = np.argsort(np.argsort(b)).astype(float)
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def consistency(gt: np.ndarray, est: np.ndarray, cov: np.ndarray, confidence: np.ndarray) -> dict:
    """gt, est (N, 3) x, y, yaw; cov (N, 3, 3); confidence (N,).

    NEES = e^T C^-1 e of the (x, y, yaw) error: 3 on average for honest covariances, larger when the method is
    overconfident. Coverage = share of frames inside their own 95% ellipsoid (0.95 when honest). The confidence
    claims P(error <= 1 m and 2 deg); it is compared with how often that really happened, and its rank
    correlation with the position error is reported (negative is good)."""
    n = nees(gt, est, cov)
    pos = np.hypot(est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1])
    hit = (pos <= NEAR_M) & (np.abs(wrap_angle(est[:, 2] - gt[:, 2])) <= NEAR_RAD)
    return {
        "nees_mean": float(np.mean(n)),
        "nees_median": float(np.median(n)),
        "coverage_95": float(np.mean(n <= CHI2_3DOF_95)),
        "confidence_mean": float(np.mean(confidence)),
        "hit_rate_1m_2deg": float(np.mean(hit)),
        "spearman_confidence_error": _spearman(confidence, pos),
    }
