"""Scenes for the project's LiDAR simulator built from a coloured point cloud instead of a procedural town.

Each point becomes a surfel (a small square in its local tangent plane, normal from the PCA of its
neighbours) with a material guessed from its colour and shape (ground / road / grass / wall / roof / foliage),
so `LidarSimulator` ray casts it with the same beam model, noise, dropout and reflectance table as the
synthetic towns. `raycast_drive` re-scans an existing drive's poses (diagnosis); `raycast_site` samples new
street-level poses in the geometry and writes a labelled drive (fine-tuning data), both in the KITTI layout
that `KittiDrive` reads unchanged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import trimesh
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree
from tqdm import tqdm

from translocnet_ros.dataset.cloud import ColoredCloud, read_ply
from translocnet_ros.dataset.kitti import DriveWriter, KittiDrive, rescan_drive, write_calib
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import rigid_inverse, world_from_base
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.bev import local_ground
from translocnet_ros.synth.lidar import LidarModel, LidarSimulator, sample_sensor
from translocnet_ros.synth.styles import ASPHALT, CANOPY, GRASS, ROOF, SIDEWALK, WALL
from translocnet_ros.synth.town import IMU_HEIGHT_M, KITTI_T_IMU_TO_VELO, START_TIME


def point_normals(xyz: np.ndarray, k: int = 12, size_k: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit normals (N, 3) (pointing up where ambiguous) and planarity (N,) in [0, 1] from the PCA of the
    k nearest neighbours, and each point's distance to its size_k-th neighbour (the local spacing scale)."""
    tree = cKDTree(xyz)
    dist, nb = tree.query(xyz, k=max(k, size_k + 1))
    spacing = dist[:, size_k]
    nb = nb[:, :k]
    p = xyz[nb] - xyz[nb].mean(axis=1, keepdims=True)
    cov = np.einsum("nki,nkj->nij", p, p) / k
    evals, evecs = np.linalg.eigh(cov)  # ascending
    normals = evecs[:, :, 0]
    normals *= np.where(normals[:, 2:3] < 0, -1.0, 1.0)
    planarity = (evals[:, 1] - evals[:, 0]) / np.maximum(evals[:, 2], 1e-12)
    return normals, np.clip(planarity, 0, 1), spacing


