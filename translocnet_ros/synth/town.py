"""One synthetic town on disk: orthophoto GeoTIFF in a real projected CRS plus KITTI-layout drives."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from tqdm import tqdm

from translocnet_ros.dataset.kitti import DriveWriter, write_calib
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import rigid_inverse, world_from_base
from translocnet_ros.synth.appearance import sample_look
from translocnet_ros.synth.drive import companion_vehicle, make_trajectory, moving_cars
from translocnet_ros.synth.layout import generate_layout
from translocnet_ros.synth.lidar import LidarModel, LidarSimulator, sample_sensor
from translocnet_ros.synth.meshing import scene_mesh
from translocnet_ros.synth.render import GROUND_COLOR_NAME, render_orthophoto
from translocnet_ros.synth.styles import (
    CANOPY,
    HEDGE,
    ROOF,
    STYLES,
    WALL,
)

# Real places and their usual projected CRS; a town lands a few km from one of them.
SITES = (
    ("EPSG:32632", 49.01, 8.40),  # Karlsruhe, UTM 32N (KITTI's city)
    ("EPSG:25833", 52.52, 13.40),  # Berlin, ETRS89 / UTM 33N
    ("EPSG:3067", 61.50, 23.76),  # Tampere, ETRS-TM35FIN
    ("EPSG:32617", 43.65, -79.38),  # Toronto, UTM 17N
    ("EPSG:2056", 46.95, 7.45),  # Bern, Swiss LV95
    ("EPSG:32610", 37.77, -122.42),  # San Francisco, UTM 10N
)
# KITTI 2011_09_26 IMU -> Velodyne extrinsic (p_velo = T @ p_imu): the velo sits 0.80 m above the IMU.
KITTI_T_IMU_TO_VELO = np.array(
    [
        [9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01],
        [-7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01],
        [2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01],
        [0, 0, 0, 1],
    ]
)
IMU_HEIGHT_M = 0.93  # base_link above ground, so the LiDAR is ~1.73 m up as on the KITTI car
START_TIME = 1_780_308_000.0  # 2026-06-01 10:00 UTC


# Bump whenever the generator's output changes: `generate --split` (and training, calibration, benchmarks that
# call it) rebuilds every town whose town.json records another version.
GENERATOR_VERSION = 3  # 3: imagery drawn on the GeoTIFF pixel grid (no half-pixel east/south shift)


@dataclass(frozen=True)
class TownSpec:
    seed: int
    style: str = "suburban"
    size_m: float = 1000.0
    m_per_px: float = 0.5  # GeoTIFF resolution; the imagery itself has a random 0.1-0.6 m source resolution
    n_drives: int = 1
    n_frames: int = 500
    n_moving_cars: int = 12
    wild_appearance: float = 0.0  # probability of colours from anywhere instead of plausible ranges
    max_lean: float = 0.35  # largest tan(off-nadir) of the imagery's relief displacement (0: true ortho)
    sensor_variety: bool = True  # False: every drive uses the plain HDL-64E model (smoke tests, ablations)
    shadows: bool = True  # False: no cast shadows in the imagery (ablations: what the model reads in them)
    sun_turn_deg: float = 0.0  # the drawn sun azimuth turned by this, its shadows with it (ablations)
    # True: a low sun and dark shadows (20-45 deg high, 60-90% dark; drawn apart, every other draw shared), the
    # long, near-black shadows of real orthophotos flown at high latitudes (docs/real_gap.md)
    harsh_sun: bool = False
    generator: int = GENERATOR_VERSION


def _world_from_base(layout, x, y, yaw):
    """4x4 pose of base_link on the terrain: yaw from the drive, pitch and roll from the local slope."""
    e = 0.5
    gx = (layout.terrain_z(x + e, y) - layout.terrain_z(x - e, y)) / (2 * e)
    gy = (layout.terrain_z(x, y + e) - layout.terrain_z(x, y - e)) / (2 * e)
    pitch = -np.arctan(gx * np.cos(yaw) + gy * np.sin(yaw))
    roll = np.arctan(-gx * np.sin(yaw) + gy * np.cos(yaw))
    z = float(layout.terrain_z(x, y)) + IMU_HEIGHT_M
    return world_from_base(x, y, z, roll, pitch, yaw), float(roll), float(pitch)


def write_geotiff(path: Path, img: np.ndarray, transform: Affine, crs) -> None:
    """Tiled, JPEG-compressed GeoTIFF with overviews, so windowed reads and downsampling stay cheap."""
    h, w, _ = img.shape
    profile = dict(
        driver="GTiff",
        width=w,
        height=h,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=transform,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="JPEG",
        photometric="YCBCR",
        jpeg_quality=92,
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(img.transpose(2, 0, 1))
        ds.build_overviews([2, 4, 8, 16], Resampling.average)


def surface_brightness(look) -> np.ndarray:
    """(256,) visible brightness 0..1 of each material in this town's orthophoto, for the LiDAR's weak tie
    between reflectance and colour."""
    out = np.full(256, 0.4, np.float32)
    names = {**GROUND_COLOR_NAME, WALL: "facade", CANOPY: "canopy", HEDGE: "canopy"}
    for m, name in names.items():
        out[m] = float(np.mean(look.colors[name])) / 255.0
    out[ROOF] = float(np.mean(look.roof_palette)) / 255.0
    return out


@dataclass
class _World:
    """Every draw of a town up to and including its orthophoto, in the order the generator makes them."""

    rng: np.random.Generator  # positioned after the orthophoto's draws
    crs_name: str
    e0: float
    n0: float
    base_alt: float
    layout: object
    drives: list
    look: object
    ortho: np.ndarray


def _draw_world(spec: TownSpec) -> _World:
    style = STYLES[spec.style]
    rng = np.random.default_rng(spec.seed)
    crs_name, lat0, lon0 = SITES[int(rng.integers(len(SITES)))]
    e0, n0 = MapFrame.from_any(crs_name).to_map(lat0, lon0)
    e0 = float(np.round(e0 + rng.uniform(-4000, 4000), -1))
    n0 = float(np.round(n0 + rng.uniform(-4000, 4000), -1))
    base_alt = float(rng.uniform(20, 400))

    layout = generate_layout(style, spec.size_m, rng)
    drives = []
    for _ in range(spec.n_drives):
        traj = make_trajectory(layout, spec.n_frames, rng)
        layout.clear_corridor(traj.xy, 2.0)
        traffic = moving_cars(layout, spec.n_moving_cars, spec.n_frames, rng)
        for cars, beside in zip(traffic, companion_vehicle(traj, rng)):
            if beside is not None:
                cars.append(beside)
        drives.append((traj, traffic))
    look = sample_look(rng, spec.size_m, spec.wild_appearance, spec.max_lean)
    if spec.harsh_sun:
        sun = np.random.default_rng([spec.seed, 1])
        look = replace(look, sun_elev=np.radians(sun.uniform(20, 45)), shadow_strength=sun.uniform(0.6, 0.9))
    look = replace(  # the ablations change the look after its draws, so every other draw is shared
        look,
        sun_az=look.sun_az + np.radians(spec.sun_turn_deg),
        shadow_strength=look.shadow_strength if spec.shadows else 0.0,
    )
    ortho = render_orthophoto(layout, style, look, spec.m_per_px, rng)
    return _World(rng, crs_name, e0, n0, base_alt, layout, drives, look, ortho)


SHADOW_FREE_ORTHO = "ortho_noshadow.tif"


def write_shadow_free_twin(town_dir: Path) -> Path:
    """The town's orthophoto drawn again from the same draws without cast shadows, on the same grid: with the
    original it is a pair that differs only in its shadows (`train --shadow-consistency`)."""
    meta = json.loads((Path(town_dir) / "town.json").read_text())
    spec = TownSpec(**{k: meta[k] for k in TownSpec.__dataclass_fields__ if k in meta})
    if spec.generator != GENERATOR_VERSION:
        raise ValueError(f"{town_dir}: generator {spec.generator}, not {GENERATOR_VERSION}; regenerate it")
    world = _draw_world(replace(spec, shadows=False))
    with rasterio.open(Path(town_dir) / "ortho.tif") as ds:
        transform, crs = ds.transform, ds.crs
    out = Path(town_dir) / SHADOW_FREE_ORTHO
    write_geotiff(out, world.ortho, transform, crs)
    return out


def generate_town(spec: TownSpec, out_dir: Path, progress: bool = True) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    world = _draw_world(spec)
    rng, layout, look, e0, n0 = world.rng, world.layout, world.look, world.e0, world.n0
    frame = MapFrame.from_any(world.crs_name)
    style = STYLES[spec.style]
    reg_err = rng.normal(0, 0.2, 2)  # small georegistration error of the imagery
    transform = Affine(spec.m_per_px, 0, e0 + reg_err[0], 0, -spec.m_per_px, n0 + spec.size_m + reg_err[1])
    write_geotiff(out_dir / "ortho.tif", world.ortho, transform, frame.crs)
    write_calib(out_dir / "calib_imu_to_velo.txt", KITTI_T_IMU_TO_VELO)

    mesh, materials = scene_mesh(layout, style.sidewalk_m)
    sim = LidarSimulator(mesh, materials, layout, LidarModel(), surface_brightness(look))
    base_from_velo = rigid_inverse(KITTI_T_IMU_TO_VELO)
    sensors = []
    for d, (traj, traffic) in enumerate(world.drives):
        sensor = sample_sensor(rng)  # drawn either way, so both settings share every other random draw
        sim.set_model(sensor if spec.sensor_variety else LidarModel())
        sensors.append(
            dict(
                plain_hdl64e=not spec.sensor_variety,
                max_range_m=round(sim.model.max_range_m, 1),
                dropout=round(sim.model.dropout, 3),
                blind_sectors_deg=[[round(c, 1), round(w, 1)] for c, w in sim.model.blind_sectors_deg],
                even_beams=sim.model.even_beams,
                intensity_gain=round(sim.model.intensity_gain, 2),
                intensity_offset=round(sim.model.intensity_offset, 3),
                intensity_gamma=round(sim.model.intensity_gamma, 2),
                color_tie=round(sim.model.color_tie, 2),
            )
        )
        writer = DriveWriter(out_dir / f"drive_{d:02d}", frame)
        for i in tqdm(
            range(spec.n_frames), desc=f"{out_dir.name}/drive_{d:02d}", disable=not progress, unit="scan"
        ):
            x, y = traj.xy[i]
            wb, roll, pitch = _world_from_base(layout, x, y, traj.yaw[i])
            scan = sim.scan(wb @ base_from_velo, traffic[i], rng)
            t = START_TIME + spec.seed * 1000 + d * 100 + traj.t[i]
            writer.add(scan, t, e0 + x, n0 + y, float(traj.yaw[i]), world.base_alt + wb[2, 3], roll, pitch)
        writer.close()
    meta = dict(
        asdict(spec),
        crs=world.crs_name,
        origin_en=[e0, n0],
        registration_error_m=reg_err.round(3).tolist(),
        imagery=look.summary(),
        sensors=sensors,
        counts=dict(
            roads=len(layout.roads),
            buildings=len(layout.buildings),
            trees=len(layout.trees),
            parked_cars=len(layout.cars),
            poles=len(layout.poles),
            fences=len(layout.fences),
            hedges=len(layout.hedges),
            street_furniture=len(layout.furniture),
            bushes=len(layout.bushes),
            parking_lots=len(layout.lots),
            mesh_faces=len(mesh.faces),
        ),
    )
    (out_dir / "town.json").write_text(json.dumps(meta, indent=2))
    return out_dir
