"""Labelled drives ray-cast from a site given as geometry (`train --extra-cloud`, `generate --cloud`)."""

import csv

import numpy as np
import pytest
from affine import Affine

from translocnet_ros.cli import main as cli
from translocnet_ros.dataset.cloud import ColoredCloud
from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.evaluation.sequence import check_sequential
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.synth.cloud_scene import raycast_site, street_drive, street_poses
from translocnet_ros.synth.town import IMU_HEIGHT_M, write_geotiff

E0, N0, Z0 = 382000.0, 6672000.0, 20.0


def street_between_blocks(spacing=0.25):
    """60 x 60 m of ground at Z0 with a street along x: two 6 m blocks (walls and flat roofs) north of
    y = +6 m and south of y = -6 m (local metres around E0, N0)."""
    g = np.arange(-30, 30, spacing)
    gx, gy = np.meshgrid(g, g)
    block = np.abs(gy) >= 6.0
    ground = np.column_stack([gx[~block], gy[~block], np.zeros((~block).sum())])
    roof = np.column_stack([gx[block], gy[block], np.full(block.sum(), 6.0)])
    wx, wz = np.meshgrid(g, np.arange(0.0, 6.0, spacing))
    walls = [np.column_stack([wx.ravel(), np.full(wx.size, side), wz.ravel()]) for side in (-6.0, 6.0)]
    xyz = np.concatenate([ground, roof, *walls]) + np.array([E0, N0, Z0])
    rgb = np.full((len(xyz), 3), 90, np.uint8)
    return ColoredCloud(xyz, rgb)


def test_street_poses_stand_on_the_street_facing_along_it():
    poses = street_poses(street_between_blocks(), 200, np.random.default_rng(0))
    x, y = poses[:, 0] - E0, poses[:, 1] - N0
    assert np.all(np.abs(y) <= 6.0 - 2.0 + 0.5)  # on the street, 2 m clear of the walls (one cell slack)
    assert np.all(np.abs(x) <= 15.0 + 0.5)  # 15 m inside the cloud's extent
    np.testing.assert_allclose(poses[:, 2], Z0 + IMU_HEIGHT_M, atol=0.05)  # on the ground, never on a roof
    along = np.abs(np.cos(poses[:, 3]))  # yaw 0 or pi: along the street, both directions
    assert np.median(along) > 0.97 and np.mean(np.cos(poses[:, 3]) > 0) == pytest.approx(0.5, abs=0.15)


def test_street_poses_keep_a_wider_margin_when_asked():
    """A 60 m cloud with a 25 m margin leaves only its middle 10 m: every pose's 25 m surroundings are inside."""
    poses = street_poses(street_between_blocks(), 100, np.random.default_rng(1), margin_m=25.0)
    x = poses[:, 0] - E0
    assert np.all(np.abs(x) <= 5.0 + 0.5)
    assert np.ptp(x) > 6.0  # spread over what is left, not one cell
    with pytest.raises(ValueError, match="no open street-level ground"):
        street_poses(street_between_blocks(), 5, np.random.default_rng(1), margin_m=31.0)


def test_street_drive_runs_along_the_street_and_turns_round_at_its_end():
    """60 frames at 0.8 m on a 30 m open street: one continuous drive there and part of the way back."""
    cloud = street_between_blocks()
    poses = street_drive(cloud, 60, np.random.default_rng(3), step_m=0.8)
    x, y = poses[:, 0] - E0, poses[:, 1] - N0
    assert np.all(np.abs(y) <= 4.5) and np.all(np.abs(x) <= 15.5)  # on the open street, 2 m from the walls
    np.testing.assert_allclose(poses[:, 2], Z0 + IMU_HEIGHT_M, atol=0.05)
    steps = np.hypot(np.diff(x), np.diff(y))
    assert steps.max() <= 0.8 + 1e-6 and np.median(steps) == pytest.approx(0.8, abs=1e-3)
    assert np.ptp(x) > 25.0  # the length of the street, not a pocket of it
    motion = np.arctan2(np.diff(y), np.diff(x))
    facing = np.cos(poses[:-1, 3] - motion)
    assert np.mean(facing > 0.95) > 0.9  # it faces where it drives
    assert (np.cos(poses[:, 3]) > 0.9).any() and (np.cos(poses[:, 3]) < -0.9).any()  # both ways: it turned
    np.testing.assert_array_equal(poses, street_drive(cloud, 60, np.random.default_rng(3), step_m=0.8))


