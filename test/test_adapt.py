"""`translocnet adapt`: a new model file adapted on an area's orthophoto and unlabeled scans, no pose read."""

import json
import shutil

import numpy as np
import torch
from affine import Affine
from conftest import HELSINKI

from translocnet_ros.cli import main
from translocnet_ros.dataset.bag import BagDrive
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.dataset.unlabeled import unlabeled_scans
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.patch import GeoPatch, equalize
from translocnet_ros.localization.translocnet import DEFAULT_MODEL, TransLocNetLocalizer, load_model
from translocnet_ros.localization.types import SearchWindow


def test_unlabeled_scans_need_no_oxts(small_town, tmp_path):
    drive_dir = sorted(small_town.glob("drive_*"))[0]
    labelled = KittiDrive(drive_dir)
    bare = tmp_path / "scans"
    shutil.copytree(drive_dir / "velodyne_points" / "data", bare)
    shutil.copy(labelled.calib_path, bare / "calib_imu_to_velo.txt")
    scans = unlabeled_scans(bare)
    assert len(scans) == len(labelled.frames)
    np.testing.assert_allclose(scans[0], labelled.scan_base(labelled.frames[0]), atol=1e-5)


def test_unlabeled_bag_scans_match_the_drive_reader():
    bag = HELSINKI / "111140337709579" / "kitti.bag"
    drive = BagDrive(bag)
    scans = unlabeled_scans(bag, base_frame=drive._base)
    assert len(scans) == len(drive.frames) == 10
    np.testing.assert_allclose(scans[3], drive.scan_base(3), atol=1e-5)


def test_adapt_writes_a_model_that_records_its_area(small_town, tmp_path):
    drive_dir = sorted(small_town.glob("drive_*"))[0]
    base, _, base_meta = load_model(DEFAULT_MODEL, torch.device("cpu"))
    old_sd = base.state_dict()
    stats = [k for k in old_sd if k.endswith("running_mean")]
    conv = "aerial_encoder.stem.0.0.weight"
    for extra, bn_changed in (([], False), (["--batchnorm", "--scans", str(drive_dir)], True)):
        out = tmp_path / f"adapted{len(extra)}.pt"
        argv = ["adapt", "--ortho", str(small_town / "ortho.tif"), "--patches", "6", "--out", str(out)]
        assert main([*argv, *extra]) == 0
        meta = json.loads(out.with_suffix(".json").read_text())
        assert meta["adapted"]["ortho"] == "ortho.tif"
        assert meta["adapted"]["from_model"]["sha256"] == base_meta["sha256"]
        new_sd = load_model(out, torch.device("cpu"))[0].state_dict()
        assert torch.equal(old_sd[conv], new_sd[conv])  # weights untouched
        assert not torch.equal(old_sd["rgb_mean"], new_sd["rgb_mean"])  # the area's input statistics
        assert all(torch.equal(old_sd[k], new_sd[k]) != bn_changed for k in stats)
        if bn_changed:
            assert meta["adapted"]["scans"].startswith(f"{drive_dir.name} (12 scans")
    # the node's and eval's localizer take it like any model
    assert TransLocNetLocalizer(out).meta["adapted"]["patches"] == 6


def test_equalize_flattens_each_channel_over_valid_pixels_only():
    rng = np.random.default_rng(0)
    img = np.stack(
        [rng.integers(100, 140, (60, 60)), rng.integers(20, 40, (60, 60)), rng.integers(200, 210, (60, 60))],
        -1,
    )
    img = img.astype(np.uint8)
    valid = np.ones((60, 60), bool)
    valid[:, :15] = False
    img[~valid] = 0
    out = equalize(GeoPatch(img, valid, Affine.identity(), None)).image
    assert (out[~valid] == 0).all()  # no-data stays no-data and does not skew the histogram
    for c in range(3):
        v = out[..., c][valid]
        assert v.min() == 0 and v.max() == 255  # each channel stretched to the full range
        assert abs(np.median(v.astype(float)) - 128) < 20  # and roughly uniform
        order = np.argsort(img[..., c][valid], kind="stable")
        assert (np.diff(v[order].astype(int)) >= 0).all()  # monotonic: the scene's structure is kept


def test_adapt_equalize_is_recorded_and_applied(small_town, tmp_path):
    out = tmp_path / "eq.pt"
    argv = [
        "adapt",
        "--ortho",
        str(small_town / "ortho.tif"),
        "--patches",
        "6",
        "--equalize",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["adapted"]["equalize"] is True and meta["adapted"]["method"].startswith(
        "histogram equalization"
    )
    # statistics measured on equalized patches: about uniform on 0..1
    mean = np.array(meta["adapted"]["input_statistics"]["after"]["rgb_mean"])
    assert np.all(np.abs(mean - 0.5) < 0.05)

    drive = KittiDrive(sorted(small_town.glob("drive_*"))[0])
    src = GeoTiffSource(small_town / "ortho.tif")
    prior = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    scan = drive.scan_base(drive.frames[0])
    loc = TransLocNetLocalizer(out)
    assert loc.equalize
    equalized = loc.score_volume(scan, src, prior, SearchWindow(4.0, 0.05)).logits
    loc.equalize = False
    plain = loc.score_volume(scan, src, prior, SearchWindow(4.0, 0.05)).logits
    assert (
        np.isfinite(equalized).all() and np.abs(equalized - plain).max() > 1e-3
    )  # the network saw other input
    assert not TransLocNetLocalizer(DEFAULT_MODEL).equalize  # the default model leaves the imagery as it is