def surfel_mesh(xyz: np.ndarray, normals: np.ndarray, size_m) -> trimesh.Trimesh:
    """One square of side size_m (scalar or per point) per point, centred on it and perpendicular to its
    normal (2 faces each)."""
    ref = np.where(np.abs(normals[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(normals, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(normals, u)
    h = np.broadcast_to(np.asarray(size_m, float), (len(xyz),))[:, None] / 2
    corners = np.stack(
        [xyz - h * u - h * v, xyz + h * u - h * v, xyz + h * u + h * v, xyz - h * u + h * v], 1
    )
    base = 4 * np.arange(len(xyz))[:, None]
    faces = np.concatenate([base + np.array([0, 1, 2]), base + np.array([0, 2, 3])])
    return trimesh.Trimesh(corners.reshape(-1, 3), faces, process=False)


def guess_materials(
    xyz: np.ndarray, rgb: np.ndarray, normals: np.ndarray, planarity: np.ndarray
) -> np.ndarray:
    """Material id per point from colour and shape, so the reflectance model has something to go on."""
    h = xyz[:, 2] - local_ground(xyz, block_m=8.0)
    c = rgb.astype(np.float32)
    green = (c[:, 1] > c[:, 0] + 6) & (c[:, 1] > c[:, 2] + 6)
    bright = c.mean(axis=1)
    up = np.abs(normals[:, 2])
    mat = np.full(len(xyz), ROOF, np.uint8)
    low = h < 0.4
    mat[low] = np.where(green[low], GRASS, np.where(bright[low] > 120, SIDEWALK, ASPHALT))
    mat[~low & (up < 0.5)] = WALL
    mat[~low & green & (planarity < 0.5)] = CANOPY
    return mat


class _NoGroundRaster:
    """LidarSimulator looks ground materials up in a layout's raster for faces marked 255; surfels never are."""

    def material_at(self, x, y):
        return np.zeros(np.shape(x), np.uint8)


class CloudScene:
    """A coloured cloud as a ray-castable surfel scene with per-face materials."""

    def __init__(self, cloud: ColoredCloud, surfel_scale: float = 1.5, k: int = 12, size_k: int = 8):
        """Surfel side = surfel_scale x the distance to the size_k-th neighbour: closes the gaps of an
        uneven cloud (on helsinki-dev, 1.5 x the 8th neighbour gives as many returns per scan as its scans)."""
        self.origin = cloud.xyz.mean(axis=0).round()  # Embree works in float32: cast near the origin
        xyz = cloud.xyz - self.origin
        normals, planarity, spacing = point_normals(xyz, k, size_k)
        self.mesh = surfel_mesh(xyz, normals, surfel_scale * spacing)
        mat = guess_materials(xyz, cloud.rgb, normals, planarity)
        self.face_material = np.concatenate([mat, mat])

    def simulator(self, model: LidarModel | None = None) -> LidarSimulator:
        return LidarSimulator(self.mesh, self.face_material, _NoGroundRaster(), model or LidarModel())

    def scan(
        self, sim: LidarSimulator, world_from_sensor: np.ndarray, rng: np.random.Generator
    ) -> np.ndarray:
        """(N, 4) float32 x, y, z, reflectance in the sensor frame, sensor pose in the cloud's CRS."""
        local = world_from_sensor.copy()
        local[:3, 3] -= self.origin
        return sim.scan(local, [], rng)


def raycast_drive(
    scene: CloudScene,
    drive: KittiDrive,
    poses_xyz_yaw: np.ndarray,
    out: Path,
    seed: int = 0,
    model: LidarModel | None = None,
) -> Path:
    """Re-scan a drive's frames from `scene` at the given base_link poses (N, 4: x, y, z, yaw in the
    scene's CRS; roll and pitch from the drive's OXTS) and write a KITTI-layout drive with the same OXTS,
    timestamps and calibration, so only the scans differ."""
    base_from_velo = rigid_inverse(drive.t_imu_to_velo)
    sim = scene.simulator(model)
    rng = np.random.default_rng(seed)
    pose_of = {f: (o, p) for f, o, p in zip(drive.frames, drive.oxts, poses_xyz_yaw)}

    def scan_of(frame: int) -> np.ndarray:
        oxts, (x, y, z, yaw) = pose_of[frame]
        return scene.scan(sim, world_from_base(x, y, z, oxts[3], oxts[4], yaw) @ base_from_velo, rng)

    return rescan_drive(drive, out, scan_of)


MARGIN_M = 15.0  # how far inside the cloud's extent a pose stands by default


@dataclass(frozen=True)
class StreetGrid:
    """Where a vehicle could stand in a cloud, on a grid of cell_m cells (rows along +y, columns along +x):
    open ground (no point above 0.4 m over the local ground in the cell) at least clearance_m from anything
    taller and margin_m inside the cloud's extent (`ok`), the clearance itself (`free`, metres) and the
    street's direction there (`along`, grid yaw mod pi)."""

    lo: np.ndarray  # (2,) x, y of cell (0, 0)'s corner
    cell_m: float
    ok: np.ndarray  # (H, W) bool
    free: np.ndarray  # (H, W) metres to the nearest tall cell
    along: np.ndarray  # (H, W) radians
    ground: cKDTree  # over the cloud's x, y
    ground_z: np.ndarray  # (N,) each point's local ground height

    @classmethod
    def of(
        cls, cloud: ColoredCloud, cell_m: float = 0.5, clearance_m: float = 2.0, margin_m: float = MARGIN_M
    ) -> StreetGrid:
        """Raises ValueError when the cloud has no such place."""
        xyz = cloud.xyz
        ground_z = local_ground(xyz, block_m=8.0)
        h = xyz[:, 2] - ground_z
        lo = xyz[:, :2].min(axis=0)
        w, hgt = (np.ceil((xyz[:, :2].max(axis=0) - lo) / cell_m).astype(int) + 1).tolist()
        col = ((xyz[:, 0] - lo[0]) / cell_m).astype(int)
        row = ((xyz[:, 1] - lo[1]) / cell_m).astype(int)
        idx = row * w + col
        seen = np.bincount(idx, minlength=w * hgt).reshape(hgt, w) > 0
        tall = np.bincount(idx[h > 0.4], minlength=w * hgt).reshape(hgt, w) > 0
        free = cv2.distanceTransform((~tall).astype(np.uint8), cv2.DIST_L2, 5) * cell_m
        m = int(np.ceil(margin_m / cell_m))
        inside = np.zeros_like(seen)
        inside[m:-m, m:-m] = True
        ok = seen & ~tall & (free >= clearance_m) & inside
        if not ok.any():
            raise ValueError("no open street-level ground in the cloud (too small, or no ground points)")
        # the street runs across the clearance gradient; its orientation from the gradient's structure tensor,
        # which (unlike the gradient itself) is defined on the street's centre line too
        gy, gx = np.gradient(free)
        jxx, jxy, jyy = (cv2.GaussianBlur(a, (0, 0), 3.0) for a in (gx * gx, gx * gy, gy * gy))
        along = 0.5 * np.arctan2(2 * jxy, jxx - jyy) + np.pi / 2
        return cls(lo, cell_m, ok, free, along, cKDTree(xyz[:, :2]), ground_z)

    def base_z(self, x, y) -> np.ndarray:
        """base_link height over the ground at (x, y): the median ground height of the 16 nearest points."""
        near = self.ground.query(np.stack([x, y], 1), k=16)[1]
        return np.median(self.ground_z[near], axis=1) + IMU_HEIGHT_M


def street_poses(
    cloud: ColoredCloud, n: int, rng: np.random.Generator, margin_m: float = MARGIN_M
) -> np.ndarray:
    """(n, 4) independent base_link x, y, z, grid yaw where a vehicle could stand (StreetGrid.ok, at least
    margin_m inside the cloud's extent), facing along the open space (the street) either way. Raises ValueError
    when the cloud has no such place."""
    grid = StreetGrid.of(cloud, margin_m=margin_m)
    ok = np.flatnonzero(grid.ok)
    cells = rng.choice(ok, n, replace=ok.size < n)
    r, c = np.divmod(cells, grid.ok.shape[1])
    x = grid.lo[0] + (c + rng.uniform(0, 1, n)) * grid.cell_m
    y = grid.lo[1] + (r + rng.uniform(0, 1, n)) * grid.cell_m
    yaw = grid.along[r, c] + rng.choice([0.0, np.pi], n) + rng.normal(0, 0.15, n)
    yaw = np.mod(yaw + np.pi, 2 * np.pi) - np.pi
    return np.stack([x, y, grid.base_z(x, y), yaw], 1)


def _longest_route(grid: StreetGrid, rng: np.random.Generator) -> np.ndarray:
    """(M, 2) x, y of the cells of the longest route in the largest connected open area of `grid`: from the cell
    farthest from a random start to the cell farthest from that, the shortest way with the middle of the
    street preferred, in a random direction."""
    count, labels = cv2.connectedComponents(grid.ok.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(np.bincount(labels.ravel(), minlength=count)[1:]))
    cells = np.flatnonzero(labels.ravel() == largest)
    index = np.full(labels.size, -1)
    index[cells] = np.arange(len(cells))
    h, w = labels.shape
    r, c = np.divmod(cells, w)
    rows, cols, costs = [], [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):
        rr, cc = r + dr, c + dc
        inside = (rr < h) & (cc >= 0) & (cc < w)
        j = np.full(len(cells), -1)
        j[inside] = index[rr[inside] * w + cc[inside]]
        k = j >= 0
        # metres, dearer near obstacles: the route keeps to the middle of the street
        mid = 0.5 * (grid.free[r[k], c[k]] + grid.free[rr[k], cc[k]])
        rows.append(np.flatnonzero(k))
        cols.append(j[k])
        costs.append(np.hypot(dr, dc) * grid.cell_m * (1 + 4 / mid))
    graph = csr_matrix(
        (np.concatenate(costs), (np.concatenate(rows), np.concatenate(cols))), (len(cells),) * 2
    )
    far = dijkstra(graph, directed=False, indices=int(rng.integers(len(cells))))
    a = int(np.argmax(np.where(np.isfinite(far), far, -1)))
    dist, pred = dijkstra(graph, directed=False, indices=a, return_predecessors=True)
    route = [int(np.argmax(np.where(np.isfinite(dist), dist, -1)))]
    while pred[route[-1]] >= 0:
        route.append(int(pred[route[-1]]))
    if rng.random() < 0.5:
        route.reverse()
    return grid.lo + (np.column_stack([c[route], r[route]]) + 0.5) * grid.cell_m


def street_drive(cloud: ColoredCloud, n: int, rng: np.random.Generator, step_m: float = 0.8) -> np.ndarray:
    """(n, 4) base_link x, y, z, grid yaw of one continuous drive through the open street space, step_m apart
    (at 10 Hz, 10 step_m m/s), for the `sequence` protocol on a site given as geometry: along the longest route
    (`_longest_route`), smoothed; a drive longer than the route turns round at its end and comes back. Raises
    ValueError when the cloud has no open street."""
    grid = StreetGrid.of(cloud)
    xy = _longest_route(grid, rng)
    if len(xy) > 5:  # the grid's staircase smoothed, the ends kept
        xy[2:-2] = cv2.blur(xy[:, None, :], (1, 5), borderType=cv2.BORDER_REPLICATE)[2:-2, 0]
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(xy, axis=0).T))])
    if arc[-1] < step_m:
        raise ValueError("the open street space in the cloud is too small for a drive")
    s = np.arange(n) * step_m % (2 * arc[-1])
    back = s > arc[-1]
    s = np.where(back, 2 * arc[-1] - s, s)
    x, y = np.interp(s, arc, xy[:, 0]), np.interp(s, arc, xy[:, 1])
    ahead = np.minimum(s + 0.5 * step_m, arc[-1]), np.maximum(s - 0.5 * step_m, 0)
    tx = np.interp(ahead[0], arc, xy[:, 0]) - np.interp(ahead[1], arc, xy[:, 0])
    ty = np.interp(ahead[0], arc, xy[:, 1]) - np.interp(ahead[1], arc, xy[:, 1])
    yaw = np.arctan2(ty, tx) + np.where(back, np.pi, 0.0)
    yaw = np.mod(yaw + np.pi, 2 * np.pi) - np.pi
    return np.column_stack([x, y, grid.base_z(x, y), yaw])


