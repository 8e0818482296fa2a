"""The KITTI-layout reader on a tiny hand-made drive, on the real Helsinki drives, and on bad folders."""

import csv

import numpy as np
import pytest
from conftest import HELSINKI

from translocnet_ros.dataset.kitti import DatasetError, KittiDrive, read_calib, read_timestamps, write_calib
from translocnet_ros.geo.crs import MapFrame

T_IMU_TO_VELO = np.array([[1, 0, 0, -0.8], [0, 1, 0, 0.3], [0, 0, 1, -0.8], [0, 0, 0, 1.0]])


def make_drive(root, n=3, calib_in_parent=True):
    """A KITTI raw-style drive: <root>/2011_09_26/2011_09_26_drive_0001_sync with calib in the date folder."""
    day = root / "2011_09_26"
    drive = day / "2011_09_26_drive_0001_sync"
    (drive / "velodyne_points" / "data").mkdir(parents=True)
    (drive / "oxts" / "data").mkdir(parents=True)
    write_calib((day if calib_in_parent else drive) / "calib_imu_to_velo.txt", T_IMU_TO_VELO)
    stamps = []
    for i in range(n):
        pts = np.array([[10.0 + i, 0.0, 0.0, 0.5], [0.0, 5.0, -1.0, 0.25]], dtype="<f4")
        pts.tofile(drive / "velodyne_points" / "data" / f"{i:010d}.bin")
        vals = [49.015003823272 + 1e-5 * i, 8.4342971002335, 116.43, 0.03, -0.01, 1.0 + 0.1 * i] + [0] * 24
        (drive / "oxts" / "data" / f"{i:010d}.txt").write_text(" ".join(map(str, vals)))
        stamps.append(f"2011-09-26 13:02:25.{100000000 * i + 64389445:09d}")
    for sub in ("velodyne_points", "oxts"):
        (drive / sub / "timestamps.txt").write_text("\n".join(stamps) + "\n")
    return drive


def test_reads_kitti_layout_with_calib_in_parent(tmp_path):
    drive = KittiDrive(make_drive(tmp_path))
    assert drive.frames == [0, 1, 2]
    assert drive.calib_path.parent.name == "2011_09_26"
    velo = drive.scan_velo(1)
    np.testing.assert_allclose(velo[0], [11.0, 0.0, 0.0, 0.5])
    base = drive.scan_base(1)  # p_base = inv(T) p_velo: the velo sits 0.8 m above and 0.8 m ahead of the IMU
    np.testing.assert_allclose(base[0], [11.8, -0.3, 0.8, 0.5], atol=1e-6)
    ts = drive.timestamps
    assert ts[1] - ts[0] == pytest.approx(0.1, abs=1e-6)


def test_ground_truth_from_oxts(tmp_path):
    drive = KittiDrive(make_drive(tmp_path))
    frame = MapFrame.from_any("EPSG:32632")
    gt = drive.ground_truth(frame)
    x0, y0 = frame.to_map(49.015003823272, 8.4342971002335)
    assert (gt.poses[0].x, gt.poses[0].y) == pytest.approx((x0, y0), abs=1e-6)
    # heading: true 1.0 rad plus the meridian convergence (lon 8.43 E is west of UTM 32N's 9 E meridian)
    conv = frame.convergence(49.015003823272, 8.4342971002335)
    assert conv < 0
    assert gt.poses[0].yaw == pytest.approx(1.0 + conv, abs=1e-9)
    assert gt.poses[1].y - gt.poses[0].y == pytest.approx(1.11, abs=0.01)  # 1e-5 deg of latitude


def test_calib_and_timestamp_roundtrip(tmp_path):
    write_calib(tmp_path / "c.txt", T_IMU_TO_VELO)
    np.testing.assert_allclose(read_calib(tmp_path / "c.txt"), T_IMU_TO_VELO)
    (tmp_path / "t.txt").write_text("1970-01-01 00:00:01.500000000\n")
    assert read_timestamps(tmp_path / "t.txt")[0] == pytest.approx(1.5)


def test_bad_folders_give_clear_errors(tmp_path):
    with pytest.raises(DatasetError, match="velodyne_points"):
        KittiDrive(tmp_path)
    drive = make_drive(tmp_path / "x", calib_in_parent=False)
    (drive / "calib_imu_to_velo.txt").unlink()
    with pytest.raises(DatasetError, match="calib_imu_to_velo"):
        _ = KittiDrive(drive).t_imu_to_velo
    (drive / "velodyne_points" / "data" / "0000000000.bin").write_bytes(b"\0" * 6)
    with pytest.raises(DatasetError, match="multiple of 4"):
        KittiDrive(drive).scan_velo(0)


@pytest.mark.parametrize("site", ["111140337709579", "146743574025925", "4368449460079179"])
def test_helsinki_oxts_reproduces_grid_ground_truth(site):
    root = HELSINKI / site
    if not root.exists():
        pytest.skip("../shared/data/helsinki-dev is not beside this checkout")
    import rasterio

    crs = rasterio.open(root / "ortho.tif").crs
    gt = KittiDrive(root / "drive").ground_truth(MapFrame.from_any(crs))
    with open(root / "gt_grid.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(gt.poses) == 10
    for row, pose in zip(rows, gt.poses):
        assert pose.x == pytest.approx(float(row["E"]), abs=1e-3)
        assert pose.y == pytest.approx(float(row["N"]), abs=1e-3)
        assert pose.yaw == pytest.approx(float(row["grid_yaw_rad"]), abs=1e-6)


def test_bag_drive_matches_the_oxts_ground_truth_and_scans():
    bag = HELSINKI / "111140337709579" / "kitti.bag"
    if not bag.exists():
        pytest.skip("../shared/data/helsinki-dev is not beside this checkout")
    import rasterio

    from translocnet_ros.dataset.bag import BagDrive

    crs = rasterio.open(bag.parent / "ortho.tif").crs
    bd = BagDrive(bag)
    kd = KittiDrive(bag.parent / "drive")
    gb = bd.ground_truth(MapFrame.from_any(crs)).xy_yaw()
    gk = kd.ground_truth(MapFrame.from_any(crs)).xy_yaw()
    np.testing.assert_allclose(gb[:, :2], gk[:, :2], atol=1e-3)
    np.testing.assert_allclose(gb[:, 2], gk[:, 2], atol=1e-5)
    a, b = bd.scan_base(3), kd.scan_base(3)
    assert a.shape == b.shape
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=2e-3)  # bag extrinsics chain = calib file


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_ros2_bag_reads_like_the_ros1_bag(tmp_path, storage):
    bag = HELSINKI / "111140337709579" / "kitti.bag"
    if not bag.exists():
        pytest.skip("../shared/data/helsinki-dev is not beside this checkout")
    import rasterio
    from rosbags.convert import convert

    from translocnet_ros.dataset.bag import BagDrive

    dst = tmp_path / f"kitti_{storage}"
    convert([bag], dst, storage, 8, None, "file", None, None, [], [], [], [])
    crs = MapFrame.from_any(rasterio.open(bag.parent / "ortho.tif").crs)
    ros1, ros2 = BagDrive(bag), BagDrive(dst)
    np.testing.assert_allclose(ros2.ground_truth(crs).xy_yaw(), ros1.ground_truth(crs).xy_yaw())
    np.testing.assert_array_equal(ros2.scan_base(5), ros1.scan_base(5))
