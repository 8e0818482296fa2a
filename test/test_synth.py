"""Procedural towns: determinism, LiDAR sanity, occlusion, and OXTS/calib written as the reader expects."""

import csv
import hashlib
import json

import numpy as np
import pytest
import rasterio

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.synth.layout import Box2, Layout
from translocnet_ros.synth.lidar import LidarModel, LidarSimulator
from translocnet_ros.synth.meshing import MeshBuilder, add_box, terrain_mesh
from translocnet_ros.synth.styles import GRASS, WALL
from translocnet_ros.synth.town import TownSpec, generate_town


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_town_other_seed_other_town(tmp_path):
    spec = TownSpec(seed=11, style="suburban", size_m=250.0, n_frames=3, n_moving_cars=2)
    a = generate_town(spec, tmp_path / "a", progress=False)
    b = generate_town(spec, tmp_path / "b", progress=False)
    c = generate_town(TownSpec(**{**spec.__dict__, "seed": 12}), tmp_path / "c", progress=False)
    assert digest(a) == digest(b)
    assert digest(a) != digest(c)


def test_town_files_and_ground_truth(small_town):
    meta = json.loads((small_town / "town.json").read_text())
    assert meta["counts"]["buildings"] > 0 and meta["counts"]["trees"] > 0
    with rasterio.open(small_town / "ortho.tif") as ds:
        assert ds.crs.is_projected and ds.crs.to_string() == meta["crs"]
        assert ds.res == pytest.approx((0.2, 0.2))
        assert ds.width == 1500
    drive = KittiDrive(small_town / "drive_00")
    assert drive.calib_path.parent == small_town  # calib in the parent folder, as in KITTI raw
    gt = drive.ground_truth(MapFrame.from_any(meta["crs"]))
    with open(small_town / "drive_00" / "gt_grid.csv") as f:
        rows = list(csv.DictReader(f))
    for row, pose in zip(rows, gt.poses):
        assert pose.x == pytest.approx(float(row["E"]), abs=2e-3)
        assert pose.y == pytest.approx(float(row["N"]), abs=2e-3)
        assert pose.yaw == pytest.approx(float(row["grid_yaw_rad"]), abs=1e-6)
    steps = np.linalg.norm(np.diff(gt.xy_yaw()[:, :2], axis=0), axis=1)
    assert np.all((steps > 0.3) & (steps < 1.5))  # 3-15 m/s at 10 Hz
    assert np.diff(drive.timestamps) == pytest.approx(0.1, abs=1e-6)


def test_scan_looks_like_an_hdl64(small_town):
    drive = KittiDrive(small_town / "drive_00")
    pts = drive.scan_velo(0)
    assert 50_000 < len(pts) < 135_552
    rng = np.linalg.norm(pts[:, :3], axis=1)
    assert rng.max() <= 120.0 + 0.1 and rng.min() >= 2.7 - 0.1
    elev = np.degrees(np.arcsin(pts[:, 2] / rng))
    assert elev.min() > -24.9 - 0.5 and elev.max() < 2.0 + 0.5
    beams = LidarModel().elevations_deg()
    nearest = np.abs(elev[:, None] - beams[None, :]).argmin(1)
    assert len(np.unique(nearest)) == 64  # every one of the 64 beams returns something
    assert pts[:, 3].min() >= 0.0 and pts[:, 3].max() <= 1.0
    ground = pts[:, 2] < -1.5  # LiDAR 1.73 m above ground
    assert ground.mean() > 0.3


def test_no_returns_behind_a_wall():
    """A 10 m high wall 15 m east of the sensor hides the ground and a pole behind it."""
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    mb = MeshBuilder()
    v, f = terrain_mesh(lay, step=5.0, margin=50.0)
    mb.add(v, f, 255)
    add_box(mb, Box2(65.0, 50.0, 0.0, 0.5, 30.0, 10.0), 0.0, WALL)
    add_box(mb, Box2(75.0, 50.0, 0.0, 0.3, 0.3, 5.0), 0.0, WALL)
    mesh, mats = mb.build()
    sim = LidarSimulator(mesh, mats, lay, LidarModel(dropout=0.0))
    pose = np.eye(4)
    pose[:3, 3] = [50.0, 50.0, 1.73]
    pts = sim.scan(pose, [], np.random.default_rng(0))
    east = np.abs(pts[:, 1]) < 10.0
    assert (pts[east, 0] < 15.3).all()  # nothing beyond the wall face in its angular shadow
    assert ((pts[east, 0] > 14.5) & (pts[east, 2] > -1.5)).sum() > 100  # the wall itself is seen
    west = np.abs(pts[:, 1]) < 10.0
    assert (pts[west & (pts[:, 0] < -15.5)]).shape[0] > 0  # open ground the other way
