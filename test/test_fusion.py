"""The engine step the node and `eval --protocol sequence` share (localization/fusion.py): what is published and
why not, odometry increments and gaps, priors (initial pose, GNSS, relocalize) and the support checks."""

import numpy as np
import pytest
from test_filter import gaussian_volume

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.filter import FilterConfig, MotionNoise
from translocnet_ros.localization.fusion import FilteredLocalizer
from translocnet_ros.localization.types import LocalizationError, SearchWindow


def street_scan(seed=0):
    """Points a support check takes for a real sweep: 60 m across, walls and trees above the ground."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-40.0, 40.0, (20000, 2))
    z = np.where(rng.random(20000) < 0.3, rng.uniform(0.5, 8.0, 20000), rng.normal(-1.7, 0.05, 20000))
    return np.column_stack([xy, z, rng.random(20000)]).astype(np.float32)


class VolumeAt:
    """A volume method whose likelihood peaks at the vehicle's true pose (set by the test before each scan)."""

    name, device, temperature = "fake", "cpu", 1.0

    def __init__(self, sd=0.6):
        self.truth, self.calls, self.during, self.sd = None, [], None, sd

    def score_volume(self, scan, imagery, prior, window):
        self.calls.append((prior, window))
        if self.during is not None:
            self.during()
        return gaussian_volume(self.truth, prior, window, sd=self.sd)


def drive(engine, method, truth, odom, steps, step=None, drop=()):
    """Drive `steps` scans 1 m forward; odometry exact except the scans in `drop`, which have none."""
    step, out = step or Pose2D(1.0, 0.0, 0.0), []
    for k in range(steps):
        truth, odom = truth.compose(step), odom.compose(step)
        method.truth = truth
        out.append(engine.step(street_scan(), None, None if k in drop else odom))
    return truth, odom, out


def test_publishes_only_a_converged_posterior_and_says_why_not():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=1), publish_min=0.2)
    first = engine.step(street_scan(), None, Pose2D(0.0, 0.0, 0.0))
    assert not first.publish and not first.fused and "waiting for a prior" in first.reason
    truth = Pose2D(300.0, 200.0, 0.4)
    engine.set_initial_pose(truth.offset(8.0, -6.0, np.radians(5.0)), yaw_std_rad=np.radians(5.0))
    _, _, steps = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 8)
    assert all(s.fused for s in steps) and steps[-1].publish and steps[-1].reason == ""
    est = steps[-1].estimate.pose
    assert np.hypot(est.x - method.truth.x, est.y - method.truth.y) < 0.3
    assert steps[-1].likelihood is not None and steps[-1].likelihood.max() > 0  # the posterior, as an image
    assert steps[-1].state == "CONVERGED" and np.isfinite(steps[-1].filter_ms)
    # the same belief, a stricter threshold: held back with the reason
    engine.configure(engine.filter.cfg, publish_min=1.01)
    _, _, (held,) = drive(engine, method, method.truth, Pose2D(8.0, 0.0, 0.0), 1)
    assert not held.publish and "(< confidence_publish 1.01)" in held.reason
    # a flat volume right after a fresh prior: searching, not published
    engine.configure(engine.filter.cfg, publish_min=0.0)
    engine.set_initial_pose(method.truth, yaw_std_rad=0.0)
    method.truth = method.truth.offset(0.0, 0.0, 0.0)
    wide = gaussian_volume(method.truth, method.truth, engine.filter.search_window()[1], sd=8.0)
    method.score_volume = lambda *a: wide
    s = engine.step(street_scan(), None, Pose2D(8.0, 0.0, 0.0))
    assert s.fused and not s.publish and s.reason.startswith("filter searching")


def test_a_scan_is_scored_in_the_window_the_belief_asks_for_and_a_failed_one_keeps_the_belief():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=8))
    engine.step(street_scan(), None, None)
    assert not method.calls  # no prior yet: nothing to score
    prior, window = Pose2D(0.0, 0.0, 0.25), SearchWindow(20.0, np.radians(10.0))
    engine.seed(prior, window, "test")
    method.truth = Pose2D(3.0, 4.0, 0.2)
    fused = engine.step(street_scan(), None, None)
    assert method.calls == [(prior, window)] and fused.fused
    empty = engine.step(np.empty((0, 4), np.float32), None, None)
    assert not empty.fused and not empty.publish and empty.error and len(method.calls) == 1
    assert empty.estimate.pose == fused.estimate.pose and empty.error in engine.filter.reason


