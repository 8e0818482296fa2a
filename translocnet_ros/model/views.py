"""Views of one localization problem: the world mirrored and turned by quarter turns about the prior.

A sample seen from another heading is the same problem with the scan, the imagery, the headings and the target
cell transformed together. Training draws views as augmentation (`train --dihedral`), so that no sun azimuth,
relief lean or street heading is special; inference can average the volumes of several views
(`TransLocNetLocalizer(views=...)`), which cancels what heading-specific bias a model has left.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WorldTurn:
    """The world of a sample mirrored across the east axis (optional) and then turned `quarter` x 90 deg
    counter-clockwise about the patch centre: the same localization problem seen from another heading. The
    scan stays in the vehicle frame (only mirrored), headings turn with the world."""

    quarter: int
    mirror: bool

    def image(self, img: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.rot90(img[::-1] if self.mirror else img, self.quarter))

    def scan(self, pts: np.ndarray) -> np.ndarray:
        if not self.mirror:
            return pts
        out = pts.copy()
        out[:, 1] = -out[:, 1]
        return out

    def cell(self, di: int, dj: int) -> tuple[int, int]:
        """(row, column) offset of a cell from the centre, after the turn."""
        di = -di if self.mirror else di
        for _ in range(self.quarter % 4):
            di, dj = -dj, di
        return di, dj

    def yaw_bin(self, k: int, bins: int) -> int:
        """Index of a yaw hypothesis among `bins` symmetric about the prior's heading, after the turn."""
        return bins - 1 - k if self.mirror else k

    def yaw(self, yaw: float) -> float:
        return (-yaw if self.mirror else yaw) + self.quarter * np.pi / 2


# test-time view sets: the identity, a half turn, the four quarter turns, and those four mirrored too
VIEWS = {
    1: (WorldTurn(0, False),),
    2: (WorldTurn(0, False), WorldTurn(2, False)),
    4: tuple(WorldTurn(q, False) for q in range(4)),
    8: tuple(WorldTurn(q, m) for m in (False, True) for q in range(4)),
}
