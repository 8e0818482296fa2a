"""Is the reported uncertainty honest? Temperature fitting of score volumes and consistency statistics.

A downstream filter (robot_localization, a Kalman filter in Nav2) trusts the covariance; the node gates on the
confidence. Both are only useful when they match the real errors, so both are measured, never assumed.
"""

from __future__ import annotations

import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.decode import NEAR_M, NEAR_RAD
from translocnet_ros.localization.types import ScoreVolume

CHI2_3DOF_95 = 7.8147  # 95% quantile of the chi-square distribution with 3 degrees of freedom
CHI2_3DOF_MEDIAN = 2.3660


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


def nees(gt: np.ndarray, est: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """e^T C^-1 e of the (x, y, yaw) error per frame."""
    e = np.column_stack([est[:, 0] - gt[:, 0], est[:, 1] - gt[:, 1], wrap_angle(est[:, 2] - gt[:, 2])])
    return np.einsum("ni,nij,nj->n", e, np.linalg.inv(cov), e)


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