def test_without_a_method_scans_are_not_scored_but_priors_are_kept():
    engine = FilteredLocalizer(None)
    engine.set_initial_pose(Pose2D(10.0, 20.0, 0.3))
    s = engine.step(street_scan(), None, Pose2D(0.0, 0.0, 0.0))
    assert not s.fused and not s.publish and "no localization method" in s.reason
    assert engine.prior() is not None


def test_a_converged_belief_on_weakly_read_scans_is_not_published():
    """The same drive with every volume a tenth as peaked (scans the model reads poorly): the filter converges as
    before, but its confidence times its readability stays below the converged bar, so nothing is published
    and the reason says why."""
    method = WeakVolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=1, readable_window=5), publish_min=0.2)
    truth = Pose2D(300.0, 200.0, 0.4)
    engine.set_initial_pose(truth.offset(2.0, -1.0, np.radians(2.0)), yaw_std_rad=np.radians(5.0))
    _, _, steps = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 30)
    assert steps[-1].state == "CONVERGED" and engine.filter.posterior_mass >= 0.5
    assert not any(s.publish for s in steps[10:])
    assert "scans read weakly" in steps[-1].reason and steps[-1].estimate.confidence < 0.5


class WeakVolumeAt(VolumeAt):
    def score_volume(self, scan, imagery, prior, window):
        v = super().score_volume(scan, imagery, prior, window)
        return type(v)(0.15 * v.logits, v.prior, v.yaw_offsets, v.m_per_px, v.centre_px)


def test_confidence_stays_below_one_so_confidence_publish_one_publishes_nothing():
    """A sharp likelihood on every scan gathers all the particles' weight near the mode (their mass there is 1,
    the confidence that made `confidence_publish: 1.0` publish): the confidence is a probability estimated from
    finitely many particles, so it stays below 1 and 1.0 holds back every pose of a converged filter."""

    class Sharp(VolumeAt):
        def score_volume(self, scan, imagery, prior, window):
            return gaussian_volume(self.truth, prior, window, sd=0.15, sd_yaw_deg=0.3)

    method = Sharp()
    engine = FilteredLocalizer(method, FilterConfig(seed=2), publish_min=1.0)
    truth = Pose2D(300.0, 200.0, 0.4)
    engine.set_initial_pose(truth, yaw_std_rad=np.radians(5.0))
    _, _, steps = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 8)
    f = engine.filter
    d = f.particles[:, :3] - np.array([f.mode.x, f.mode.y, f.mode.yaw])
    near = (np.hypot(d[:, 0], d[:, 1]) <= 1.0) & (np.abs(wrap_angle(d[:, 2])) <= np.radians(2.0))
    assert f._weights()[near].sum() == pytest.approx(1.0, abs=1e-6)  # (nearly) all the mass near the mode
    assert all(s.fused and s.state == "CONVERGED" for s in steps[1:])
    assert all(0.999 < s.estimate.confidence < 1.0 for s in steps[1:]), [s.estimate.confidence for s in steps]
    assert not any(s.publish for s in steps)
    assert steps[-1].reason == "low confidence 0.99 (< confidence_publish 1)"  # rounded down, never "1.00"
    assert engine.diagnostics()["filter confidence"] == "0.99"
    engine.configure(engine.filter.cfg, publish_min=0.99)  # just below: the same belief is published
    _, _, (step,) = drive(engine, method, method.truth, Pose2D(8.0, 0.0, 0.0), 1)
    assert step.publish and step.reason == ""


def test_an_odometry_gap_skips_the_scan_and_counts_the_motion_once():
    """A lost odom sample: the scan is skipped and the next increment spans the gap, so the belief follows the
    vehicle exactly as without the gap (a random walk there would count the gap's motion twice)."""
    ends = []
    for drop in ((), (6,)):
        method = VolumeAt()
        engine = FilteredLocalizer(method, FilterConfig(seed=2))
        truth = Pose2D(0.0, 0.0, 0.0)
        engine.set_initial_pose(truth)
        truth, _, steps = drive(engine, method, truth, Pose2D(5.0, 5.0, 1.0), 12, drop=drop)
        ends.append((truth, steps))
    (truth, clean), (_, gap) = ends
    assert not gap[6].fused and "no odometry at this scan's stamp" in gap[6].reason
    assert [s.fused for s in gap] == [k != 6 for k in range(12)]
    for steps in (clean, gap):
        p = steps[-1].estimate.pose
        assert np.hypot(p.x - truth.x, p.y - truth.y) < 0.3 and steps[-1].publish


