"""Pictures of a run: estimates over the orthophoto, error CDFs, and a scan over the imagery at a pose."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from translocnet_ros.evaluation.metrics import frame_errors
from translocnet_ros.geo.pose import Pose2D
from translocnet_ros.localization.types import ImagerySource


def _backdrop(ax, imagery: ImagerySource, xy: np.ndarray, margin: float = 40.0, max_px: int = 1500):
    lo, hi = xy.min(0) - margin, xy.max(0) + margin
    cx, cy = (lo + hi) / 2
    size = float(max(hi - lo))
    res = max(size / max_px, 0.2)
    patch = imagery.patch(cx, cy, size, res)
    half = size / 2
    ax.imshow(patch.image, extent=[cx - half, cx + half, cy - half, cy + half], interpolation="bilinear")


def plot_run(path: Path, imagery: ImagerySource, gt: np.ndarray, est: np.ndarray, title: str) -> None:
    e = frame_errors(gt, est)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [1.1, 1]})
    _backdrop(ax, imagery, np.concatenate([gt[:, :2], est[:, :2]]))
    ax.plot(gt[:, 0], gt[:, 1], "-", color="white", lw=2.5, label="ground truth")
    ax.plot(gt[:, 0], gt[:, 1], "-", color="black", lw=1)
    sc = ax.scatter(
        est[:, 0],
        est[:, 1],
        c=np.clip(e["position"], 0, 5),
        cmap="RdYlGn_r",
        s=14,
        vmin=0,
        vmax=5,
        edgecolors="k",
        linewidths=0.3,
        label="estimates",
        zorder=3,
    )
    fig.colorbar(sc, ax=ax, fraction=0.04, label="position error [m] (clipped at 5)")
    ax.set_title(title)
    ax.set_xlabel("map x [m]")
    ax.set_ylabel("map y [m]")
    ax.legend(loc="upper right")
    ax.ticklabel_format(useOffset=True, style="plain")
    for key, label in (
        ("position", "position [m]"),
        ("lateral", "lateral [m]"),
        ("longitudinal", "longitudinal [m]"),
        ("yaw_deg", "yaw [deg]"),
    ):
        v = np.sort(e[key])
        ax2.plot(v, np.arange(1, len(v) + 1) / len(v), label=label, lw=2)
    for t in (1, 5):
        ax2.axvline(t, color="grey", ls=":", lw=1)
    ax2.set_xscale("symlog", linthresh=0.1)
    ax2.set_xlim(0, max(float(np.max([e[k].max() for k in e])), 10))
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("error")
    ax2.set_ylabel("fraction of frames")
    ax2.set_title("error CDF")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_scan_on_imagery(
    path: Path, imagery: ImagerySource, scan: np.ndarray, pose: Pose2D, radius_m: float = 50, title: str = ""
) -> None:
    """Orthophoto crop around `pose` beside the scan's BEV (height-coloured) placed at `pose`."""
    patch = imagery.patch(pose.x, pose.y, 2 * radius_m, 0.2)
    w = pose.transform_points(scan[:, :2].astype(float)) - [pose.x, pose.y]
    keep = (np.abs(w) < radius_m).all(1)
    h = scan[keep, 2] - np.percentile(scan[:, 2], 5)
    fig, axes = plt.subplots(1, 3, figsize=(19, 6.5))
    ext = [-radius_m, radius_m, -radius_m, radius_m]
    axes[0].imshow(patch.image, extent=ext)
    axes[0].set_title("orthophoto")
    axes[1].set_facecolor("black")
    axes[1].scatter(w[keep, 0], w[keep, 1], c=np.clip(h, 0, 4), cmap="turbo", s=0.3, vmin=0, vmax=4)
    axes[1].set_title("LiDAR BEV at the true pose (height above ground, 0-4 m)")
    axes[2].imshow(patch.image, extent=ext)
    tall = h > 0.4
    axes[2].scatter(w[keep][tall, 0], w[keep][tall, 1], c="red", s=0.2, alpha=0.5)
    axes[2].set_title("overlay: returns > 0.4 m above ground")
    for a in axes:
        a.set_xlim(-radius_m, radius_m)
        a.set_ylim(-radius_m, radius_m)
        a.set_aspect("equal")
        a.plot([0, 4 * np.cos(pose.yaw)], [0, 4 * np.sin(pose.yaw)], color="cyan", lw=2)
        a.set_xlabel("east [m]")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
