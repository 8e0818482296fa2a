"""`translocnet adapt`: a new model file adapted on an area's orthophoto and unlabeled scans, no pose read."""

import json
import shutil

import numpy as np
import torch
from conftest import HELSINKI

from translocnet_ros.cli import main
from translocnet_ros.dataset.bag import BagDrive
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.dataset.unlabeled import unlabeled_scans
from translocnet_ros.localization.translocnet import DEFAULT_MODEL, TransLocNetLocalizer, load_model


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
