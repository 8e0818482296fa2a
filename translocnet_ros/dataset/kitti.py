"""Reader for one drive in the KITTI raw layout; real KITTI drives load unchanged.

Ground truth is the IMU/OXTS frame (= base_link), converted from OXTS lat/lon/true heading into the
orthophoto's projected CRS with the meridian convergence applied.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np

from translocnet_ros.dataset.reflectance import to_reflectance
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D, rigid_inverse, transform_cloud

OXTS_FIELDS = [
    "lat",
    "lon",
    "alt",
    "roll",
    "pitch",
    "yaw",
    "vn",
    "ve",
    "vf",
    "vl",
    "vu",
    "ax",
    "ay",
    "az",
    "af",
    "al",
    "au",
    "wx",
    "wy",
    "wz",
    "wf",
    "wl",
    "wu",
    "pos_accuracy",
    "vel_accuracy",
    "navstat",
    "numsats",
    "posmode",
    "velmode",
    "orimode",
]


class DatasetError(ValueError):
    """The folder is not a readable drive in the KITTI raw layout."""


def read_calib(path: Path) -> np.ndarray:
    """4x4 transform from a KITTI calib file ('R:' 9 values, 'T:' 3 values): p_velo = T @ p_imu."""
    vals = {}
    for line in Path(path).read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.strip() in ("R", "T"):
            vals[key.strip()] = np.array(rest.split(), dtype=float)
    if vals.get("R", np.empty(0)).size != 9 or vals.get("T", np.empty(0)).size != 3:
        raise DatasetError(f"{path}: expected 'R:' with 9 values and 'T:' with 3")
    t = np.eye(4)
    t[:3, :3] = vals["R"].reshape(3, 3)
    t[:3, 3] = vals["T"]
    return t


def write_calib(path: Path, t_imu_to_velo: np.ndarray) -> None:
    r = " ".join(f"{v:.6e}" for v in t_imu_to_velo[:3, :3].ravel())
    tr = " ".join(f"{v:.6e}" for v in t_imu_to_velo[:3, 3])
    Path(path).write_text(f"calib_time: generated\nR: {r}\nT: {tr}\n")


def rescan_drive(drive: KittiDrive, out: Path, scan_of: Callable[[int], np.ndarray]) -> Path:
    """A copy of `drive` at `out` with the same OXTS, timestamps and calibration but each frame's scan replaced
    by `scan_of(frame)` ((N, 4) in the LiDAR frame): experiments that change only the scans."""
    out = Path(out)
    data = out / "velodyne_points" / "data"
    data.mkdir(parents=True, exist_ok=True)
    shutil.copytree(drive.path / "oxts", out / "oxts", dirs_exist_ok=True)
    shutil.copyfile(
        drive.path / "velodyne_points" / "timestamps.txt", out / "velodyne_points" / "timestamps.txt"
    )
    write_calib(out / "calib_imu_to_velo.txt", drive.t_imu_to_velo)
    for f in drive.frames:
        scan_of(f).astype("<f4").tofile(data / f"{f:010d}.bin")
    return out


class DriveWriter:
    """Writes a labelled KITTI-layout drive frame by frame (scan, OXTS from a map-grid pose, timestamps,
    gt_grid.csv): the synthetic towns and the scans ray-cast from a real site's geometry share one format."""

    def __init__(self, out: Path, frame: MapFrame):
        self.out, self.frame = Path(out), frame
        (self.out / "velodyne_points" / "data").mkdir(parents=True, exist_ok=True)
        (self.out / "oxts" / "data").mkdir(parents=True, exist_ok=True)
        self._stamps: list[str] = []
        self._gt: list[list] = []

    def add(
        self,
        scan_velo: np.ndarray,
        t: float,
        x: float,
        y: float,
        grid_yaw: float,
        alt: float,
        roll: float = 0.0,
        pitch: float = 0.0,
    ) -> None:
        """One frame: (N, 4) scan in the LiDAR frame; base_link at map (x, y, alt), yaw from grid east."""
        i = len(self._stamps)
        scan_velo.astype("<f4").tofile(self.out / "velodyne_points" / "data" / f"{i:010d}.bin")
        lat, lon = self.frame.to_latlon(x, y)
        vals = np.zeros(len(OXTS_FIELDS))
        vals[:6] = [lat, lon, alt, roll, pitch, float(self.frame.grid_to_true_yaw(grid_yaw, lat, lon))]
        vals[-7:] = [0.02, 0.02, 4, 10, 5, 5, 5]
        (self.out / "oxts" / "data" / f"{i:010d}.txt").write_text(
            " ".join(f"{v:.12f}" if k < 2 else f"{v:.9g}" for k, v in enumerate(vals)) + "\n"
        )
        self._stamps.append(format_timestamp(t))
        self._gt.append([i, f"{x:.4f}", f"{y:.4f}", f"{grid_yaw:.9f}", f"{alt:.4f}"])

    def close(self) -> Path:
        for sub in ("velodyne_points", "oxts"):
            (self.out / sub / "timestamps.txt").write_text("\n".join(self._stamps) + "\n")
        with open(self.out / "gt_grid.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["frame", "E", "N", "grid_yaw_rad", "alt"])
            w.writerows(self._gt)
        return self.out


def read_timestamps(path: Path) -> np.ndarray:
    """Seconds since the epoch (float64) of 'YYYY-MM-DD HH:MM:SS.fffffffff' lines."""
    out = []
    for line in Path(path).read_text().split("\n"):
        line = line.strip()
        if not line:
            continue
        day, _, frac = line.partition(".")
        base = datetime.strptime(day, "%Y-%m-%d %H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
        out.append(base + float("0." + (frac or "0")))
    return np.array(out)


def format_timestamp(t: float) -> str:
    sec = int(np.floor(t))
    ns = int(round((t - sec) * 1e9))
    if ns >= 1_000_000_000:
        sec, ns = sec + 1, ns - 1_000_000_000
    return datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%d %H:%M:%S") + f".{ns:09d}"


def read_scan(path: Path) -> np.ndarray:
    """(N, 4) float32 x, y, z, reflectance (0..1, dataset/reflectance.py) in the LiDAR frame."""
    raw = np.fromfile(path, dtype="<f4")
    if raw.size % 4:
        raise DatasetError(f"{path}: {raw.size} floats is not a multiple of 4")
    return to_reflectance(raw.reshape(-1, 4))[0]


@dataclass(frozen=True)
class GroundTruth:
    """Per-frame base_link pose in the map CRS."""

    poses: list[Pose2D]
    alt: np.ndarray

    def xy_yaw(self) -> np.ndarray:
        return np.array([[p.x, p.y, p.yaw] for p in self.poses])


class KittiDrive:
    """One drive folder: velodyne_points/, oxts/, and calib_imu_to_velo.txt here or in the parent."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.velo_dir = self.path / "velodyne_points" / "data"
        self.oxts_dir = self.path / "oxts" / "data"
        for d in (self.velo_dir, self.oxts_dir):
            if not d.is_dir():
                raise DatasetError(f"{self.path}: missing {d.relative_to(self.path)}/")
        scans = {int(p.stem): p for p in self.velo_dir.glob("*.bin")}
        oxts = {int(p.stem) for p in self.oxts_dir.glob("*.txt")}
        self.frames = sorted(set(scans) & oxts)
        if not self.frames:
            raise DatasetError(f"{self.path}: no frame has both a scan and an OXTS record")
        self._scans = scans

    @cached_property
    def calib_path(self) -> Path:
        for d in (self.path, self.path.parent):
            if (d / "calib_imu_to_velo.txt").is_file():
                return d / "calib_imu_to_velo.txt"
        raise DatasetError(f"{self.path}: no calib_imu_to_velo.txt here or in the parent folder")

    @cached_property
    def t_imu_to_velo(self) -> np.ndarray:
        return read_calib(self.calib_path)

    @cached_property
    def t_velo_to_base(self) -> np.ndarray:
        """Maps LiDAR-frame points into base_link (= IMU)."""
        return rigid_inverse(self.t_imu_to_velo)

    @cached_property
    def timestamps(self) -> np.ndarray:
        ts = read_timestamps(self.path / "velodyne_points" / "timestamps.txt")
        return ts[self.frames] if ts.size > max(self.frames) else ts

    @cached_property
    def oxts(self) -> np.ndarray:
        """(n_frames, 30) OXTS records, columns as OXTS_FIELDS."""
        rows = []
        for f in self.frames:
            vals = (self.oxts_dir / f"{f:010d}.txt").read_text().split()
            if len(vals) < 6:
                raise DatasetError(f"{self.oxts_dir}/{f:010d}.txt: need at least lat lon alt roll pitch yaw")
            rows.append(np.array(vals[:30] + ["0"] * (30 - len(vals[:30])), dtype=float))
        return np.stack(rows)

    def ground_truth(self, frame: MapFrame) -> GroundTruth:
        lat, lon, alt, yaw = self.oxts[:, 0], self.oxts[:, 1], self.oxts[:, 2], self.oxts[:, 5]
        x, y = frame.to_map(lat, lon)
        gyaw = frame.true_to_grid_yaw(yaw, lat, lon)
        return GroundTruth([Pose2D(float(a), float(b), float(c)) for a, b, c in zip(x, y, gyaw)], alt.copy())

    def scan_velo(self, frame: int) -> np.ndarray:
        return read_scan(self._scans[frame])

    def scan_base(self, frame: int) -> np.ndarray:
        """(N, 4) points in base_link, reflectance kept."""
        return transform_cloud(self.scan_velo(frame), self.t_velo_to_base)
