"""The published covariance (decode.honest_covariance) and its calibration (calibration.fit_covariance)."""

import json
import shutil

import numpy as np
import pytest

from translocnet_ros.evaluation.calibration import (
    CHI2_3DOF_95,
    fit_covariance,
    fit_wrong_match,
    nees,
    nees_xy,
)
from translocnet_ros.evaluation.protocol import PUBLISH_CONFIDENCE, published_nees
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.decode import (
    WrongMatchCurve,
    decode_parts,
    decode_volume,
    honest_covariance,
)
from translocnet_ros.localization.types import ScoreVolume

YAWS = np.radians(np.arange(-10, 11, 1.0))
PRIOR = Pose2D(500.0, 800.0, 0.4)


def _wrong_cluster_volume() -> ScoreVolume:
    """A confidently wrong match as seen on real imagery: all the mass in one cluster a few metres wide, spread
    over yaw beyond the 2 degrees the confidence counts, so the confidence is low while the volume's own spread
    is small."""
    k, i, j = np.meshgrid(np.arange(21), np.arange(41), np.arange(41), indexing="ij")
    logits = -0.5 * (((i - 8) ** 2 + (j - 30) ** 2) / 1.5**2 + (k - 10) ** 2 / 6.0**2)
    return ScoreVolume(logits, PRIOR, YAWS, 1.0, 20.0)


def test_window_term_widens_a_low_confidence_estimate_to_the_search_window():
    vol = _wrong_cluster_volume()
    parts = decode_parts(vol)
    assert parts.confidence < 0.2
    own = decode_volume(vol).covariance
    # without the window term: a few metres, whatever the confidence says
    assert np.sqrt(own[0, 0]) < 2.5 and np.sqrt(own[1, 1]) < 2.5
    curve = WrongMatchCurve((0.05, 0.3), (0.6, 0.0))  # low confidence: often a wrong match
    est = decode_volume(vol, 1.0, 1.0, curve)
    # the window's second moment about the mode: a pose anywhere in the 41 x 41 m window, 21 yaw layers
    xs = (np.arange(41) - 20.0) + PRIOR.x - est.pose.x
    assert parts.window[0, 0] == pytest.approx(np.mean(xs**2))
    q = curve(est.confidence)
    assert 0.4 < q < 0.6
    np.testing.assert_allclose(est.covariance, (1 - q) * own + q * parts.window)
    # a truth elsewhere in the window (here at the prior, 16 m from the mode) is inside its 95% ellipsoid
    err = np.array([[PRIOR.x - est.pose.x, PRIOR.y - est.pose.y, 0.0]])
    assert np.hypot(*err[0, :2]) > 15
    assert nees(np.zeros((1, 3)), err, est.covariance[None])[0] < CHI2_3DOF_95
    assert nees(np.zeros((1, 3)), err, own[None])[0] > 100


def test_window_term_fades_with_confidence():
    spread, window = np.diag([0.3, 0.3, 1e-4]), np.diag([150.0, 150.0, 0.04])
    curve = WrongMatchCurve((0.02, 0.1, 0.4), (0.9, 0.3, 0.0))
    covs = [honest_covariance(spread, c, window, 0.9, curve) for c in (0.0, 0.2, 0.5)]
    assert covs[0][0, 0] > covs[1][0, 0] > covs[2][0, 0]
    np.testing.assert_allclose(covs[0], 0.1 * 0.9 * spread + 0.9 * window)  # constant below the first knot
    np.testing.assert_allclose(covs[2], 0.9 * spread)
    np.testing.assert_allclose(honest_covariance(spread, 0.0, window), spread)  # uncalibrated: the spread


def test_wrong_match_curve_round_trips_and_refuses_nonsense():
    curve = WrongMatchCurve((0.01, 0.1), (0.5, 0.0))
    assert WrongMatchCurve.from_dict(curve.to_dict()) == curve
    assert WrongMatchCurve.from_dict(None)(0.0) == 0.0
    with pytest.raises(ValueError):
        WrongMatchCurve.from_dict({"confidence": [0.2, 0.1], "probability": [0.5, 0.0]})
    with pytest.raises(ValueError):
        WrongMatchCurve.from_dict({"confidence": [0.1], "probability": [1.5]})
    with pytest.raises(
        ValueError, match="non-increasing"
    ):  # more confident, more often wrong: no calibration
        WrongMatchCurve.from_dict({"confidence": [0.1, 0.5], "probability": [0.2, 0.6]})


