"""Prior and window selection: initial pose, GNSS, odometry-propagated tracking, losing track, relocalize."""

import numpy as np
import pytest

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.tracker import State, Tracker, TrackerConfig
from translocnet_ros.localization.types import Estimate


def est(pose, conf):
    return Estimate(pose, np.eye(3) * 0.1, conf)


def test_waits_for_a_prior_then_searches_wide():
    t = Tracker()
    assert t.prior(None) is None and t.state == State.WAITING
    t.set_gnss(100.0, 200.0)
    p = t.prior(None)
    assert (p.pose.x, p.pose.y) == (100.0, 200.0) and p.window.yaw_range_rad == pytest.approx(
        np.pi
    )  # no heading
    t.set_initial_pose(Pose2D(10.0, 20.0, 1.0), yaw_std_rad=0.1)
    p = t.prior(None)
    assert p.pose == Pose2D(10.0, 20.0, 1.0) and p.window.yaw_range_rad == pytest.approx(np.radians(10))
    assert p.window.radius_m == 20.0 and p.source == "initial pose"
    t.set_initial_pose(Pose2D(10.0, 20.0, 1.0), yaw_std_rad=1.0)  # heading too uncertain: search all
    assert t.prior(None).window.yaw_range_rad == pytest.approx(np.pi)


def test_tracking_moves_the_last_fix_by_odometry_and_shrinks_the_window():
    cfg = TrackerConfig()
    t = Tracker(cfg)
    t.set_initial_pose(Pose2D(0.0, 0.0, 0.0))
    odom0 = Pose2D(5.0, 5.0, np.pi / 2)
    assert t.update(est(Pose2D(100.0, 50.0, 0.0), 0.9), odom0)
    assert t.state == State.TRACKING
    odom1 = odom0.compose(Pose2D(2.0, 0.0, 0.1))  # drove 2 m forward, turned 0.1 rad
    p = t.prior(odom1)
    assert (p.pose.x, p.pose.y, p.pose.yaw) == pytest.approx((102.0, 50.0, 0.1))
    assert p.window.radius_m == cfg.tracking_radius_m and p.source == "tracking"
    t.set_gnss(0.0, 0.0)  # GNSS does not override a confident track
    assert t.prior(odom1).source == "tracking"


def test_lost_after_unconfident_fixes_and_relocalize():
    t = Tracker(TrackerConfig(lost_after=2, publish_min=0.2))
    assert not t.relocalize()
    t.set_initial_pose(Pose2D(0.0, 0.0, 0.0))
    t.update(est(Pose2D(1.0, 0.0, 0.0), 0.9), None)
    assert not t.update(est(Pose2D(9.0, 9.0, 0.0), 0.1), None)  # not published
    assert t.state == State.TRACKING
    assert t.update(est(Pose2D(1.5, 0.0, 0.0), 0.3), None)  # published, but still unconfident
    assert t.state == State.SEARCHING
    assert t.relocalize() and t.prior(None).window.radius_m == 20.0
    assert t.prior(None).pose == Pose2D(1.5, 0.0, 0.0)