def test_without_odometry_the_belief_walks_and_follows_the_scans():
    method = VolumeAt(sd=0.3)  # sharp scans: a random walk needs them to converge
    engine = FilteredLocalizer(method, FilterConfig(seed=3))
    truth = Pose2D(50.0, 50.0, 0.0)
    engine.set_initial_pose(truth)
    out = []
    for _ in range(10):  # no odometry ever: a random walk, yet 1 m per scan is followed
        truth = truth.compose(Pose2D(1.0, 0.0, 0.0))
        method.truth = truth
        out.append(engine.step(street_scan(), None, None))
    assert all(s.fused for s in out) and out[-1].publish
    p = out[-1].estimate.pose
    assert np.hypot(p.x - truth.x, p.y - truth.y) < 0.5


def test_priors_gnss_and_relocalize():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=4))
    assert "give /initialpose" in engine.relocalize()
    assert engine.set_gnss(100.0, 50.0) and engine.prior().pose == Pose2D(100.0, 50.0, 0.0)
    assert engine.prior().window.yaw_range_rad == pytest.approx(np.pi)  # GNSS has no heading
    assert "already searching around the GNSS fix" in engine.relocalize()
    truth = Pose2D(103.0, 48.0, 0.3)
    engine.set_initial_pose(truth.offset(2.0, 2.0, 0.05), yaw_std_rad=0.1)
    method.truth = truth
    s = engine.step(street_scan(), None, Pose2D(0.0, 0.0, 0.0))  # one scan: the belief replaces the window
    assert s.fused and engine.filter.state.name == "SEARCHING"
    assert not engine.set_gnss(104.0, 49.0)  # a fix inside the belief's own search keeps the evidence
    assert engine.set_gnss(180.0, 49.0) and engine.prior().pose.x == 180.0  # a fix far from it re-seeds
    engine.set_initial_pose(truth, yaw_std_rad=0.1)
    truth, _, steps = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 6)
    assert steps[-1].publish
    assert not engine.set_gnss(truth.x + 30.0, truth.y)  # a converged filter ignores one far fix (multipath)
    assert not engine.set_gnss(truth.x + 1.0, truth.y)  # a fix that agrees ends the run of far ones
    n = engine.filter.cfg.gnss_disagree_fixes
    assert [engine.set_gnss(truth.x + 30.0, truth.y) for _ in range(n)] == [False] * (n - 1) + [True]
    assert engine.prior().pose.x == truth.x + 30.0 and "fixes in a row" in engine.prior().source
    assert engine.prior().window.yaw_range_rad == pytest.approx(np.radians(engine.filter.cfg.search_yaw_deg))
    ignoring = FilteredLocalizer(method, FilterConfig(seed=4, gnss_disagree_fixes=0))
    ignoring.set_initial_pose(truth, yaw_std_rad=0.1)
    drive(ignoring, method, truth, Pose2D(0.0, 0.0, 0.0), 6)
    assert ignoring.filter.state.name == "CONVERGED"
    assert not any(ignoring.set_gnss(truth.x + 30.0, truth.y) for _ in range(20))  # 0: GNSS never overrules
    engine.set_initial_pose(truth, yaw_std_rad=0.1)
    truth, _, steps = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 6)
    assert engine.relocalize() == "" and engine.prior().window.radius_m == engine.filter.cfg.search_radius_m


def test_a_prior_that_arrives_while_scoring_is_not_mixed_with_the_old_window():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=5))
    truth = Pose2D(0.0, 0.0, 0.0)
    engine.set_initial_pose(truth)
    method.truth = truth
    new = Pose2D(500.0, 0.0, 0.0)
    method.during = lambda: engine.set_initial_pose(new)  # /initialpose while the volume is computed
    s = engine.step(street_scan(), None, Pose2D(0.0, 0.0, 0.0))
    assert not s.fused and "new prior arrived" in s.reason
    assert engine.prior().pose == new  # the new prior stands, untouched by the old window's volume


def test_support_checks_guard_the_filter():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=6))
    truth = Pose2D(0.0, 0.0, 0.0)
    engine.set_initial_pose(truth)
    method.truth = truth
    flat = street_scan()
    flat[:, 2] = 0.0
    s = engine.step(flat, None, Pose2D(0.0, 0.0, 0.0))
    assert not s.fused and "no height structure" in s.reason and not method.calls
    bad = gaussian_volume(truth, truth, engine.prior().window)
    bad.logits[0, 0, 0] = np.nan
    method.score_volume = lambda *a: bad
    s = engine.step(street_scan(), None, Pose2D(0.0, 0.0, 0.0))
    assert not s.fused and "non-finite likelihood" in s.reason
    with pytest.raises(LocalizationError, match="no likelihood volume"):
        FilteredLocalizer(type("NoVolume", (), {"name": "x", "device": "cpu"})()).method.score_volume(
            street_scan(), None, truth, engine.prior().window
        )


