"""Robustness checks for the `sequence` protocol (issue 10): bad scans injected into a drive, and a kidnapping.

Bad scans are what a vehicle really meets: a scan matched against the wrong place (here: a scan from elsewhere in
the same town), an empty one (sensor drop-out) and a half-occluded one (a truck alongside). A kidnapping teleports
the vehicle while the odometry notices nothing: the belief ends up `kidnap_m` away from the truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.pose import Pose2D

BAD_KINDS = ("elsewhere", "empty", "half-occluded")
ELSEWHERE_M = 30.0  # a replacement scan comes from at least this far away


@dataclass(frozen=True)
class Corruption:
    bad_fraction: float = 0.0  # share of scans replaced by a bad one (kinds in turn at random)
    kidnap_index: int | None = None  # position in the sequence where the vehicle is teleported
    kidnap_m: float = 50.0
    seed: int = 0

    def bad_kind(self, frame: int) -> str | None:
        """Which bad scan a frame gets, if any (seeded by the frame's id, so subsequences agree)."""
        rng = np.random.default_rng([self.seed, 2, frame])
        return BAD_KINDS[int(rng.integers(len(BAD_KINDS)))] if rng.random() < self.bad_fraction else None

    def scan(self, n: int, drive: KittiDrive, poses: list[Pose2D], frames: list[int]) -> np.ndarray:
        """The scan the method gets at position n of the sequence (frames: the drive's frame ids of the sequence,
        poses: their ground truth)."""
        kind = self.bad_kind(frames[n])
        rng = np.random.default_rng([self.seed, 3, frames[n]])
        if kind == "empty":
            return np.empty((0, 4), np.float32)
        if kind == "elsewhere":
            dist = np.array([np.hypot(p.x - poses[n].x, p.y - poses[n].y) for p in poses])
            far = np.flatnonzero(dist >= ELSEWHERE_M)
            m = int(rng.choice(far)) if len(far) else int(np.argmax(dist))
            return drive.scan_base(frames[m])
        scan = drive.scan_base(frames[n])
        if kind == "half-occluded":
            start = rng.uniform(-np.pi, np.pi)
            azimuth = np.mod(np.arctan2(scan[:, 1], scan[:, 0]) - start, 2 * np.pi)
            return scan[azimuth >= np.pi]
        return scan

    def odometry(self, increments: list[Pose2D]) -> list[Pose2D]:
        """The odometry with the kidnapping: at kidnap_index it misses a jump of kidnap_m in a random direction."""
        if self.kidnap_index is None:
            return increments
        heading = np.random.default_rng([self.seed, 4]).uniform(-np.pi, np.pi)
        jump = Pose2D(self.kidnap_m * np.cos(heading), self.kidnap_m * np.sin(heading), 0.0)
        out = list(increments)
        out[self.kidnap_index] = out[self.kidnap_index].compose(jump)
        return out
