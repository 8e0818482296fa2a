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
    out = tmp_path / "adapted.pt"
    drive_dir = sorted(small_town.glob("drive_*"))[0]
    argv = ["adapt", "--ortho", str(small_town / "ortho.tif"), "--scans", str(drive_dir)]
    assert main([*argv, "--patches", "6", "--out", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["adapted"]["ortho"] == "ortho.tif"
    assert meta["adapted"]["scans"].startswith(f"{drive_dir.name} (12 scans")
    base, _, base_meta = load_model(DEFAULT_MODEL, torch.device("cpu"))
    new, _, _ = load_model(out, torch.device("cpu"))
    assert meta["adapted"]["from_model"]["sha256"] == base_meta["sha256"]
    old_sd, new_sd = base.state_dict(), new.state_dict()
    conv = "aerial_encoder.stem.0.0.weight"
    assert torch.equal(old_sd[conv], new_sd[conv])  # weights untouched
    stats = [k for k in old_sd if k.endswith("running_mean")]
    assert stats and all(not torch.equal(old_sd[k], new_sd[k]) for k in stats)  # statistics re-estimated
    # the node's and eval's localizer take it like any model
    loc = TransLocNetLocalizer(out)
    assert loc.meta["adapted"]["patches"] == 6
