"""Prior and window selection: initial pose, GNSS, odometry-propagated tracking, losing track, relocalize,
and the odometry gate that keeps one bad fix from becoming the anchor."""

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
    assert t.update(est(Pose2D(100.0, 50.0, 0.0), 0.9), odom0).publish
    assert t.state == State.TRACKING
    odom1 = odom0.compose(Pose2D(2.0, 0.0, 0.1))  # drove 2 m forward, turned 0.1 rad
    p = t.prior(odom1)
    assert (p.pose.x, p.pose.y, p.pose.yaw) == pytest.approx((102.0, 50.0, 0.1))
    assert p.window.radius_m == cfg.tracking_radius_m and p.source == "tracking"
    t.set_gnss(0.0, 0.0)  # GNSS does not override a confident track
    assert t.prior(odom1).source == "tracking"


def test_lost_after_unconfident_fixes_and_relocalize():
    t = Tracker(TrackerConfig(lost_after=2, publish_min=0.2))
    assert "no pose estimated yet" in t.relocalize()
    t.set_initial_pose(Pose2D(0.0, 0.0, 0.0))
    assert "already searching around the initial pose" in t.relocalize()  # nothing estimated yet
    assert t.update(est(Pose2D(1.0, 0.0, 0.0), 0.9), None).publish
    d = t.update(est(Pose2D(9.0, 9.0, 0.0), 0.1), None)
    assert not d.publish and "low confidence 0.10" in d.reason
    assert t.state == State.TRACKING
    assert t.update(est(Pose2D(1.5, 0.0, 0.0), 0.3), None).publish  # published, but still unconfident
    assert t.state == State.SEARCHING
    assert t.relocalize() == "" and t.prior(None).window.radius_m == 20.0
    assert t.prior(None).pose == Pose2D(1.5, 0.0, 0.0)


def drive(t: Tracker, steps: int, start: int = 0, offset=(0.0, 0.0)):
    """Drive east 1 m per scan with exact odometry; the tracker sees fixes `offset` from the truth."""
    out = []
    for k in range(start, start + steps):
        odom = Pose2D(float(k), 0.0, 0.0)
        truth = Pose2D(100.0 + k, 50.0, 0.0)
        out.append(t.update(est(Pose2D(truth.x + offset[0], truth.y + offset[1], 0.0), 0.9), odom))
    return out


def test_one_confident_outlier_while_tracking_is_held_and_does_not_move_the_anchor():
    t = Tracker()
    t.set_initial_pose(Pose2D(100.0, 50.0, 0.0))
    assert all(d.publish for d in drive(t, 3))
    assert t.state == State.TRACKING
    bad = drive(t, 1, start=3, offset=(5.0, -4.0))[0]  # a garbage scan: confident, 6.4 m off
    assert not bad.publish and "odometry prediction" in bad.reason and "1 so far" in bad.reason
    prior = t.prior(Pose2D(4.0, 0.0, 0.0))
    assert (prior.pose.x, prior.pose.y) == pytest.approx((104.0, 50.0))  # still the good track
    assert all(d.publish for d in drive(t, 3, start=4))  # the following good scans are published


def test_consistent_fixes_overrule_the_prediction_after_confirmations():
    t = Tracker(TrackerConfig(confirmations=3))
    t.set_initial_pose(Pose2D(100.0, 50.0, 0.0))
    drive(t, 2)
    # the track was wrong (or the vehicle was moved): three fixes agree with each other, not with odometry
    held = drive(t, 3, start=2, offset=(8.0, 0.0))
    assert [d.publish for d in held] == [False, False, True]
    assert t.prior(Pose2D(5.0, 0.0, 0.0)).pose.x == pytest.approx(113.0)


def test_outliers_that_disagree_with_each_other_never_confirm():
    t = Tracker(TrackerConfig(confirmations=2))
    t.set_initial_pose(Pose2D(100.0, 50.0, 0.0))
    drive(t, 2)
    for k, off in enumerate([(9.0, 0.0), (-9.0, 3.0), (0.0, 9.0), (7.0, -7.0)]):
        assert not drive(t, 1, start=2 + k, offset=off)[0].publish
    assert t.prior(Pose2D(6.0, 0.0, 0.0)).pose.x == pytest.approx(106.0)
