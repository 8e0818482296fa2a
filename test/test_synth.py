"""Procedural towns: determinism, LiDAR sanity, occlusion, and OXTS/calib written as the reader expects."""

import csv
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
import rasterio

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.synth.appearance import Relief, sample_look
from translocnet_ros.synth.layout import Box2, Building, Layout, _poly, generate_layout, rect_corners
from translocnet_ros.synth.lidar import LidarModel, LidarSimulator, sample_sensor
from translocnet_ros.synth.meshing import MeshBuilder, add_box, scene_mesh, terrain_mesh
from translocnet_ros.synth.render import OrthoRenderer
from translocnet_ros.synth.styles import ASPHALT, CANOPY, GRASS, HEDGE, PAVEMENT, STYLES, WALL
from translocnet_ros.synth.town import TownSpec, generate_town, write_shadow_free_twin


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
        assert ds.res == pytest.approx((0.5, 0.5))  # whatever the source resolution, resampled to 0.5 m
        assert ds.width == 600
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
    assert 40_000 < len(pts) < 135_552
    sensor = json.loads((small_town / "town.json").read_text())["sensors"][0]
    assert 50.0 <= sensor["max_range_m"] <= 120.0
    rng = np.linalg.norm(pts[:, :3], axis=1)
    assert rng.max() <= sensor["max_range_m"] + 0.2 and rng.min() >= 2.7 - 0.1
    elev = np.degrees(np.arcsin(pts[:, 2] / rng))
    assert elev.min() > -24.9 - 0.5 and elev.max() < 2.0 + 0.5
    assert json.loads((small_town / "town.json").read_text())["sensors"][0]["max_range_m"] >= 50
    beams = LidarModel(even_beams=sensor["even_beams"]).elevations_deg()
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


def one_building_layout(height=20.0) -> Layout:
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    lay.buildings.append(
        Building(rect_corners(50.0, 50.0, 0.0, 30.0, 20.0), height, False, True, (0, 0, 0), "slab")
    )
    return lay


def render_with_lean(lay, lean_xy, seed=3):
    """The same look (and random stream) but for the relief; a bright roof over dark ground and facades."""
    look = sample_look(np.random.default_rng(seed), lay.size_m)
    look.relief = Relief.constant(lean_xy)
    look.gsd, look.wild, look.season = 0.25, False, "summer"
    look.roof_palette, look.roof_weights = [np.array([250.0, 250.0, 250.0])], np.ones(1)
    look.colors.update(grass=np.array([30.0, 60.0, 30.0]), facade=np.array([60.0, 50.0, 40.0]))
    look.colors["facade_brick"] = look.colors["facade"]
    look.grading.update(hue=0.0, sat=1.0, contrast=1.0, gamma=1.0, gains=np.ones(3), haze=0.0, brightness=0.0)
    return OrthoRenderer(lay, STYLES["downtown"], look, np.random.default_rng(seed)).render(0.5)


def bright_centroid(img) -> np.ndarray:
    """Centroid (town metres) of the bright roof pixels of a 0.5 m image of a 100 m town."""
    rows, cols = np.nonzero(img.mean(-1) > 150)
    return np.array([(cols.mean() + 0.5) * 0.5, 100.0 - (rows.mean() + 0.5) * 0.5])


def weighted_centre(weight: np.ndarray, m_per_px: float, size_m: float) -> np.ndarray:
    """Weighted centre (town metres) of a north-up raster whose pixel (r, c) covers [c, c + 1] x m_per_px east
    and [size_m - (r + 1) m_per_px, size_m - r m_per_px] north (the GeoTIFF convention)."""
    rows, cols = np.indices(weight.shape)
    w = weight / weight.sum()
    return np.array([((cols + 0.5) * w).sum() * m_per_px, size_m - ((rows + 0.5) * w).sum() * m_per_px])