def test_wrong_match_rate_is_fitted_non_increasing_in_confidence():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0, 1, 4000)
    wrong = rng.uniform(size=4000) < np.clip(0.8 - 2 * conf, 0, 1)  # true rate 0.8 - 2c, 0 above 0.4
    curve = fit_wrong_match(conf, wrong)
    assert np.all(np.diff(curve.probability) <= 0) and len(curve.confidence) < 200
    for c, rate in ((0.05, 0.7), (0.2, 0.4), (0.3, 0.2), (0.7, 0.0)):
        assert curve(c) == pytest.approx(rate, abs=0.1)


def _frames(n: int, gross_share: float, seed: int = 0):
    """Honest Gaussian frames (confidence ~0.7, covariance = spread) and wrong matches (low confidence, small
    spread, truth uniform over a +-20 m / +-10 deg window)."""
    rng = np.random.default_rng(seed)
    spread = np.repeat(np.diag([0.5**2, 0.4**2, np.radians(1.0) ** 2])[None], n, 0)
    window = np.repeat(np.diag([400.0 / 3, 400.0 / 3, np.radians(10.0) ** 2 / 3])[None], n, 0)
    gt = np.column_stack([rng.uniform(0, 100, n), rng.uniform(0, 100, n), rng.uniform(-3, 3, n)])
    est = gt + rng.multivariate_normal(np.zeros(3), spread[0], n)
    conf = rng.uniform(0.5, 0.9, n)
    gross = rng.uniform(size=n) < gross_share
    est[gross] = gt[gross] + rng.uniform(-1, 1, (gross.sum(), 3)) * [20.0, 20.0, np.radians(10.0)]
    conf[gross] = rng.uniform(0.0, 0.1, gross.sum())
    return gt, est, spread, window, conf


def test_fit_covariance_leaves_honest_frames_alone_and_covers_wrong_matches():
    scale, curve = fit_covariance(*_frames(3000, 0.0))
    assert scale == pytest.approx(1.0, rel=0.1) and curve(0.0) == curve(1.0) == 0.0
    gt, est, spread, window, conf = _frames(3000, 0.15)
    before = nees(gt, est, spread)
    assert np.quantile(before, 0.95) > 50  # the wrong matches sit far outside their own spread
    scale, curve = fit_covariance(gt, est, spread, window, conf)
    assert scale == pytest.approx(1.0, rel=0.15)
    assert curve(0.05) > 0.9 and curve(0.6) == 0.0  # wrong matches come with a confidence below 0.1 here
    cov = np.array([honest_covariance(s, c, w, scale, curve) for s, c, w in zip(spread, conf, window)])
    after = nees(gt, est, cov)
    assert np.quantile(after, 0.95) < CHI2_3DOF_95 and np.mean(after) < 3.5
    assert np.median(after[conf > 0.5]) == pytest.approx(2.366, rel=0.15)  # the right ones: still honest
    # the wrong ones: their covariance is the second moment of their errors (NEES 3 on average)
    assert np.mean(nees(gt[conf < 0.1], est[conf < 0.1], cov[conf < 0.1])) == pytest.approx(3.0, rel=0.2)


def test_published_nees_counts_only_frames_the_node_would_publish():
    gt, est, spread, _, conf = _frames(400, 0.2, seed=3)
    out = published_nees(gt, est, spread, conf)
    sel = conf >= PUBLISH_CONFIDENCE
    assert out["n"] == sel.sum() and out["min_confidence"] == PUBLISH_CONFIDENCE
    assert out["nees_xy_median"] == pytest.approx(np.median(nees_xy(gt[sel], est[sel], spread[sel])))
    none = published_nees(gt, est, spread, np.zeros(len(conf)))
    assert none["n"] == 0 and none["nees_xy_median"] is None
    # a filtered drive: the engine's own decision, whatever the confidence
    decided = np.arange(len(conf)) % 3 == 0
    filtered = published_nees(gt, est, spread, conf, published=decided)
    assert filtered["n"] == decided.sum() and filtered["min_confidence"] is None
    assert filtered["nees_xy_median"] == pytest.approx(
        np.median(nees_xy(gt[decided], est[decided], spread[decided]))
    )


