"""Training samples from synthetic towns: a rasterized scan, an aerial patch around a perturbed prior, and the
cell of the true pose in the likelihood volume.

Prior offsets are whole cells and whole yaw bins, so the true pose falls exactly on a cell of the volume and
the NLL target needs no interpolation; the conv/FFT matching is translation-equivariant, so inference with
sub-cell offsets and a wider window works the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.model.config import ModelConfig
from translocnet_ros.model.rasterize import rasterize_bev
from translocnet_ros.model.views import WorldTurn
from translocnet_ros.synth.town import SHADOW_FREE_ORTHO


@dataclass(frozen=True)
class SampleConfig:
    window_m: float = 12.0  # training search window (+-), smaller than at test time to save compute
    yaw_bins: int = 21  # hypotheses around the prior ...
    yaw_step_deg: float = 1.0  # ... this far apart
    point_dropout: tuple[float, float] = (0.0, 0.3)
    intensity_jitter: float = 0.2
    color_jitter: float = 0.15
    misregistration_m: float = 0.25  # imagery shifted against the labels by up to this much
    # sensors and streets that see less: a shorter maximum range, an occluded sector (0 = off)
    range_crop_prob: float = 0.0
    range_crop_m: tuple[float, float] = (40.0, 100.0)
    sector_dropout_prob: float = 0.0
    sector_dropout_deg: tuple[float, float] = (30.0, 120.0)
    blur_prob: float = 0.0  # imagery from another camera: softer, noisier
    # imagery unlike any palette of the generator: channels swapped and re-graded, grey, equalized (0 = off)
    palette_prob: float = 0.0
    # another LiDAR's reflectance: none at all (constant) or rescaled with an offset (0 = off)
    intensity_drop_prob: float = 0.0
    # the whole sample turned by a multiple of 90 deg about the prior and sometimes mirrored (0 = off): no
    # heading of sun, relief lean or street grid is special (model/views.py: WorldTurn)
    dihedral_prob: float = 0.0
    # also return the same patch of the town's shadow-free twin orthophoto (synth/town.py), augmented alike
    shadow_twin: bool = False
    augment: bool = True


def town_drives(town: Path) -> list[tuple[Path, Path]]:
    """(drive folder, orthophoto) of every drive of a synthetic town."""
    return [(d, town / "ortho.tif") for d in sorted(town.glob("drive_*"))]


class TownFrames(Dataset):
    """All frames of the given drives, each with the orthophoto it lies on: synthetic towns' drives
    (`town_drives`) and any labelled KITTI-layout drive (real fine-tuning data), `repeat` times each."""

    def __init__(
        self,
        drives: list[tuple[Path, Path]],
        model: ModelConfig,
        sample: SampleConfig,
        seed: int = 0,
        repeat: list[int] | None = None,
    ):
        self.model, self.sample, self.seed = model, sample, seed
        self.items: list[tuple[int, int, Pose2D]] = []
        self.drives: list[KittiDrive] = []
        self.ortho_paths: list[Path] = []
        self.twin_paths: list[Path | None] = []
        self._sources: dict[tuple[int, bool], GeoTiffSource] = {}
        for n, (drive_dir, ortho) in enumerate(drives):
            src = GeoTiffSource(ortho)
            drive = KittiDrive(drive_dir)
            gt = drive.ground_truth(MapFrame.from_any(src.crs))
            d = len(self.drives)
            self.drives.append(drive)
            self.ortho_paths.append(Path(ortho))
            twin = Path(ortho).parent / SHADOW_FREE_ORTHO
            self.twin_paths.append(twin if sample.shadow_twin and twin.is_file() else None)
            self.items += [(d, k, pose) for k, pose in enumerate(gt.poses)] * (repeat[n] if repeat else 1)
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.items)

    def source(self, d: int, twin: bool = False) -> GeoTiffSource:
        # opened lazily per worker process: GDAL handles must not cross a fork
        if (d, twin) not in self._sources:
            self._sources[d, twin] = GeoTiffSource(self.twin_paths[d] if twin else self.ortho_paths[d])
        return self._sources[d, twin]

    def __getitem__(self, index: int) -> dict:
        m, s = self.model, self.sample
        rng = np.random.default_rng((self.seed, self.epoch, index))
        d, k, gt = self.items[index]
        drive = self.drives[d]
        pts = drive.scan_base(drive.frames[k])
        if s.augment:
            pts = augment_scan(pts, rng, s)
        res = m.out_m_per_px
        n_cells = int(round(s.window_m / res))
        di, dj = rng.integers(-n_cells, n_cells + 1, 2)
        half_bins = s.yaw_bins // 2
        kb = int(rng.integers(0, s.yaw_bins))
        # prior = truth moved by whole cells / bins: the truth sits at (kb, n_cells + di, n_cells + dj)
        prior = Pose2D(
            gt.x - dj * res, gt.y + di * res, gt.yaw - np.radians((kb - half_bins) * s.yaw_step_deg)
        )
        shift = rng.uniform(-s.misregistration_m, s.misregistration_m, 2) if s.augment else np.zeros(2)
        # where the truth lies inside its target cell relative to the imagery (rows down, cols right, in cells):
        # the imagery's shift seen from the patch (the sub-cell loss's target, losses.py)
        frac = (shift[1] / res, -shift[0] / res)
        window = (prior.x + shift[0], prior.y + shift[1], m.aerial_m(s.window_m), m.m_per_px)
        img = self.source(d).patch(*window).image
        twin = self.source(d, twin=True).patch(*window).image if self.twin_paths[d] is not None else None
        if s.augment:
            state = rng.bit_generator.state
            img = recolor(img, rng, s)
            if twin is not None:  # the same draws: the pair still differs only in its shadows
                replay = np.random.default_rng()
                replay.bit_generator.state = state
                twin = recolor(twin, replay, s)
        true_yaw = gt.yaw
        if s.augment and s.dihedral_prob and rng.random() < s.dihedral_prob:
            turn = WorldTurn(int(rng.integers(4)), bool(rng.random() < 0.5))
            pts, img, (di, dj), frac = turn.scan(pts), turn.image(img), turn.cell(di, dj), turn.cell(*frac)
            twin = turn.image(twin) if twin is not None else None
            prior = Pose2D(prior.x, prior.y, turn.yaw(prior.yaw))
            true_yaw = turn.yaw(true_yaw)
            kb = turn.yaw_bin(kb, s.yaw_bins)
        bev, observed = rasterize_bev(
            torch.from_numpy(pts), m.bev_px, m.m_per_px, m.ground_block_m, m.max_height_m
        )
        yaws = prior.yaw + np.radians((np.arange(s.yaw_bins) - half_bins) * s.yaw_step_deg)
        out = {
            "bev": bev,
            "observed": observed,
            "aerial": torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))),
            "yaws": torch.from_numpy(yaws.astype(np.float32)),
            "target": torch.tensor([kb, n_cells + di, n_cells + dj]),
            "frac": torch.tensor(frac, dtype=torch.float32),
            "true_yaw": torch.tensor(true_yaw, dtype=torch.float32),
            "prior": torch.tensor([prior.x, prior.y, prior.yaw], dtype=torch.float64),
        }
        if s.shadow_twin:  # a sample without a twin (real drives) pairs its patch with itself, flagged off
            out["twin"] = torch.from_numpy(
                np.ascontiguousarray((img if twin is None else twin).transpose(2, 0, 1))
            )
            out["has_twin"] = torch.tensor(twin is not None)
        return out


def recolor(img: np.ndarray, rng: np.random.Generator, s: SampleConfig) -> np.ndarray:
    """The imagery augmentations: another camera's colours, a palette, blur and noise."""
    img = jitter_colors(img, rng, s.color_jitter)
    if s.palette_prob and rng.random() < s.palette_prob:
        img = repaint(img, rng)
    if s.blur_prob and rng.random() < s.blur_prob:
        img = degrade(img, rng)
    return img