@pytest.mark.parametrize("gsd", [0.25, 0.4, 0.6])
def test_ortho_content_sits_where_its_geotransform_says(gsd):
    """Shapes drawn at (x, y) land, on average, on the pixels the GeoTIFF places at (x, y), at every render
    resolution: no shift between the imagery and the world the LiDAR scans. Each shape snaps to whole pixels
    (cv2), so single shapes are off by up to half a pixel either way; 25 at different sub-pixel offsets
    average that out. The old drawing convention moved everything half a render pixel east and south."""
    rng = np.random.default_rng(1)
    centres = np.array([[13.0 + 18 * i, 13.0 + 18 * j] for i in range(5) for j in range(5)])
    centres += rng.uniform(0, 1, centres.shape)
    # black asphalt on white pavement (no lawn wear), flat colours and neutral grading
    lay = Layout(
        size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), PAVEMENT, np.uint8)
    )
    for c in centres:
        _poly(lay.ground, rect_corners(*c, 0.0, 12.0, 8.0), ASPHALT)
    look = sample_look(np.random.default_rng(0), lay.size_m)
    look.relief, look.gsd, look.wild, look.shadow_strength = Relief.constant((0.0, 0.0)), gsd, False, 0.0
    look.colors.update(pavement=np.array([250.0, 250.0, 250.0]), asphalt=np.array([0.0, 0.0, 0.0]))
    for name in look.texture:
        look.texture[name] = (0.0, look.texture[name][1])
    look.grading.update(hue=0.0, sat=1.0, contrast=1.0, gamma=1.0, gains=np.ones(3), haze=0.0, brightness=0.0)
    look.grading.update(noise=0.0, sharpen=0.0)
    renderer = OrthoRenderer(lay, STYLES["suburban"], look, np.random.default_rng(0))
    assert renderer.n * renderer.res == pytest.approx(100.0)  # whole pixels span the town exactly

    def mean_offset(image, m_per_px):
        """Mean over the shapes of (their weighted centre - where they were drawn)."""
        out = []
        for c in centres:
            w = np.zeros_like(image)
            r0, c0 = int((100.0 - c[1] - 8) / m_per_px), int((c[0] - 10) / m_per_px)
            r1, c1 = int((100.0 - c[1] + 8) / m_per_px), int((c[0] + 10) / m_per_px)
            w[r0:r1, c0:c1] = image[r0:r1, c0:c1]
            out.append(weighted_centre(w, m_per_px, 100.0) - c)
        return np.mean(out, axis=0)

    # objects the renderer draws, at its own resolution
    canvas = np.zeros((renderer.n, renderer.n, 3), np.float32)
    for c in centres:
        renderer._fill(canvas, rect_corners(*c, 0.0, 12.0, 8.0), (1.0, 1.0, 1.0))
    assert mean_offset(canvas[..., 0], renderer.res) == pytest.approx([0.0, 0.0], abs=0.05)
    # the ground raster (0.2 m cells; the LiDAR simulator reads its materials there) and the whole 0.5 m photo
    assert all(lay.material_at(*(c + np.array([5.7, 3.7]))) == ASPHALT for c in centres)
    assert not any(lay.material_at(*(c + np.array([6.3, 0.0]))) == ASPHALT for c in centres)
    img = renderer.render(0.5).astype(np.float32).mean(-1)
    dark = np.clip((img.max() - img) / 250.0, 0.0, 1.0)
    assert mean_offset(dark, 0.5) == pytest.approx([0.0, 0.0], abs=0.05)


def test_relief_displacement_moves_the_roof_not_the_lidar_footprint():
    """A 20 m roof seen 0.2 east / 0.1 south off nadir lands 4 m east, 2 m south of its footprint; the
    facade facing the nadir shows; the LiDAR still sees the west wall where it stands."""
    lay = one_building_layout(20.0)
    flat = render_with_lean(lay, (0.0, 0.0))
    lean = render_with_lean(lay, (0.2, -0.1))
    assert bright_centroid(flat) == pytest.approx([50.0, 50.0], abs=0.5)
    assert bright_centroid(lean) == pytest.approx([54.0, 48.0], abs=0.5)
    # the west facade (its normal points back towards the nadir) fills the 4 m between wall base and roof edge
    strip = lean[int((50 - 7) * 2) : int((50 + 7) * 2), int(35 * 2) + 1 : int(39 * 2) - 1].mean((0, 1))
    assert np.all(np.abs(strip - flat[80:120, 71:77].mean((0, 1))) > 10)
    mesh, mats = scene_mesh(lay, 0.0)
    sim = LidarSimulator(mesh, mats, lay, LidarModel(dropout=0.0))
    pose = np.eye(4)
    pose[:3, 3] = [20.0, 50.0, 1.73]
    pts = sim.scan(pose, [], np.random.default_rng(0))
    wall = (np.abs(pts[:, 1]) < 3) & (pts[:, 2] > 0)
    assert wall.sum() > 50
    assert np.median(pts[wall, 0]) + 20.0 == pytest.approx(35.0, abs=0.1)  # west wall at x = 35 m


