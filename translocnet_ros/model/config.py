"""Geometry and size of the model; saved beside the exported TorchScript and checked when it is loaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ModelConfig:
    m_per_px: float = 0.5  # resolution of the input rasters (LiDAR BEV, aerial patch)
    stride: int = 2  # features and the likelihood map are this much coarser (1 m), refined sub-cell
    bev_radius_m: float = 32.0  # LiDAR template: a square of 2 * radius around the vehicle
    bev_channels: int = 8
    width: int = 24  # channels of the first encoder stage (doubling-ish per stage)
    match_dim: int = 16  # per-cell matching feature size
    attn_dim: int = 64
    attn_heads: int = 4
    ground_block_m: float = 4.0
    max_height_m: float = 8.0
    # aerial input normalization: "fixed" (training-set RGB statistics) or "patch" (each patch standardized
    # per channel, so brightness, contrast and colour cast of another camera or season cancel out)
    aerial_norm: str = "fixed"

    @property
    def out_m_per_px(self) -> float:
        return self.m_per_px * self.stride

    @property
    def bev_px(self) -> int:
        return int(round(2 * self.bev_radius_m / self.m_per_px))

    def aerial_m(self, window_m: float) -> float:
        """Side of the aerial patch a +-window_m search needs: every position's template must fit in it."""
        return 2 * (window_m + self.bev_radius_m)

    def aerial_px(self, window_m: float) -> int:
        return int(round(self.aerial_m(window_m) / self.m_per_px))

    def to_dict(self) -> dict:
        return asdict(self)
