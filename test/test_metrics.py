"""Metric definitions of DESIGN.md §6 on crafted predictions with known errors."""

import numpy as np
import pytest

from translocnet_ros.evaluation.metrics import frame_errors, summarize

KEYS = {
    "method",
    "protocol",
    "n",
    "position_error_m",
    "yaw_error_deg",
    "lateral_recall",
    "longitudinal_recall",
    "yaw_recall",
    "latency_ms",
    "device",
}


def test_lateral_and_longitudinal_follow_the_true_heading():
    # heading north (yaw = 90 deg): an error of 3 m east is lateral, 4 m north is longitudinal
    gt = np.array([[0.0, 0.0, np.pi / 2]])
    est = np.array([[3.0, 4.0, np.pi / 2]])
    e = frame_errors(gt, est)
    assert e["position"][0] == pytest.approx(5.0)
    assert e["lateral"][0] == pytest.approx(3.0)
    assert e["longitudinal"][0] == pytest.approx(4.0)


def test_yaw_error_wraps():
    gt = np.array([[0, 0, np.radians(179.0)], [0, 0, np.radians(-90.0)]])
    est = np.array([[0, 0, np.radians(-179.0)], [0, 0, np.radians(-93.0)]])
    np.testing.assert_allclose(frame_errors(gt, est)["yaw_deg"], [2.0, 3.0], atol=1e-9)


def test_summary_recalls_and_keys():
    gt = np.zeros((4, 3))
    # longitudinal (heading east = x) errors 0.5, 0.99, 1.0, 6 m; yaw errors 0.5, 2, 4.9, 10 deg
    est = np.array(
        [
            [0.5, 0, np.radians(0.5)],
            [0.99, 0, np.radians(2)],
            [1.0, 0, np.radians(4.9)],
            [6.0, 0, np.radians(10)],
        ]
    )
    s = summarize(gt, est, np.array([10.0, 20.0, 30.0, 40.0]), "m", "known", "cpu")
    assert set(s) == KEYS
    assert s["n"] == 4
    assert s["longitudinal_recall"] == {"1m": 0.5, "5m": 0.75}  # strictly below the threshold
    assert s["lateral_recall"] == {"1m": 1.0, "5m": 1.0}
    assert s["yaw_recall"] == {"1deg": 0.25, "5deg": 0.75}
    assert s["position_error_m"]["mean"] == pytest.approx((0.5 + 0.99 + 1.0 + 6.0) / 4)
    assert s["position_error_m"]["median"] == pytest.approx(0.995)
    assert s["yaw_error_deg"]["median"] == pytest.approx(3.45)
    assert s["latency_ms"]["p50"] == pytest.approx(25.0)
    assert s["latency_ms"]["p95"] == pytest.approx(38.5)