def test_relief_grows_with_height_and_away_from_each_tiles_nadir():
    r = Relief(
        tile_m=100.0,
        origin=(0.0, 0.0),
        lean=np.array([[[0.1, 0.0], [0.0, 0.2]]]),
        inv_h=np.full((1, 2), 1e-3),
    )
    assert r.at(50.0, 50.0) == pytest.approx([0.1, 0.0])  # tile centre
    assert r.at(90.0, 50.0) == pytest.approx([0.14, 0.0])  # 40 m further east: leans 0.04 more
    assert r.at(150.0, 20.0) == pytest.approx([0.0, 0.17])  # second tile, 30 m south of its centre
    lay = one_building_layout(10.0)
    low = bright_centroid(render_with_lean(lay, (0.2, 0.0)))
    assert low == pytest.approx([52.0, 50.0], abs=0.5)  # half the height, half the displacement


def test_appearance_is_randomized_per_seed_and_plausible_unless_wild():
    looks = [sample_look(np.random.default_rng(s), 500.0) for s in range(24)]
    grass = np.array([lk.colors["grass"] for lk in looks])
    assert grass.std(0).min() > 15  # lawns differ from town to town
    assert len({lk.season for lk in looks}) >= 4
    assert np.ptp([lk.gsd for lk in looks]) > 0.3 and min(lk.gsd for lk in looks) >= 0.1
    assert np.ptp([lk.relief.max_lean() for lk in looks]) > 0.15
    again = sample_look(np.random.default_rng(5), 500.0)
    assert np.array_equal(again.colors["grass"], looks[5].colors["grass"])
    import colorsys

    def hue(c):
        return colorsys.rgb_to_hsv(*(np.asarray(c) / 255))[0] * 360

    assert all(colorsys.rgb_to_hsv(*(lk.colors["asphalt"] / 255))[1] <= 0.061 for lk in looks)  # grey roads
    wild = [sample_look(np.random.default_rng(s), 500.0, wild_prob=1.0) for s in range(24)]
    assert all(lk.wild for lk in wild)
    sat = [colorsys.rgb_to_hsv(*(lk.colors["asphalt"] / 255))[1] for lk in wild]
    assert max(sat) > 0.3  # wild roads can be any colour
    assert np.ptp([hue(lk.colors["grass"]) for lk in wild]) > 180


def test_ortho_colours_change_between_seeds_layout_does_not_decide_them(tmp_path):
    lay = generate_layout(STYLES["suburban"], 200.0, np.random.default_rng(1))
    means = []
    for seed in (1, 2, 3):
        look = sample_look(np.random.default_rng(seed), 200.0)
        img = OrthoRenderer(lay, STYLES["suburban"], look, np.random.default_rng(seed)).render(0.5)
        assert img.shape == (400, 400, 3) and img.dtype == np.uint8
        means.append(img.reshape(-1, 3).mean(0))
    means = np.array(means)
    assert np.abs(means[:, None] - means[None]).max(-1)[np.triu_indices(3, 1)].min() > 3


def test_layouts_have_vegetation_lots_curves_and_courtyards():
    sub = generate_layout(STYLES["suburban"], 500.0, np.random.default_rng(2))
    assert len(sub.hedges) > 10 and len(sub.bushes) > 100 and len(sub.trees) > 100
    assert len(sub.furniture) > 50 and len(sub.fences) > 10  # clutter along the streets, as real ones have
    assert sub.bends and len(sub.lots) >= 1
    down = generate_layout(STYLES["downtown"], 500.0, np.random.default_rng(2))
    assert sum(b.kind == "block" for b in down.buildings) >= 8
    _, mats = scene_mesh(sub, STYLES["suburban"].sidewalk_m)
    assert (mats == HEDGE).any() and (mats == CANOPY).any()  # the LiDAR sees hedges and bushes too
    only_ortho = [c for c in sub.cars if c.where == "ortho"]
    assert only_ortho  # parked cars that left before the drive