def test_street_poses_refuse_a_cloud_without_open_ground():
    g = np.arange(0, 40, 0.5)
    gx, gy = np.meshgrid(g, g)
    roof_only = np.column_stack([gx.ravel(), gy.ravel(), 3.0 * ((gx.ravel() // 2) % 2)]) + np.array(
        [E0, N0, Z0]
    )
    with pytest.raises(ValueError, match="no open street-level ground"):
        street_poses(
            ColoredCloud(roof_only, np.zeros((len(roof_only), 3), np.uint8)), 5, np.random.default_rng(0)
        )


def write_site(site):
    """street_between_blocks as a site given as geometry: cloud.ply and a flat grey ortho.tif."""
    site.mkdir()
    cloud = street_between_blocks(spacing=0.3)
    header = "\n".join(
        ["ply", "format binary_little_endian 1.0", f"element vertex {len(cloud)}"]
        + [f"property double {a}" for a in "xyz"]
        + [f"property uchar {c}" for c in ("red", "green", "blue")]
        + ["end_header"]
    )
    data = np.zeros(
        len(cloud), [("x", "<f8"), ("y", "<f8"), ("z", "<f8"), ("r", "u1"), ("g", "u1"), ("b", "u1")]
    )
    for k, a in enumerate("xyz"):
        data[a] = cloud.xyz[:, k]
    (site / "cloud.ply").write_bytes(header.encode() + b"\n" + data.tobytes())
    img = np.full((120, 120, 3), 100, np.uint8)
    write_geotiff(site / "ortho.tif", img, Affine(0.5, 0, E0 - 30, 0, -0.5, N0 + 30), "EPSG:3067")
    return site


def test_raycast_site_writes_a_labelled_drive_once(tmp_path):
    site = write_site(tmp_path / "site")
    out = raycast_site(site, tmp_path / "drive", n_frames=3, seed=4, progress=False)
    drive = KittiDrive(out)
    assert drive.frames == [0, 1, 2]
    with open(out / "gt_grid.csv") as f:
        rows = list(csv.DictReader(f))
    gt = drive.ground_truth(MapFrame.from_any("EPSG:3067"))
    for row, pose in zip(rows, gt.poses):  # the OXTS records encode exactly the written poses
        assert pose.x == pytest.approx(float(row["E"]), abs=1e-3)
        assert pose.y == pytest.approx(float(row["N"]), abs=1e-3)
        assert pose.yaw == pytest.approx(float(row["grid_yaw_rad"]), abs=1e-6)
    base = drive.scan_base(0)
    assert len(base) > 5000
    assert np.median(base[base[:, 2] < -0.5, 2]) == pytest.approx(-IMU_HEIGHT_M, abs=0.1)  # ground below
    walls = base[(base[:, 2] > 0.5) & (base[:, 2] < 3.0)]
    assert np.median(np.hypot(walls[:, 0], walls[:, 1])) > 2.0  # the walls stand around, none at the car

    with pytest.raises(ValueError, match="independent"):
        check_sequential(drive.timestamps, gt.xy_yaw()[:, :2], drive.frames)  # random poses are no drive

    first = (out / "velodyne_points" / "data" / "0000000000.bin").stat().st_mtime_ns
    raycast_site(site, tmp_path / "drive", n_frames=3, seed=4, progress=False)  # same recipe: reused
    assert (out / "velodyne_points" / "data" / "0000000000.bin").stat().st_mtime_ns == first


def test_generate_cloud_keeps_its_poses_inside_the_margin(tmp_path):
    """`generate --cloud --margin-m 25` on the 60 m site: every pose within its middle 10 m, none near the edge."""
    site = write_site(tmp_path / "site")
    out = tmp_path / "inner"
    assert (
        cli(["generate", "--cloud", str(site), "--frames", "6", "--margin-m", "25", "--out", str(out)]) == 0
    )
    xy = KittiDrive(out).ground_truth(MapFrame.from_any("EPSG:3067")).xy_yaw()[:, :2]
    assert np.all(np.abs(xy[:, 0] - E0) <= 5.5) and np.all(np.abs(xy[:, 1] - N0) <= 4.5)


def test_generate_cloud_continuous_writes_a_drive_the_sequence_protocol_takes(tmp_path, capsys):
    site = write_site(tmp_path / "site")
    out = tmp_path / "drive10hz"
    assert cli(["generate", "--cloud", str(site), "--frames", "5", "--continuous", "--out", str(out)]) == 0
    drive = KittiDrive(out)
    assert drive.frames == [0, 1, 2, 3, 4]
    xy = drive.ground_truth(MapFrame.from_any("EPSG:3067")).xy_yaw()[:, :2]
    check_sequential(drive.timestamps, xy, drive.frames)  # 10 Hz, 0.8 m apart
    np.testing.assert_allclose(np.hypot(*np.diff(xy, axis=0).T), 0.8, atol=0.01)
    (tmp_path / "bare").mkdir()
    with pytest.raises(SystemExit, match=r"no cloud\.ply or ortho\.tif there"):
        cli(["generate", "--cloud", str(tmp_path / "bare"), "--out", str(tmp_path / "x")])
