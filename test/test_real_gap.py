"""City point clouds: PLY reading, top-down (true-ortho) rendering, surfel scenes for the LiDAR simulator."""

import numpy as np
import pytest
from affine import Affine

from translocnet_ros.dataset.cloud import (
    ColoredCloud,
    PlyError,
    read_ply,
    render_top,
    shade_height,
    top_index,
)
from translocnet_ros.dataset.kitti import KittiDrive, write_calib
from translocnet_ros.synth.cloud_scene import (
    CloudScene,
    guess_materials,
    point_normals,
    raycast_drive,
    surfel_mesh,
)
from translocnet_ros.synth.styles import ASPHALT, GRASS, WALL


def write_ply(path, xyz, rgb=None, endian="<", extra=True, fmt=None):
    props = [("x", "f8", "double"), ("y", "f8", "double"), ("z", "f8", "double")]
    if rgb is not None:
        props += [("red", "u1", "uchar"), ("green", "u1", "uchar"), ("blue", "u1", "uchar")]
    if extra:
        props += [("nx", "f4", "float")]
    dtype = np.dtype([(n, endian + t) for n, t, _ in props])
    data = np.zeros(len(xyz), dtype)
    for k, n in enumerate("xyz"):
        data[n] = xyz[:, k]
    if rgb is not None:
        for k, n in enumerate(("red", "green", "blue")):
            data[n] = rgb[:, k]
    fmt = fmt or ("binary_little_endian" if endian == "<" else "binary_big_endian")
    header = [
        "ply",
        f"format {fmt} 1.0",
        "comment EPSG:3067",
        f"element vertex {len(xyz)}",
        *[f"property {t} {n}" for n, _, t in props],
        "element face 0",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    path.write_bytes(("\n".join(header) + "\n").encode() + data.tobytes())


@pytest.mark.parametrize("endian", ["<", ">"])
def test_read_ply_round_trip(tmp_path, endian):
    rng = np.random.default_rng(0)
    xyz = rng.uniform(-1, 1, (50, 3)) + np.array([382000.0, 6672000.0, 12.0])
    rgb = rng.integers(0, 256, (50, 3)).astype(np.uint8)
    write_ply(tmp_path / "c.ply", xyz, rgb, endian)
    cloud = read_ply(tmp_path / "c.ply")
    assert len(cloud) == 50
    np.testing.assert_array_equal(cloud.xyz, xyz)  # doubles kept: millimetres at 6.7e6 m survive
    np.testing.assert_array_equal(cloud.rgb, rgb)


def test_read_ply_without_colour_and_bad_files(tmp_path):
    write_ply(tmp_path / "grey.ply", np.zeros((3, 3)), None, extra=False)
    assert (read_ply(tmp_path / "grey.ply").rgb == 128).all()
    write_ply(tmp_path / "ascii.ply", np.zeros((3, 3)), None, fmt="ascii")
    with pytest.raises(PlyError, match="binary"):
        read_ply(tmp_path / "ascii.ply")
    (tmp_path / "junk.ply").write_bytes(b"not a ply\n")
    with pytest.raises(PlyError, match="not a PLY"):
        read_ply(tmp_path / "junk.ply")
    write_ply(tmp_path / "short.ply", np.zeros((3, 3)), None)
    raw = (tmp_path / "short.ply").read_bytes()
    (tmp_path / "short.ply").write_bytes(raw[:-10])
    with pytest.raises(PlyError, match="truncated"):
        read_ply(tmp_path / "short.ply")


GRID = Affine(0.5, 0.0, 100.0, 0.0, -0.5, 210.0)  # 20 x 20 px of 0.5 m, north-up, x 100..110, y 200..210


def test_top_index_takes_the_highest_point_of_each_pixel():
    xy = np.array([[100.2, 209.8], [100.3, 209.9], [100.1, 209.7], [105.2, 204.9], [99.0, 205.0]])
    z = np.array([1.0, 7.0, 3.0, 2.0, 9.0])
    idx = top_index(xy, z, GRID, (20, 20))
    assert idx[0, 0] == 1  # the 7 m point wins over 1 m and 3 m in the north-west pixel
    assert idx[10, 10] == 3  # x 105.2 -> col 10, y 204.9 -> row 10
    assert (idx >= 0).sum() == 2  # the point west of the grid falls nowhere


def test_render_top_colours_heights_and_gaps():
    # a roof at 10 m (red) over ground at 0 m (grey), with a 0.5 m gap inside and nothing in the east half
    gx, gy = np.meshgrid(np.arange(100.25, 105, 0.5), np.arange(200.25, 210, 0.5))
    ground = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
    keep = ~((np.abs(ground[:, 0] - 102.25) < 0.1) & (np.abs(ground[:, 1] - 205.25) < 0.1))
    ground = ground[keep]
    roof = ground[(ground[:, 0] < 102) & (ground[:, 1] > 207)] + [0, 0, 10]
    xyz = np.concatenate([ground, roof])
    rgb = np.concatenate([np.full((len(ground), 3), 100), np.tile([200, 30, 30], (len(roof), 1))]).astype(
        np.uint8
    )
    top = render_top(ColoredCloud(xyz, rgb), GRID, (20, 20), max_gap_px=1.5)
    assert tuple(top.rgb[0, 0]) == (200, 30, 30) and top.height[0, 0] == 10.0
    assert tuple(top.rgb[15, 2]) == (100, 100, 100) and top.height[15, 2] == 0.0
    assert top.valid[9, 4]  # the one missing ground pixel is closed from its neighbours
    assert tuple(top.rgb[9, 4]) == (100, 100, 100)
    assert not top.valid[:, 12:].any() and (top.rgb[:, 12:] == 0).all() and np.isnan(top.height[:, 12:]).all()


def test_shade_height_shows_height_and_sun_side_without_colour():
    h = np.zeros((40, 40))
    h[10:30, 10:30] = 8.0  # a flat-roofed block
    valid = np.ones_like(h, bool)
    valid[:, :2] = False
    img = shade_height(h, valid, 0.5, sun_azimuth_deg=270.0, sun_elevation_deg=30.0)
    assert img.dtype == np.uint8 and img.shape == (40, 40, 3)
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 1] == img[..., 2]).all()  # grey
    assert img[20, 20, 0] > img[35, 35, 0]  # the roof is brighter than the ground
    assert img[20, 10, 0] > img[20, 29, 0]  # the west wall faces the western sun, the east wall does not
    assert (img[:, :2] == 128).all()