def raycast_site(
    site: Path,
    out: Path,
    n_frames: int = 200,
    seed: int = 0,
    progress: bool = True,
    drive: bool = False,
    margin_m: float = MARGIN_M,
) -> Path:
    """A labelled KITTI-layout drive of n_frames scans ray-cast at random street-level poses of a site given
    as geometry (`site/cloud.ply`, in the CRS of `site/ortho.tif`), or with `drive` along one continuous
    drive through its streets at 10 Hz (`street_drive`: what the `sequence` protocol needs), with a sensor
    drawn like the synthetic towns' (range, dropout, reflectance response). Random poses stand at least
    margin_m inside the geometry's extent: a scan near its edge sees half a world while the orthophoto shows the
    whole, which no real drive meets. Built once: an existing drive made with the same arguments is reused."""
    site, out = Path(site), Path(out)
    recipe = (
        {"site": site.name, "n_frames": n_frames, "seed": seed}
        | ({"drive": True} if drive else {})
        | ({"margin_m": margin_m} if margin_m != MARGIN_M and not drive else {})
    )
    stamp = out / "raycast.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == recipe:
        return out
    rng = np.random.default_rng(seed)
    cloud = read_ply(site / "cloud.ply")
    frame = MapFrame.from_any(GeoTiffSource(site / "ortho.tif").crs)
    poses = street_drive(cloud, n_frames, rng) if drive else street_poses(cloud, n_frames, rng, margin_m)
    scene = CloudScene(cloud)
    sim = scene.simulator(sample_sensor(rng))
    base_from_velo = rigid_inverse(KITTI_T_IMU_TO_VELO)
    writer = DriveWriter(out, frame)
    write_calib(out / "calib_imu_to_velo.txt", KITTI_T_IMU_TO_VELO)
    for i, (x, y, z, yaw) in enumerate(tqdm(poses, desc=f"ray-cast {site.name}", disable=not progress)):
        scan = scene.scan(sim, world_from_base(x, y, z, 0.0, 0.0, yaw) @ base_from_velo, rng)
        writer.add(scan, START_TIME + i * 0.1, float(x), float(y), float(yaw), float(z))
    writer.close()
    stamp.write_text(json.dumps(recipe))
    return out