def test_publish_threshold_is_the_nodes_default():
    pytest.importorskip(
        "rcl_interfaces", reason="the node's parameter table needs the ROS 2 message packages"
    )
    from translocnet_ros.ros.parameters import PARAMETERS

    assert PARAMETERS["confidence_publish"].default == PUBLISH_CONFIDENCE


def test_localizer_applies_the_calibration_in_its_metadata(tmp_path, small_town):
    """Round trip: what `translocnet calibrate --write` stores is what the localizer (node, eval) applies."""
    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.geo.crs import MapFrame
    from translocnet_ros.imagery.geotiff import GeoTiffSource
    from translocnet_ros.localization.translocnet import DEFAULT_MODEL, TransLocNetLocalizer
    from translocnet_ros.localization.types import SearchWindow

    model = tmp_path / "translocnet.pt"
    shutil.copy(DEFAULT_MODEL, model)
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    curve = WrongMatchCurve((0.0, 0.5), (0.4, 0.1))
    meta["calibration"] = {"temperature": 1.3, "covariance_scale": 0.7, "wrong_match": curve.to_dict()}
    model.with_suffix(".json").write_text(json.dumps(meta))
    loc = TransLocNetLocalizer(model, device="cpu")
    assert (loc.temperature, loc.covariance_scale, loc.wrong_match) == (1.3, 0.7, curve)
    src = GeoTiffSource(small_town / "ortho.tif")
    drive = KittiDrive(small_town / "drive_00")
    prior = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0].offset(4.0, -3.0, 0.05)
    window = SearchWindow(20.0, np.radians(10.0))
    scan = drive.scan_base(0)
    est = loc.localize(scan, src, prior, window)
    parts = decode_parts(loc.score_volume(scan, src, prior, window), 1.3)
    q = curve(parts.confidence)
    assert q >= 0.1  # the curve never falls below 0.1: the window term is in play
    np.testing.assert_allclose(est.covariance, (1 - q) * 0.7 * parts.spread + q * parts.window, rtol=1e-6)
    meta["calibration"]["filter_covariance_scale"] = 4.0
    model.with_suffix(".json").write_text(json.dumps(meta))
    one = TransLocNetLocalizer(model, device="cpu")  # calibrated with one filter factor for both
    assert one.filter_covariance_scale == 4.0 and one.filter_yaw_scale == 4.0
    meta["calibration"]["filter_yaw_scale"] = 0.25
    model.with_suffix(".json").write_text(json.dumps(meta))
    two = TransLocNetLocalizer(model, device="cpu")
    assert two.filter_covariance_scale == 4.0 and two.filter_yaw_scale == 0.25
    meta["calibration"] = {"temperature": 1.3, "covariance_scale": 0.7}  # calibrated before curve and filter
    model.with_suffix(".json").write_text(json.dumps(meta))
    old = TransLocNetLocalizer(model, device="cpu")
    assert old.wrong_match(0.0) == 0.0 and old.filter_covariance_scale == 1.0


