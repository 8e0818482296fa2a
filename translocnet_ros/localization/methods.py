"""Method names accepted by `translocnet eval --method` and the node."""

from __future__ import annotations

import numpy as np

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import Estimate, ImagerySource, Localizer, SearchWindow


class PriorLocalizer:
    """Returns the prior unchanged: the error floor any method must beat."""

    name = "prior"
    device = "cpu"

    def localize(self, scan, imagery: ImagerySource, prior: Pose2D, window: SearchWindow) -> Estimate:
        var = [window.radius_m**2 / 3, window.radius_m**2 / 3, window.yaw_range_rad**2 / 3]
        return Estimate(prior, np.diag(var), 0.0)


def make_method(name: str, **options) -> Localizer:
    """options go to the learned method (model_path, device); the classic ones take none."""
    if name == "ncc":
        from translocnet_ros.localization.ncc import NccLocalizer

        return NccLocalizer()
    if name == "prior":
        return PriorLocalizer()
    if name == "translocnet":
        from translocnet_ros.localization.translocnet import TransLocNetLocalizer

        return TransLocNetLocalizer(**options)
    raise ValueError(f"unknown method '{name}' (known: translocnet, ncc, prior)")