def plane_with_wall(spacing=0.25, green=True):
    g = np.arange(-15, 15, spacing)
    gx, gy = np.meshgrid(g, g)
    ground = np.column_stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)])
    wy, wz = np.meshgrid(g, np.arange(0.0, 6.0, spacing))
    wall = np.column_stack([np.full(wy.size, 10.0), wy.ravel(), wz.ravel()])
    xyz = np.concatenate([ground, wall]) + np.array([382000.0, 6672000.0, 20.0])
    ground_rgb = (60, 140, 50) if green else (70, 70, 72)
    rgb = np.concatenate([np.tile(ground_rgb, (len(ground), 1)), np.tile((150, 140, 130), (len(wall), 1))])
    return ColoredCloud(xyz, rgb.astype(np.uint8)), len(ground)


def test_normals_materials_and_surfels():
    cloud, n_ground = plane_with_wall(green=True)
    xyz = cloud.xyz - cloud.xyz.mean(0)
    normals, planarity, spacing = point_normals(xyz)
    assert np.median(np.abs(normals[:n_ground, 2])) > 0.99  # ground faces up
    assert np.median(np.abs(normals[n_ground:, 0])) > 0.99  # the wall faces along x
    assert np.median(planarity) > 0.5
    assert np.median(spacing) == pytest.approx(0.5, rel=0.3)  # 8th neighbour on a 0.25 m grid
    mat = guess_materials(xyz, cloud.rgb, normals, planarity)
    assert np.mean(mat[:n_ground] == GRASS) > 0.9
    assert np.mean(mat[n_ground:][xyz[n_ground:, 2] - xyz[:n_ground, 2].min() > 1.0] == WALL) > 0.9
    grey, _ = plane_with_wall(green=False)
    assert np.mean(guess_materials(xyz, grey.rgb, normals, planarity)[:n_ground] == ASPHALT) > 0.9
    mesh = surfel_mesh(xyz[:3], normals[:3], 0.4)
    assert len(mesh.faces) == 6
    edge = mesh.vertices[1] - mesh.vertices[0]
    assert np.linalg.norm(edge) == pytest.approx(0.4)
    assert abs(edge @ normals[0]) < 1e-9  # the square lies in the tangent plane


def test_cloud_scene_scans_like_the_geometry(tmp_path):
    """A LiDAR 1.73 m above a plane with a wall 10 m east: the floor at -1.73 m, the wall at x = 10 m."""
    cloud, _ = plane_with_wall()
    scene = CloudScene(cloud)
    sim = scene.simulator()
    pose = np.eye(4)
    pose[:3, 3] = [382000.0, 6672000.0, 21.73]
    scan = scene.scan(sim, pose, np.random.default_rng(0))
    assert scan.shape[1] == 4 and len(scan) > 10000
    floor = scan[scan[:, 2] < -1.5]
    assert np.median(floor[:, 2]) == pytest.approx(-1.73, abs=0.05)
    east = scan[(np.abs(scan[:, 1]) < 2) & (scan[:, 0] > 5) & (scan[:, 2] > -1.0)]
    assert np.median(east[:, 0]) == pytest.approx(10.0, abs=0.1)
    assert not (scan[:, 0] > 10.5).any()  # the wall's surfels leave no holes to see through
    assert scan[:, 3].min() >= 0.0 and scan[:, 3].max() <= 1.0

    # as a KITTI-layout drive beside a source drive: same OXTS and calibration, only the scans differ
    src = tmp_path / "src"
    (src / "velodyne_points" / "data").mkdir(parents=True)
    (src / "oxts" / "data").mkdir(parents=True)
    calib = np.eye(4)
    calib[:3, 3] = [-0.8, 0.3, -0.8]
    write_calib(tmp_path / "calib_imu_to_velo.txt", calib)
    for f in range(2):
        np.zeros((600, 4), np.float32).tofile(src / "velodyne_points" / "data" / f"{f:010d}.bin")
        (src / "oxts" / "data" / f"{f:010d}.txt").write_text(f"60.17 24.94 20.9 0.0 0.0 {0.3 * f}\n")
    for sub in ("velodyne_points", "oxts"):
        (src / sub / "timestamps.txt").write_text(
            "2026-06-01 10:00:00.000000000\n2026-06-01 10:00:00.100000000\n"
        )
    poses = np.array([[382000.0, 6672000.0, 20.93, 0.0], [382001.0, 6672000.0, 20.93, 0.3]])
    out = raycast_drive(scene, KittiDrive(src), poses, tmp_path / "ray", seed=1)
    drive = KittiDrive(out)
    assert drive.frames == [0, 1]
    np.testing.assert_allclose(drive.t_imu_to_velo, calib, atol=1e-9)
    np.testing.assert_array_equal(drive.oxts, KittiDrive(src).oxts)
    base = drive.scan_base(0)  # base_link 0.93 m above the plane
    assert np.median(base[base[:, 2] < -0.7, 2]) == pytest.approx(-0.93, abs=0.05)
