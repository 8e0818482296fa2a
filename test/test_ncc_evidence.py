"""NCC's evidence added to TransLocNet's volume (localization/ncc_evidence.py): same yaws, same cells."""

import json
import shutil

import numpy as np
import pytest

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.ncc import NccLocalizer
from translocnet_ros.localization.ncc_evidence import pool_onto
from translocnet_ros.localization.translocnet import DEFAULT_MODEL, TransLocNetLocalizer
from translocnet_ros.localization.types import SearchWindow


def test_pool_onto_keeps_each_peak_in_the_cell_that_holds_it():
    fine = np.full((2, 81, 81), -5.0)  # 0.5 m cells, centre 40
    fine[0, 40 - 6, 40 + 9] = 3.0  # 4.5 m east, 3 m north: in the coarse cell 4-5 m east, 3 m north
    fine[1, 40 + 1, 40 - 1] = 2.0  # 0.5 m west and south: on the border of the centre cell
    coarse = pool_onto(fine, 0.5, 40.0, (2, 45, 45), 1.0, 22.0)  # 1 m cells, 2 cells wider than the source
    assert coarse[0, 22 - 3, 22 + 4] == 3.0 or coarse[0, 22 - 3, 22 + 5] == 3.0
    assert np.unravel_index(coarse[0].argmax(), coarse[0].shape) in {(19, 26), (19, 27)}
    assert coarse[1, 22, 22] == 2.0
    assert coarse[0, 0, 0] == -5.0 and coarse[1, -1, -1] == -5.0  # beyond the source: its lowest value
    same = pool_onto(fine, 0.5, 40.0, fine.shape, 0.5, 40.0)
    np.testing.assert_array_equal(same, fine)


@pytest.fixture
def frame(small_town):
    src = GeoTiffSource(small_town / "ortho.tif")
    drive = KittiDrive(small_town / "drive_00")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[6]
    return drive.scan_base(6), src, gt, gt.offset(4.0, -5.0, np.radians(3.0))


def test_ncc_scores_exactly_the_yaws_it_is_given(frame):
    scan, src, _, prior = frame
    yaws = np.radians([-7.5, -2.5, 0.0, 5.0])
    vol = NccLocalizer().score_volume(scan, src, prior, SearchWindow(10.0, np.pi), yaws)
    np.testing.assert_array_equal(vol.yaw_offsets, yaws)
    assert vol.logits.shape[0] == 4


def test_ncc_evidence_is_added_on_the_models_grid(frame):
    """The fused volume is the model's plus weight x NCC's log-likelihood on the model's cells and yaws; with a
    dominant weight the estimate is NCC's own (a term turned or shifted against the model's grid would not be)."""
    scan, src, gt, prior = frame
    window = SearchWindow(12.0, np.radians(6.0))
    plain = TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=1, ncc_weight=0.0)
    fused = TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=1, ncc_weight=1.5)
    assert plain.ncc is None and fused.ncc.weight == 1.5
    v0 = plain.score_volume(scan, src, prior, window)
    v1 = fused.score_volume(scan, src, prior, window)
    term = fused.ncc.logits(scan, src, prior, window, v0.yaw_offsets, v0.logits.shape, v0.m_per_px)
    np.testing.assert_allclose(v1.logits, v0.logits + term, atol=1e-4)
    assert np.all(term <= 0)  # weight x a log-probability
    two = TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=2, ncc_weight=1.5)
    v2 = two.score_volume(scan, src, prior, window)  # the confidence's views are the model's own readings
    np.testing.assert_allclose(v2.logits, v2.view_logits.mean(0) + term, atol=1e-4)
    ncc = NccLocalizer().localize(scan, src, prior, window)
    loud = TransLocNetLocalizer(DEFAULT_MODEL, device="cpu", views=1, ncc_weight=1e4)
    est = loud.localize(scan, src, prior, window)
    assert np.hypot(est.pose.x - ncc.pose.x, est.pose.y - ncc.pose.y) < 1.0
    assert abs(np.degrees(est.pose.yaw - ncc.pose.yaw)) < 1.5
    est = fused.localize(scan, src, prior, window)
    assert np.hypot(est.pose.x - gt.x, est.pose.y - gt.y) < 1.5


def test_ncc_weight_comes_from_the_models_metadata(tmp_path):
    model = tmp_path / "translocnet.pt"
    shutil.copy(DEFAULT_MODEL, model)
    meta = json.loads(DEFAULT_MODEL.with_suffix(".json").read_text())
    meta["inference"] = {"views": 1, "ncc_weight": 2.5}
    model.with_suffix(".json").write_text(json.dumps(meta))
    assert TransLocNetLocalizer(model, device="cpu").ncc.weight == 2.5
    assert TransLocNetLocalizer(model, device="cpu", ncc_weight=0.0).ncc is None
    del meta["inference"]["ncc_weight"]  # calibrated before the NCC evidence: none
    model.with_suffix(".json").write_text(json.dumps(meta))
    assert TransLocNetLocalizer(model, device="cpu").ncc is None
    with pytest.raises(ValueError, match="ncc_weight"):
        TransLocNetLocalizer(model, device="cpu", ncc_weight=-1.0)
