"""Support checks: real scans and imagery pass, degenerate ones are refused with the reason, and an
untrustworthy estimate comes back with confidence 0 and no NaN anywhere."""

import numpy as np
import pytest
from conftest import HELSINKI

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.patch import GeoPatch, patch_transform
from translocnet_ros.localization.support import (
    SupportedLocalizer,
    SupportLimits,
    patch_problem,
    scan_problem,
)
from translocnet_ros.localization.types import Estimate, LocalizationError, SearchWindow

LIMITS = SupportLimits()


def test_real_scans_pass(small_town):
    from translocnet_ros.dataset.kitti import KittiDrive

    drives = [small_town / "drive_00", *sorted(HELSINKI.glob("*/drive"))]
    for d in drives:
        drive = KittiDrive(d)
        for k in range(0, len(drive.frames), 3):
            assert scan_problem(drive.scan_base(k), LIMITS) == "", (d, k)


def _with_z(xy, z):
    return np.column_stack([xy, z, np.zeros(len(xy))]).astype(np.float32)


def _disc(n, radius, rng):
    a, r = rng.uniform(-np.pi, np.pi, n), radius * np.sqrt(rng.uniform(0, 1, n))
    return np.column_stack([r * np.cos(a), r * np.sin(a)])


@pytest.mark.parametrize("copies", [600, 5000, 20000])
def test_copies_of_one_point_are_degenerate(copies):
    pts = np.tile(np.array([[12.3, -4.5, 1.0, 0.2]], np.float32), (copies, 1))
    assert "too few distinct points" in scan_problem(pts, LIMITS)
    assert "too few distinct points" in scan_problem(np.zeros((20000, 4), np.float32), LIMITS)


def test_near_field_only_scan_has_too_small_an_extent():
    rng = np.random.default_rng(1)
    xy = np.concatenate([_disc(9000, 3.0, rng), _disc(1000, 50.0, rng)])  # 90% within 3 m: a blinded sensor
    z = rng.uniform(-1.5, 3.0, len(xy))
    assert "extent" in scan_problem(_with_z(xy, z), LIMITS)


def test_flat_scan_has_no_height_structure():
    rng = np.random.default_rng(2)
    xy = _disc(20000, 40.0, rng)
    assert "no height structure" in scan_problem(_with_z(xy, rng.normal(0, 0.02, len(xy))), LIMITS)
    assert scan_problem(_with_z(xy, rng.uniform(-1.8, 6.0, len(xy))), LIMITS) == ""


def _patch(image, valid=None, reason=""):
    n = image.shape[0]
    valid = np.ones((n, n), bool) if valid is None else valid
    return GeoPatch(image, valid, patch_transform(0.0, 0.0, n, 0.5), "EPSG:3067", reason)


def test_imagery_patches():
    rng = np.random.default_rng(3)
    textured = rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)
    assert patch_problem(_patch(textured), LIMITS) == ""
    assert "blank" in patch_problem(_patch(np.full((80, 80, 3), 128, np.uint8)), LIMITS)
    none = np.zeros((80, 80), bool)
    failed = _patch(textured, none, "16 of 16 tiles missing at zoom 19 (HTTP 404: 16)")
    assert patch_problem(failed, LIMITS).startswith("imagery tiles failed: 16 of 16 tiles missing")
    assert "outside the imagery" in patch_problem(_patch(textured, none), LIMITS)


class FakeMethod:
    """A method returning a fixed estimate, so the checks around it can be exercised."""

    name, device = "fake", "cpu"

    def __init__(self, est):
        self.est = est

    def localize(self, scan, imagery, prior, window):
        imagery.patch(prior.x, prior.y, 100.0, 0.5)
        return self.est


class FakeImagery:
    def __init__(self, image):
        self.image = image

    def patch(self, cx, cy, size_m, m_per_px):
        return _patch(self.image)


def _real_like_scan():
    rng = np.random.default_rng(4)
    xy = _disc(20000, 40.0, rng)
    return _with_z(xy, rng.uniform(-1.8, 6.0, len(xy)))


@pytest.mark.parametrize(
    "est,reason",
    [
        (Estimate(Pose2D(1.0, 2.0, 0.1), np.full((3, 3), np.nan), np.nan), "non-finite"),
        (Estimate(Pose2D(1.0, 2.0, 0.1), np.eye(3), 0.9, np.full((10, 10), np.nan)), "non-finite likelihood"),
        (Estimate(Pose2D(np.nan, 2.0, 0.1), np.eye(3), 0.9), "non-finite"),
        (Estimate(Pose2D(1.0, 2.0, 0.1), -np.eye(3), 0.9), "not positive definite"),
        (Estimate(Pose2D(19.5, 2.0, 0.1), np.eye(3) * 0.01, 0.95), "edge"),
    ],
)
def test_untrustworthy_estimates_are_capped_and_finite(est, reason):
    rng = np.random.default_rng(5)
    imagery = FakeImagery(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    guarded = SupportedLocalizer(FakeMethod(est))
    out = guarded.localize(_real_like_scan(), imagery, Pose2D(0.0, 0.0, 0.0), SearchWindow(20.0, 0.2))
    assert reason in out.problem
    e = out.estimate
    assert e.confidence == 0.0
    assert np.isfinite([e.pose.x, e.pose.y, e.pose.yaw]).all() and np.isfinite(e.covariance).all()
    assert e.likelihood is None or np.isfinite(e.likelihood).all()


def test_a_good_estimate_passes_and_bad_input_never_reaches_the_method():
    rng = np.random.default_rng(6)
    good = Estimate(Pose2D(1.0, 2.0, 0.1), np.eye(3) * 0.05, 0.8, np.ones((10, 10)))
    textured = FakeImagery(rng.integers(0, 255, (200, 200, 3), dtype=np.uint8))
    guarded = SupportedLocalizer(FakeMethod(good))
    window = SearchWindow(20.0, 0.2)
    out = guarded.localize(_real_like_scan(), textured, Pose2D(0.0, 0.0, 0.0), window)
    assert out.problem == "" and out.estimate is good
    with pytest.raises(LocalizationError, match="degenerate scan"):
        guarded.localize(np.zeros((5000, 4), np.float32), textured, Pose2D(0.0, 0.0, 0.0), window)
    blank = FakeImagery(np.full((200, 200, 3), 90, np.uint8))
    with pytest.raises(LocalizationError, match="blank"):
        guarded.localize(_real_like_scan(), blank, Pose2D(0.0, 0.0, 0.0), window)