def augment_scan(pts: np.ndarray, rng: np.random.Generator, s: SampleConfig) -> np.ndarray:
    """Random dropout, and sometimes a shorter range or a blind sector, then intensity jitter. A disabled
    option draws no random numbers, so enabling one leaves the other augmentations' streams unchanged."""
    keep = rng.random(len(pts)) >= rng.uniform(*s.point_dropout)
    if s.range_crop_prob and rng.random() < s.range_crop_prob:
        keep &= np.hypot(pts[:, 0], pts[:, 1]) <= rng.uniform(*s.range_crop_m)
    if s.sector_dropout_prob and rng.random() < s.sector_dropout_prob:
        width = np.radians(rng.uniform(*s.sector_dropout_deg))
        rel = np.mod(np.arctan2(pts[:, 1], pts[:, 0]) - rng.uniform(-np.pi, np.pi), 2 * np.pi)
        keep &= rel > width
    pts = pts[keep]
    if s.intensity_drop_prob and rng.random() < s.intensity_drop_prob:
        pts[:, 3] = rng.uniform(0.0, 0.5) if rng.random() < 0.5 else pts[:, 3] * rng.uniform(0.3, 2.0)
    pts[:, 3] = np.clip(
        pts[:, 3] * rng.uniform(1 - s.intensity_jitter, 1 + s.intensity_jitter)
        + rng.normal(0, 0.02, len(pts)),
        0,
        1,
    )
    return pts


def degrade(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur and sensor noise."""
    out = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 1.5)).astype(np.float32)
    out += rng.normal(0, rng.uniform(2, 8), out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def repaint(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A palette the generator never had, keeping shapes and edges: channels permuted, each with its own gamma
    and gain; sometimes grey, sometimes locally equalized (CLAHE), as different orthophoto products look."""
    out = img[..., rng.permutation(3)].astype(np.float32) / 255.0
    out = out ** rng.uniform(0.6, 1.6, 3) * rng.uniform(0.7, 1.3, 3)
    out = np.clip(out * 255.0, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        out = np.repeat(cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if rng.random() < 0.3:
        clahe = cv2.createCLAHE(clipLimit=float(rng.uniform(1.5, 4.0)), tileGridSize=(8, 8))
        out = np.stack([clahe.apply(np.ascontiguousarray(out[..., c])) for c in range(3)], axis=-1)
    return np.ascontiguousarray(out)


def jitter_colors(img: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """Brightness, contrast, saturation and a small hue shift: imagery from another camera, season, hour."""
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + rng.uniform(-8, 8) * amount / 0.15) % 180
    hsv[..., 1] *= rng.uniform(1 - 2 * amount, 1 + 2 * amount)
    out = cv2.cvtColor(np.clip(hsv, 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    out = (out - out.mean()) * rng.uniform(1 - amount, 1 + amount) + out.mean() * rng.uniform(
        1 - amount, 1 + amount
    )
    return np.clip(out, 0, 255).astype(np.uint8)
