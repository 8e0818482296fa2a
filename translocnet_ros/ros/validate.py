"""Checks of message values at the node's edge: stamps, /initialpose, NavSatFix, echoed strings.

Each check returns why a message is refused ("" when it is fine), so the node can say so in its log and
diagnostics. A hostile or broken sender must never turn into a prior or a published stamp.
"""

from __future__ import annotations

import numpy as np

MAX_MAP_COORD_M = 1e8  # beyond any projected CRS (UTM northings reach 1e7)


def clip(text: str, limit: int = 64) -> str:
    """A string from a message, short enough for a log line or a diagnostics value."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"


def stamp_problem(sec: int, nanosec: int, now_s: float, max_age_s: float, max_future_s: float) -> str:
    """Why a scan's header stamp cannot be used, or "". now_s is the node's clock (sim time when used)."""
    if not 0 <= nanosec < 1_000_000_000:
        return f"invalid stamp: nanosec {nanosec} (must be < 1e9)"
    if sec < 0:
        return f"invalid stamp: negative ({sec} s)"
    stamp = sec + nanosec * 1e-9
    if stamp == 0:
        return "scan has no stamp (0)"
    if now_s <= 0:
        return "the node's clock is not running (use_sim_time without /clock?)"
    if stamp - now_s > max_future_s:
        return f"scan stamp is {stamp - now_s:.1f} s in the future (> max_scan_future_s {max_future_s:g})"
    if now_s - stamp > max_age_s:
        return f"scan is {now_s - stamp:.1f} s old (> max_scan_age_s {max_age_s:g})"
    return ""


def initial_pose_problem(position, quaternion, covariance) -> str:
    """Why an /initialpose cannot be a prior, or ""."""
    xyz = np.asarray(position, float)
    q = np.asarray(quaternion, float)
    if not np.isfinite(xyz).all() or np.abs(xyz[:2]).max() > MAX_MAP_COORD_M:
        return f"position {np.array2string(xyz, precision=3)} is not finite or out of range"
    if not np.isfinite(q).all() or np.linalg.norm(q) < 1e-6:
        return (
            f"orientation {np.array2string(q, precision=3)} is not a rotation (zero or non-finite quaternion)"
        )
    cov = np.asarray(covariance, float)
    if not np.isfinite(cov).all() or (np.diag(cov.reshape(6, 6)) < 0).any():
        return "covariance is not finite or has negative variances"
    return ""


def fix_problem(latitude: float, longitude: float) -> str:
    """Why a NavSatFix position cannot be a prior, or ""."""
    if not (np.isfinite(latitude) and np.isfinite(longitude)):
        return f"latitude/longitude not finite ({latitude}, {longitude})"
    if abs(latitude) > 90 or abs(longitude) > 180:
        return f"latitude/longitude out of range ({latitude:.6g}, {longitude:.6g})"
    return ""