def test_sensor_variety_and_blind_sectors():
    sensors = [sample_sensor(np.random.default_rng(s)) for s in range(20)]
    ranges = [m.max_range_m for m in sensors]
    assert min(ranges) >= 50 and max(ranges) <= 120 and np.ptp(ranges) > 30
    assert len({m.intensity_levels for m in sensors}) > 1
    assert {m.even_beams for m in sensors} == {True, False}
    even = LidarModel(even_beams=True).elevations_deg()
    assert len(even) == 64 and np.ptp(np.diff(even)) < 1e-9 and even[0] == 2.0 and even[-1] == -24.9
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    mb = MeshBuilder()
    v, f = terrain_mesh(lay, step=5.0, margin=50.0)
    mb.add(v, f, 255)
    mesh, mats = mb.build()
    pose = np.eye(4)
    pose[:3, 3] = [50.0, 50.0, 1.73]
    model = LidarModel(dropout=0.0, max_range_m=30.0, blind_sectors_deg=((90.0, 40.0),), intensity_levels=10)
    pts = LidarSimulator(mesh, mats, lay, model).scan(pose, [], np.random.default_rng(0))
    az = np.degrees(np.arctan2(pts[:, 1], pts[:, 0]))
    assert not ((az > 71) & (az < 109)).any() and ((az > 50) & (az < 68)).any()
    assert np.linalg.norm(pts[:, :3], axis=1).max() <= 30.2
    assert set(np.round(pts[:, 3] * 10, 4)) <= set(np.arange(11.0))  # quantized to 10 levels


def test_hipped_roof_is_the_same_in_mesh_and_image():
    """A hipped roof's ridge is shorter in the LiDAR mesh, as the orthophoto draws it."""
    lay = one_building_layout(8.0)
    b = lay.buildings[0]
    b.pitched, b.ridge_along_long_side = True, True
    mesh, _ = scene_mesh(lay, 0.0)
    top = mesh.vertices[mesh.vertices[:, 2] > mesh.vertices[:, 2].max() - 1e-6]
    assert np.ptp(top[:, 0]) == pytest.approx(30.0) and np.ptp(top[:, 1]) == pytest.approx(0.0)  # gable ridge
    b.hip = True
    mesh, _ = scene_mesh(lay, 0.0)
    top = mesh.vertices[mesh.vertices[:, 2] > mesh.vertices[:, 2].max() - 1e-6]
    assert np.ptp(top[:, 0]) == pytest.approx(15.0) and top[:, 0].mean() == pytest.approx(50.0)


def test_foliage_returns_come_from_inside_the_crown():
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    mb = MeshBuilder()
    add_box(mb, Box2(65.5, 50.0, 0.0, 1.0, 30.0, 6.0), 0.0, HEDGE)  # a hedge face at x = 65 m
    mesh, mats = mb.build()
    pose = np.eye(4)
    pose[:3, 3] = [50.0, 50.0, 1.73]
    hard = LidarSimulator(mesh, mats, lay, LidarModel(dropout=0.0)).scan(pose, [], np.random.default_rng(0))
    soft = LidarSimulator(mesh, mats, lay, LidarModel(dropout=0.0, canopy_depth_m=0.8))
    soft = soft.scan(pose, [], np.random.default_rng(0))
    face = np.abs(hard[:, 1]) < 2
    assert np.median(hard[face, 0]) == pytest.approx(15.0, abs=0.05)
    depth = soft[np.abs(soft[:, 1]) < 2, 0] - 15.0
    assert np.median(depth) == pytest.approx(0.8 * np.log(2), abs=0.15)  # exponential depths, mean 0.8 m


