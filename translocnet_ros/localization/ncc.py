"""Classic baseline: LiDAR BEV edges against aerial image edges by masked normalized cross-correlation.

Building walls, curbs, poles and road-marking contrast in the scan line up with edges in the orthophoto, so
the NCC of the two edge maps, searched over position and yaw, peaks near the true pose. This is the yardstick
the learned model must beat; its settings were tuned on synthetic validation towns only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from translocnet_ros.geo.crs import wrap_angle
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.bev import BevGrid, rasterize
from translocnet_ros.localization.decode import NO_WRONG_MATCH, VolumeLocalizer
from translocnet_ros.localization.threads import limit_blas_threads
from translocnet_ros.localization.types import (
    MIN_SCAN_POINTS,
    ImagerySource,
    LocalizationError,
    ScoreVolume,
    SearchWindow,
)


@dataclass(frozen=True)
class NccConfig:
    m_per_px: float = 0.5
    template_radius_m: float = 50.0
    yaw_step_deg: float = 1.0  # known-yaw search
    coarse_yaw_step_deg: float = 3.0  # wide (unknown-yaw) search, refined around the best yaws
    structure_weight: float = 1.0
    intensity_weight: float = 0.6
    edge_sigma_px: float = 1.0
    temperature: float = 0.015  # NCC -> likelihood exp(score / T); T minimizes the true pose NLL on val towns
    min_points: int = MIN_SCAN_POINTS


def _zscore(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    v = x[mask]
    if v.size == 0 or v.std() < 1e-9:
        return np.zeros_like(x)
    return np.where(mask, (x - v.mean()) / v.std(), 0).astype(np.float32)


def _edges(gray: np.ndarray, sigma: float) -> np.ndarray:
    g = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.magnitude(gx, gy)


class NccLocalizer(VolumeLocalizer):
    name = "ncc"
    device = "cpu"

    def __init__(self, config: NccConfig | None = None):
        limit_blas_threads()
        self.cfg = config or NccConfig()
        size = int(round(2 * self.cfg.template_radius_m / self.cfg.m_per_px))
        self.grid = BevGrid(size + size % 2, self.cfg.m_per_px)
        self.temperature = self.cfg.temperature
        self.covariance_scale = 1.0
        self.wrong_match = NO_WRONG_MATCH
        self.filter_covariance_scale = 1.0
        # its correlation peaks are no calibrated likelihood: a peak away from the belief, even several in a row
        # at one place, is common while it tracks well, so the filter must not relocate on them
        self.calibrated_volumes = False

    def template(self, scan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vehicle-aligned LiDAR edge template and the mask of cells the scan observed."""
        cfg = self.cfg
        bev = rasterize(scan, self.grid)
        observed = cv2.dilate((bev.density > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        structure = cv2.GaussianBlur(np.log1p(bev.structure), (0, 0), cfg.edge_sigma_px)
        inten = np.where(bev.ground_seen, bev.ground_intensity, 0)
        inten_edges = _edges(inten, cfg.edge_sigma_px) * cv2.erode(
            bev.ground_seen.astype(np.uint8), np.ones((3, 3))
        )
        t = cfg.structure_weight * _zscore(structure, observed) + cfg.intensity_weight * _zscore(
            inten_edges, observed
        )
        return t.astype(np.float32), observed

    def _scores(self, aerial: np.ndarray, tmpl: np.ndarray, mask: np.ndarray, yaws: np.ndarray) -> np.ndarray:
        half = self.grid.size_px / 2 - 0.5
        out = []
        for yaw in yaws:
            rot = cv2.getRotationMatrix2D((half, half), float(np.degrees(yaw)), 1.0)
            t = cv2.warpAffine(tmpl, rot, tmpl.shape[::-1], flags=cv2.INTER_LINEAR)
            m = cv2.warpAffine(mask.astype(np.float32), rot, tmpl.shape[::-1], flags=cv2.INTER_NEAREST)
            out.append(cv2.matchTemplate(aerial, t, cv2.TM_CCOEFF_NORMED, mask=m))
        return np.nan_to_num(np.stack(out), nan=-1.0, posinf=-1.0, neginf=-1.0)

    def score_volume(
        self,
        scan: np.ndarray,
        imagery: ImagerySource,
        prior: Pose2D,
        window: SearchWindow,
        yaw_offsets: np.ndarray | None = None,
    ) -> ScoreVolume:
        """Scores over the window; at exactly `yaw_offsets` when given (another method's yaw grid, for fusing
        with it), else at the known-yaw steps or, for a wide window, coarse steps refined around the best."""
        cfg = self.cfg
        if len(scan) < cfg.min_points:
            raise LocalizationError(f"scan has {len(scan)} points, need at least {cfg.min_points}")
        tmpl, mask = self.template(scan)
        size_m = 2 * (window.radius_m + self.grid.radius_m)
        patch = imagery.patch(prior.x, prior.y, size_m, cfg.m_per_px)
        if patch.valid.mean() < 0.5:
            raise LocalizationError(f"prior is outside the imagery ({patch.reason})")
        gray = cv2.cvtColor(patch.image, cv2.COLOR_RGB2GRAY)
        aerial = _edges(gray, cfg.edge_sigma_px) * patch.valid
        if yaw_offsets is not None:
            offsets = np.asarray(yaw_offsets, dtype=float)
        elif window.yaw_range_rad >= np.pi - 1e-6:
            coarse = np.radians(np.arange(-180.0, 180.0, cfg.coarse_yaw_step_deg))
            s = self._scores(aerial, tmpl, mask, prior.yaw + coarse).reshape(len(coarse), -1).max(1)
            best = coarse[np.argsort(s)[-3:]]
            fine = np.unique(
                np.round(
                    np.concatenate([b + np.radians(np.arange(-3, 3.01, cfg.yaw_step_deg)) for b in best]), 9
                )
            )
            offsets = np.sort(wrap_angle(fine))
        else:
            offsets = window.yaw_offsets(np.radians(cfg.yaw_step_deg))
        scores = self._scores(aerial, tmpl, mask, prior.yaw + offsets)
        return ScoreVolume(scores, prior, offsets, cfg.m_per_px, (scores.shape[1] - 1) / 2)
