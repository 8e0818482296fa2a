"""Calibration statistics and the temperature fit on volumes whose true distribution is known."""

import numpy as np
import pytest

from translocnet_ros.evaluation.calibration import (
    CHI2_1DOF_MEDIAN,
    CHI2_2DOF_MEDIAN,
    axis_scales,
    consistency,
    covariance_scale,
    fit_temperature,
    nees,
    nees_xy,
    nees_yaw,
    true_pose_nll,
)
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import ScoreVolume

YAWS = np.radians(np.arange(-5, 6, 1.0))


def _volumes(n: int, true_t: float, seed: int = 0):
    """Volumes whose logits are T_true times too sharp, with true poses drawn from the honest distribution."""
    rng = np.random.default_rng(seed)
    ii, jj = np.meshgrid(np.arange(21), np.arange(21), indexing="ij")
    volumes, truths = [], []
    for _ in range(n):
        ci, cj, ck = rng.uniform(6, 14), rng.uniform(6, 14), rng.uniform(3, 7)
        honest = (
            -0.5 * (((ii - ci) ** 2 + (jj - cj) ** 2) / 1.5**2)[None]
            - 0.5 * ((np.arange(11) - ck) ** 2 / 1.2**2)[:, None, None]
        )
        p = np.exp(honest - honest.max())
        p /= p.sum()
        k, i, j = np.unravel_index(rng.choice(p.size, p=p.ravel()), p.shape)
        prior = Pose2D(100.0, 200.0, 0.3)
        vol = ScoreVolume(honest * true_t, prior, YAWS, 1.0, 10.0)
        truths.append(Pose2D(100.0 + (j - 10.0), 200.0 - (i - 10.0), 0.3 + YAWS[k]))
        assert vol.cell_of(truths[-1]) == (k, i, j)
        volumes.append(vol)
    return volumes, truths


def test_cell_of_rejects_poses_outside_the_volume():
    vol = ScoreVolume(np.zeros((11, 21, 21)), Pose2D(0.0, 0.0, 0.0), YAWS, 1.0, 10.0)
    assert vol.cell_of(Pose2D(0.2, -0.3, np.radians(2.2))) == (7, 10, 10)
    assert vol.cell_of(Pose2D(11.0, 0.0, 0.0)) is None
    assert vol.cell_of(Pose2D(0.0, 0.0, np.radians(8.0))) is None


def test_fitted_temperature_undoes_overconfidence():
    volumes, truths = _volumes(300, true_t=4.0)
    t, nll = fit_temperature(volumes, truths)
    assert t == pytest.approx(4.0, rel=0.25)
    assert nll < true_pose_nll(volumes, truths, 1.0)


def test_consistency_of_honest_and_overconfident_covariances():
    rng = np.random.default_rng(0)
    n = 4000
    cov = np.diag([0.5**2, 0.3**2, np.radians(1.0) ** 2])
    gt = np.column_stack([rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.uniform(-3, 3, n)])
    est = gt + rng.multivariate_normal(np.zeros(3), cov, n)
    pos_err = np.hypot(*(est - gt)[:, :2].T)
    honest = consistency(gt, est, np.repeat(cov[None], n, 0), np.exp(-pos_err))
    assert honest["nees_mean"] == pytest.approx(3.0, rel=0.1)
    assert honest["coverage_95"] == pytest.approx(0.95, abs=0.02)
    assert honest["spearman_confidence_error"] < -0.9
    over = consistency(gt, est, np.repeat(cov[None] / 4, n, 0), rng.uniform(0, 1, n))
    assert over["nees_mean"] == pytest.approx(12.0, rel=0.1)
    assert over["coverage_95"] < 0.6
    assert abs(over["spearman_confidence_error"]) < 0.1
    # the fitted factor undoes the overconfidence, and leaves an honest covariance alone
    assert covariance_scale(nees(gt, est, np.repeat(cov[None] / 4, n, 0))) == pytest.approx(4.0, rel=0.1)
    assert covariance_scale(nees(gt, est, np.repeat(cov[None], n, 0))) == pytest.approx(1.0, rel=0.1)


def test_axis_scales_make_position_and_yaw_honest_separately():
    """A filter posterior that understates the position variance 4 times and overstates the yaw variance 16
    times: one factor on the 3-DoF NEES cannot fix both; the two factors do."""
    from translocnet_ros.localization.filter import scale_axes

    rng = np.random.default_rng(1)
    n = 4000
    true = np.array([[0.25, 0.05, 0.0], [0.05, 0.16, 0.0], [0.0, 0.0, np.radians(0.5) ** 2]])
    gt = np.column_stack([rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.uniform(-3, 3, n)])
    est = gt + rng.multivariate_normal(np.zeros(3), true, n)
    raw = np.repeat(scale_axes(true, 1 / 4, 16.0)[None], n, 0)
    position, yaw = axis_scales(gt, est, raw)
    assert position == pytest.approx(4.0, rel=0.1) and yaw == pytest.approx(1 / 16, rel=0.1)
    fixed = scale_axes(raw, position, yaw)
    assert np.median(nees_xy(gt, est, fixed)) == pytest.approx(CHI2_2DOF_MEDIAN, rel=0.05)
    assert np.median(nees_yaw(gt, est, fixed)) == pytest.approx(CHI2_1DOF_MEDIAN, rel=0.1)
    np.testing.assert_allclose(fixed[0], true, rtol=0.1, atol=1e-12)  # correlations kept


def test_calibrate_collects_val_volumes_and_never_worsens_the_nll(small_town):
    from translocnet_ros.evaluation.calibrate_cli import collect, summary_at
    from translocnet_ros.localization.ncc import NccLocalizer

    method = NccLocalizer()
    volumes, truths = collect(method, [small_town], "known", every=4, seed=1, progress=False)
    assert len(volumes) == len(truths) == 3
    assert all(v.cell_of(t) is not None for v, t in zip(volumes, truths))
    t, nll = fit_temperature(volumes, truths)
    assert nll <= true_pose_nll(volumes, truths, method.temperature) + 1e-3
    s = summary_at(volumes, truths, t, 2.0)
    assert s["temperature"] == t and s["covariance_scale"] == 2.0 and s["nll"] == pytest.approx(nll)
    assert 0.0 <= s["coverage_95"] <= 1.0 and s["nees_mean"] > 0