def test_a_vehicle_beside_the_ego_car_hides_part_of_the_scan():
    from translocnet_ros.synth.drive import Trajectory, companion_vehicle

    n = 200
    traj = Trajectory(
        np.stack([np.linspace(10, 90, n), np.full(n, 50.0)], -1), np.zeros(n), np.arange(n) / 10
    )
    beside = companion_vehicle(traj, np.random.default_rng(0), prob=1.0)
    present = [i for i, b in enumerate(beside) if b is not None]
    assert 0.2 * n <= len(present) <= 0.6 * n and np.all(np.diff(present) == 1)  # one contiguous stretch
    lat = np.array([beside[i].y - 50.0 for i in present])
    assert np.all((np.abs(lat) >= 3.2) & (np.abs(lat) <= 4.0)) and np.ptp(lat) == 0
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    mb = MeshBuilder()
    v, f = terrain_mesh(lay, step=5.0, margin=50.0)
    mb.add(v, f, 255)
    mesh, mats = mb.build()
    sim = LidarSimulator(mesh, mats, lay, LidarModel(dropout=0.0, max_range_m=60.0))
    i = present[0]
    box = beside[i]
    pose = np.eye(4)
    pose[:3, 3] = [traj.xy[i, 0], 50.0, 1.73]
    free = sim.scan(pose, [], np.random.default_rng(0))
    hidden = sim.scan(pose, [box], np.random.default_rng(0))
    toward = np.sign(lat[0])
    dx = box.x - traj.xy[i, 0]

    def behind(p):  # ground beyond the truck, in its direction
        return ((np.abs(p[:, 0] - dx) < 2.0) & (np.sign(p[:, 1]) == toward) & (np.abs(p[:, 1]) > 6)).sum()

    far_free, far_hidden = behind(free), behind(hidden)
    assert far_free > 200 and far_hidden < 0.1 * far_free  # the ground behind the truck is not seen


def test_split_build_rebuilds_towns_of_another_generator_version(tmp_path, capsys):
    from translocnet_ros.synth.cli import build

    spec = TownSpec(seed=11, style="suburban", size_m=250.0, n_frames=2, n_moving_cars=0)
    town = tmp_path / "t"
    build([(town, spec)], force=False)
    meta = json.loads((town / "town.json").read_text())
    assert meta["generator"] == spec.generator
    build([(town, spec)], force=False)
    assert "up to date" in capsys.readouterr().out
    (town / "town.json").write_text(json.dumps({**meta, "generator": spec.generator - 1}))
    build([(town, spec)], force=False)
    out = capsys.readouterr().out
    assert "up to date" not in out and "frames in" in out  # generated again
    assert json.loads((town / "town.json").read_text())["generator"] == spec.generator


def test_towns_from_before_the_shadow_options_stay_up_to_date(tmp_path, capsys):
    """A town.json written before TownSpec had `shadows` / `sun_turn_deg` was made the default way: not rebuilt
    for the default spec, rebuilt when the spec asks for another setting."""
    from translocnet_ros.synth.cli import build

    spec = TownSpec(seed=11, style="suburban", size_m=250.0, n_frames=2, n_moving_cars=0)
    town = tmp_path / "t"
    build([(town, spec)], force=False)
    meta = json.loads((town / "town.json").read_text())
    old = {k: v for k, v in meta.items() if k not in ("shadows", "sun_turn_deg")}
    (town / "town.json").write_text(json.dumps(old))
    capsys.readouterr()
    build([(town, spec)], force=False)
    assert "up to date" in capsys.readouterr().out
    build([(town, replace(spec, shadows=False))], force=False)
    assert "up to date" not in capsys.readouterr().out
    assert json.loads((town / "town.json").read_text())["shadows"] is False


def test_a_tall_building_shades_a_lower_roof_on_its_shadow_side():
    lay = Layout(size_m=100.0, nodes=np.zeros((0, 2)), roads=[], ground=np.full((500, 500), GRASS, np.uint8))
    lay.buildings.append(
        Building(rect_corners(40.0, 50.0, 0.0, 10.0, 20.0), 30.0, False, True, (0, 0, 0), "slab")
    )
    lay.buildings.append(
        Building(rect_corners(60.0, 50.0, 0.0, 10.0, 20.0), 6.0, False, True, (0, 0, 0), "house")
    )

    def low_roof(sun_az):
        look = sample_look(np.random.default_rng(4), 100.0)
        look.relief = Relief.constant((0.0, 0.0))
        look.gsd, look.wild, look.season = 0.25, False, "summer"
        look.sun_az, look.sun_elev, look.shadow_strength = sun_az, np.radians(45.0), 0.6
        look.roof_palette, look.roof_weights = [np.array([200.0, 200.0, 200.0])], np.ones(1)
        look.grading.update(
            hue=0.0, sat=1.0, contrast=1.0, gamma=1.0, gains=np.ones(3), haze=0.0, brightness=0.0
        )
        img = OrthoRenderer(lay, STYLES["downtown"], look, np.random.default_rng(4)).render(0.5)
        return img[(50 - 7) * 2 : (50 + 7) * 2, 57 * 2 : 63 * 2].mean()  # inside the low roof (55-65 m east)

    shaded, lit = low_roof(np.pi), low_roof(0.0)  # sun in the west: the 30 m slab's shadow covers the house
    assert shaded < 0.75 * lit