def test_node_parameter_defaults_are_the_engine_defaults():
    """The node's filter with its default parameters is the protocol's filter (FilterConfig())."""
    pytest.importorskip("rcl_interfaces", reason="rcl_interfaces not importable (source scripts/env.sh)")
    from translocnet_ros.ros.parameters import PARAMETERS, filter_config

    assert filter_config({k: p.default for k, p in PARAMETERS.items()}) == FilterConfig()


def test_relocation_only_for_methods_with_calibrated_volumes():
    """NCC's correlation peaks are no likelihood (they sit away from a well-tracking belief for many scans in a
    row): the filter must not relocate on them; TransLocNet's calibrated softmax volumes may."""
    plain = VolumeAt()  # declares nothing: treated as uncalibrated
    assert FilteredLocalizer(plain, FilterConfig()).filter.cfg.relocate_scans == 0
    calibrated = VolumeAt()
    calibrated.calibrated_volumes = True
    engine = FilteredLocalizer(calibrated, FilterConfig())
    assert engine.filter.cfg.relocate_scans == FilterConfig().relocate_scans > 0
    engine.configure(FilterConfig(relocate_scans=7), 0.2)  # live parameters keep the rule
    assert engine.filter.cfg.relocate_scans == 7
    engine = FilteredLocalizer(plain, FilterConfig())
    engine.configure(FilterConfig(relocate_scans=7), 0.2)
    assert engine.filter.cfg.relocate_scans == 0


def test_diagnostics_show_the_odometry_calibration_the_filter_learned():
    """Odometry exact, then 5% long: the engine's diagnostics show the scale the belief learned."""
    method = VolumeAt()
    for reported, learned in ((1.0, 1.0), (1.05, 1 / 1.05)):
        engine = FilteredLocalizer(method, FilterConfig(seed=3), publish_min=0.2)
        truth, odom = Pose2D(300.0, 200.0, 0.4), Pose2D(0.0, 0.0, 0.0)
        engine.set_initial_pose(truth, yaw_std_rad=np.radians(5.0))
        assert engine.diagnostics()["odometry scale"] == "1.0000"  # nothing learned before a scan
        for _ in range(60):
            truth, odom = truth.compose(Pose2D(1.0, 0.0, 0.0)), odom.compose(Pose2D(reported, 0.0, 0.0))
            method.truth = truth
            step = engine.step(street_scan(), None, odom)
        diag = engine.diagnostics()
        assert float(diag["odometry scale"]) == pytest.approx(learned, abs=0.01)
        assert abs(float(diag["odometry drift deg/m"])) < 0.1
        assert step.publish and np.hypot(step.estimate.pose.x - truth.x, step.estimate.pose.y - truth.y) < 0.3


def test_new_calibration_priors_redraw_the_learned_calibration():
    """A live change of the odometry calibration priors applies at once: sds 0 trust the odometry as reported."""
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=4), publish_min=0.2)
    truth = Pose2D(300.0, 200.0, 0.4)
    engine.set_initial_pose(truth, yaw_std_rad=np.radians(5.0))
    drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 5)
    assert float(engine.diagnostics()["odometry scale"]) != 1.0
    trusting = FilterConfig(seed=4, motion=MotionNoise(scale_sd=0.0, drift_deg_per_m_sd=0.0))
    engine.configure(trusting, publish_min=0.2)
    assert engine.diagnostics()["odometry scale"] == "1.0000"
    assert engine.diagnostics()["odometry drift deg/m"] == "+0.000"
    assert np.all(engine.filter.particles[:, 3:] == [1.0, 0.0])


def test_diagnostics_show_the_prior_region_until_the_belief_is_established():
    method = VolumeAt()
    engine = FilteredLocalizer(method, FilterConfig(seed=6))
    truth = Pose2D(10.0, -5.0, 0.2)
    engine.set_initial_pose(truth, yaw_std_rad=0.1)
    assert engine.diagnostics()["filter prior region"] == "+-20 m"
    truth, odom, _ = drive(engine, method, truth, Pose2D(0.0, 0.0, 0.0), 5, step=Pose2D(4.0, 0.0, 0.0))
    assert engine.diagnostics()["filter prior region"] == "+-22 m"  # 20 m grown by 10% of the 20 m driven
    drive(engine, method, truth, odom, engine.filter.cfg.anchor_release_scans)
    assert engine.filter.state.name == "CONVERGED"
    assert engine.diagnostics()["filter prior region"] == "released"
