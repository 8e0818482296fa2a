"""The evaluation protocol: priors, what the method is given, outputs, and the NCC baseline on a real town."""

import csv
import json

import numpy as np
import pytest

from translocnet_ros.cli import main
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.protocol import CSV_HEADER, PROTOCOLS, draw_priors, run_protocol
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.decode import decode_volume
from translocnet_ros.localization.types import Estimate, LocalizationError, ScoreVolume


def test_priors_are_seeded_and_bounded():
    gt = [Pose2D(float(i), 0.0, 0.0) for i in range(500)]
    a, b = draw_priors(gt, "known", seed=3), draw_priors(gt, "known", seed=3)
    assert a == b and a != draw_priors(gt, "known", seed=4)
    off = np.array([[p.x - g.x, p.y - g.y, p.yaw - g.yaw] for p, g in zip(a, gt)])
    assert np.abs(off[:, :2]).max() <= 20.0 and np.abs(off[:, :2]).max() > 19.0
    assert np.abs(off[:, 2]).max() <= np.radians(10.0) and np.abs(off[:, 2]).max() > np.radians(9.5)
    u = draw_priors(gt, "unknown", seed=3)
    assert max(abs(p.yaw) for p in u) > np.radians(170)
    assert PROTOCOLS["unknown"].yaw_range_rad == pytest.approx(np.pi)


class Recorder:
    """Checks that the method gets the scan, imagery and prior only; fails on even frames."""

    name, device = "recorder", "cpu"

    def __init__(self):
        self.calls = []

    def localize(self, scan, imagery, prior, window):
        assert scan.dtype == np.float32 and scan.shape[1] == 4
        assert isinstance(prior, Pose2D) and window == PROTOCOLS["known"]
        self.calls.append(prior)
        if len(self.calls) % 2:
            raise LocalizationError("no luck")
        return Estimate(prior.offset(1.0, 0.0, 0.0), np.eye(3), 0.5)


def test_run_protocol_uses_priors_and_scores_failures_at_the_prior(small_town):
    drive = KittiDrive(small_town / "drive_00")
    src = GeoTiffSource(small_town / "ortho.tif")
    rec = Recorder()
    gt, res = run_protocol(rec, drive, src, src.crs, "known", seed=0, every=2, max_frames=4, progress=False)
    assert [r.frame for r in res] == [0, 2, 4, 6] and gt.shape == (4, 3)
    assert [r.prior for r in res] == rec.calls
    full = draw_priors(drive.ground_truth(MapFrame.from_any(src.crs)).poses, "known", 0)
    assert res[1].prior == full[2]  # subsampling keeps each frame's prior
    assert res[0].est == res[0].prior and res[0].confidence == 0.0 and res[0].error == "no luck"
    assert res[1].est.x == pytest.approx(res[1].prior.x + 1.0)


def test_decode_recovers_a_gaussian_peak():
    res, c = 0.5, 40.0
    ii, jj = np.meshgrid(np.arange(81), np.arange(81), indexing="ij")
    yaws = np.radians(np.arange(-10, 11, 1.0))
    x_true, y_true, yaw_true = 3.3, -7.1, np.radians(2.4)  # offsets from the prior
    sx, syaw = 0.8, np.radians(1.5)
    dx = (jj - c) * res - x_true
    dy = -(ii - c) * res - y_true
    logits = -0.5 * ((dx**2 + dy**2) / sx**2)[None] - 0.5 * ((yaws - yaw_true) ** 2 / syaw**2)[:, None, None]
    prior = Pose2D(1000.0, 2000.0, 0.5)
    est = decode_volume(ScoreVolume(logits, prior, yaws, res, c))
    assert est.pose.x == pytest.approx(1000.0 + x_true, abs=0.03)
    assert est.pose.y == pytest.approx(2000.0 + y_true, abs=0.03)
    assert est.pose.yaw == pytest.approx(0.5 + yaw_true, abs=np.radians(0.1))
    sd = np.sqrt(np.diag(est.covariance))
    assert sd[0] == pytest.approx(sx, rel=0.1) and sd[1] == pytest.approx(sx, rel=0.1)
    assert sd[2] == pytest.approx(syaw, rel=0.15)
    assert 0.2 < est.confidence < 0.8


def test_eval_cli_with_ncc_on_a_synthetic_town(small_town, tmp_path):
    out = tmp_path / "r.json"
    rc = main(
        [
            "eval",
            "--drive",
            str(small_town / "drive_00"),
            "--ortho",
            str(small_town / "ortho.tif"),
            "--protocol",
            "known",
            "--method",
            "ncc",
            "--out",
            str(out),
            "--every",
            "2",
            "--quiet",
        ]
    )
    assert rc == 0
    s = json.loads(out.read_text())
    assert s["method"] == "ncc" and s["protocol"] == "known" and s["n"] == 6 and s["device"] == "cpu"
    # the baseline really localizes: far better than the +-20 m prior in a feature-rich synthetic downtown
    assert s["position_error_m"]["median"] < 2.0
    assert s["yaw_recall"]["5deg"] >= 0.8
    with open(out.with_suffix(".frames.csv")) as f:
        rows = list(csv.reader(f))
    assert rows[0] == CSV_HEADER and len(rows) == 7
    assert [int(r[0]) for r in rows[1:]] == [0, 2, 4, 6, 8, 10]
    assert out.with_suffix(".png").stat().st_size > 10_000


def test_decode_refines_a_correlated_peak_jointly():
    """Along a road, position and yaw errors correlate: the sub-cell refinement must fit them jointly (one
    parabola per axis through the best cell is biased by the correlation)."""
    yaws = np.radians(np.arange(-10, 11, 1.0))
    jj, ii = np.meshgrid(np.arange(41.0), np.arange(41.0), indexing="xy")
    true = np.array([2.37, -3.61, np.radians(1.4)])  # x, y [m], yaw [rad] from the prior at cell 20
    sd = np.array([0.9, 0.5, np.radians(1.5)])
    corr = np.array([[1.0, 0.8, 0.6], [0.8, 1.0, 0.5], [0.6, 0.5, 1.0]])
    info = np.linalg.inv(corr * np.outer(sd, sd))
    e = np.stack(
        [
            np.broadcast_to((jj - 20.0)[None] - true[0], (21, 41, 41)),
            np.broadcast_to(-(ii - 20.0)[None] - true[1], (21, 41, 41)),
            np.broadcast_to(yaws[:, None, None] - true[2], (21, 41, 41)),
        ],
        -1,
    )
    logits = -0.5 * np.einsum("...i,ij,...j->...", e, info, e)
    est = decode_volume(ScoreVolume(logits, Pose2D(0.0, 0.0, 0.0), yaws, 1.0, 20.0))
    assert est.pose.x == pytest.approx(true[0], abs=0.02)
    assert est.pose.y == pytest.approx(true[1], abs=0.02)
    assert est.pose.yaw == pytest.approx(true[2], abs=np.radians(0.02))