def test_knobs_for_true_orthos_and_the_plain_sensor():
    looks = [sample_look(np.random.default_rng(s), 500.0, lean_limit=0.0) for s in range(8)]
    assert max(lk.relief.max_lean() for lk in looks) == 0.0
    tame = [sample_look(np.random.default_rng(s), 500.0, lean_limit=0.1) for s in range(8)]
    full = [sample_look(np.random.default_rng(s), 500.0) for s in range(8)]
    for a, b in zip(tame, full):  # the same draws, scaled
        assert a.relief.max_lean() == pytest.approx(b.relief.max_lean() * 0.1 / 0.35)
        assert np.array_equal(a.colors["grass"], b.colors["grass"])


def test_shadow_knobs_change_only_the_imagery_shadows(tmp_path):
    """--no-shadows, --sun-turn-deg (the shadow-bias ablation) and --harsh-sun keep every other random draw:
    same scans, same town; only the orthophoto's shadows differ."""
    spec = TownSpec(seed=11, style="downtown", size_m=250.0, n_frames=2, n_moving_cars=0)
    towns = {
        name: generate_town(replace(spec, **kw), tmp_path / name, progress=False)
        for name, kw in [
            ("as_drawn", {}),
            ("no_shadows", {"shadows": False}),
            ("turned", {"sun_turn_deg": 180.0}),
            ("harsh", {"harsh_sun": True}),
        ]
    }
    meta = {k: json.loads((t / "town.json").read_text())["imagery"] for k, t in towns.items()}
    assert meta["no_shadows"]["shadow_strength"] == 0.0 < meta["as_drawn"]["shadow_strength"]
    turn = (meta["turned"]["sun_azimuth_deg"] - meta["as_drawn"]["sun_azimuth_deg"]) % 360
    assert turn == pytest.approx(180.0, abs=0.2)
    harsh = meta["harsh"]
    assert 20 <= harsh["sun_elevation_deg"] <= 45 and 0.6 <= harsh["shadow_strength"] <= 0.9
    assert harsh["sun_azimuth_deg"] == meta["as_drawn"]["sun_azimuth_deg"]
    for t in towns.values():
        assert digest(t / "drive_00") == digest(towns["as_drawn"] / "drive_00")
    ortho = {}
    for k, t in towns.items():
        with rasterio.open(t / "ortho.tif") as ds:
            ortho[k] = ds.read().astype(float).mean(0)
    assert ortho["no_shadows"].mean() > ortho["as_drawn"].mean() + 1.0  # shadows darken the image
    # this seed draws a high sun and light shadows (63 deg, 0.54): the harsh sun's are longer and darker
    assert harsh["sun_elevation_deg"] < meta["as_drawn"]["sun_elevation_deg"]
    assert ortho["harsh"].mean() < ortho["as_drawn"].mean() - 1.0
    # turning the sun moves the shadows: the images differ about as much as with and without shadows
    assert (
        np.abs(ortho["turned"] - ortho["as_drawn"]).mean()
        > 0.5 * np.abs(ortho["no_shadows"] - ortho["as_drawn"]).mean()
    )
    # the shadow-free twin of a generated town (train --shadow-consistency) is the --no-shadows town's
    # orthophoto, on the same grid, without generating its scans again
    twin = write_shadow_free_twin(towns["as_drawn"])
    with rasterio.open(twin) as a, rasterio.open(towns["no_shadows"] / "ortho.tif") as b:
        assert a.transform == b.transform and a.crs == b.crs
        assert np.array_equal(a.read(), b.read())
