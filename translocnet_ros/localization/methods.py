"""Method names accepted by `translocnet eval --method` and the node."""

from __future__ import annotations

from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import Estimate, ImagerySource, Localizer, SearchWindow


class PriorLocalizer:
    """Returns the prior unchanged: the error floor any method must beat."""

    name = "prior"
    device = "cpu"

    def localize(self, scan, imagery: ImagerySource, prior: Pose2D, window: SearchWindow) -> Estimate:
        return Estimate(prior, window.covariance(), 0.0)


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