def test_filter_posterior_covariance_takes_the_calibrated_factor():
    from translocnet_ros.localization.filter import BayesFilter, FilterConfig
    from translocnet_ros.localization.fusion import FilteredLocalizer
    from translocnet_ros.localization.types import SearchWindow

    vol = (
        _wrong_cluster_volume()
    )  # a weak scan: readability off, the factors act on the posterior's own spread
    ests = []
    for scale in (1.0, 3.0):
        f = BayesFilter(FilterConfig(particles=500, seed=4, readable_confidence=0.0), covariance_scale=scale)
        f.seed(PRIOR, SearchWindow(20.0, np.radians(10.0)), "test")
        ests.append(f.update(vol))
    assert ests[0].pose == ests[1].pose and ests[0].confidence == ests[1].confidence
    np.testing.assert_allclose(ests[1].covariance, 3.0 * ests[0].covariance)
    # separate position and yaw factors: position variances x 4, yaw variance x 1/4, cross terms x 1 and x 4
    f = BayesFilter(
        FilterConfig(particles=500, seed=4, readable_confidence=0.0), covariance_scale=4.0, yaw_scale=0.25
    )
    f.seed(PRIOR, SearchWindow(20.0, np.radians(10.0)), "test")
    c0, c = ests[0].covariance, f.update(vol).covariance
    np.testing.assert_allclose(c[:2, :2], 4.0 * c0[:2, :2])
    np.testing.assert_allclose(c[2, 2], 0.25 * c0[2, 2])
    np.testing.assert_allclose(c[:2, 2], c0[:2, 2])

    class Method:  # a calibrated volume method, as TransLocNetLocalizer reads it from its metadata
        name, device, temperature, filter_covariance_scale = "stub", "cpu", 1.0, 2.5

        def score_volume(self, scan, imagery, prior, window):
            return vol

    assert FilteredLocalizer(Method()).filter.covariance_scale == 2.5
    assert FilteredLocalizer(Method()).filter.yaw_scale == 2.5  # one factor: both axes
    Method.filter_yaw_scale = 0.5
    assert FilteredLocalizer(Method()).filter.yaw_scale == 0.5
    assert FilteredLocalizer(None).filter.covariance_scale == 1.0


def test_eval_summary_reports_the_nees_of_published_frames():
    from translocnet_ros.evaluation.protocol import FrameResult, score_results

    gt, est, spread, _, conf = _frames(50, 0.0, seed=5)
    conf[:10] = 0.05  # not published
    results = [
        FrameResult(k, Pose2D(*g), Pose2D(*e), c, float(p), 1.0)
        for k, (g, e, c, p) in enumerate(zip(gt, est, spread, conf))
    ]

    class Method:
        name, device = "stub", "cpu"

    summary = score_results(gt, results, Method(), "known")
    sel = conf >= 0.2
    assert summary["published"]["n"] == 40
    expected = np.median(nees_xy(gt[sel], est[sel], spread[sel]))
    assert summary["published"]["nees_xy_median"] == pytest.approx(expected)
    assert summary["calibration"]["nees_xy_median"] == pytest.approx(np.median(nees_xy(gt, est, spread)))


def _peak(i: float, j: float, k: float = 10.0, width: float = 1.0) -> np.ndarray:
    kk, ii, jj = np.meshgrid(np.arange(21), np.arange(41), np.arange(41), indexing="ij")
    return -0.5 * (((ii - i) ** 2 + (jj - j) ** 2) / width**2 + (kk - k) ** 2 / 1.5**2)


def test_views_that_disagree_lower_the_confidence_not_the_mode():
    """Test-time views are averaged in logit space (a product: sharp, and the mode the node publishes), but
    the confidence is the mass their mixture puts near that mode. Views that agree give the single view's
    confidence; views whose peaks lie metres apart still average to one sharp peak, yet their confidence
    drops, so such a frame is not published."""
    one = _peak(20.0, 20.0)
    alone = decode_parts(ScoreVolume(one, PRIOR, YAWS, 1.0, 20.0))
    same = np.stack([one] * 8)
    agree = decode_parts(ScoreVolume(same.mean(0), PRIOR, YAWS, 1.0, 20.0, view_logits=same))
    assert agree.confidence == pytest.approx(alone.confidence, rel=1e-9)
    # eight views scattered 3 m around the same centre, each confident about its own peak
    angles = np.arange(8) * np.pi / 4
    scattered = np.stack([_peak(20.0 + 3 * np.sin(a), 20.0 + 3 * np.cos(a), width=0.7) for a in angles])
    product = ScoreVolume(scattered.mean(0), PRIOR, YAWS, 1.0, 20.0)
    mixture = ScoreVolume(scattered.mean(0), PRIOR, YAWS, 1.0, 20.0, view_logits=scattered)
    peaked, honest = decode_parts(product), decode_parts(mixture)
    assert (
        (honest.pose.x, honest.pose.y) == (peaked.pose.x, peaked.pose.y) == pytest.approx((PRIOR.x, PRIOR.y))
    )
    assert peaked.confidence > 0.5 > 0.05 > honest.confidence
