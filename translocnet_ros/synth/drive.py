"""Vehicle trajectories along the road graph: right-hand lane, smooth corners, realistic speeds, 10 Hz."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from translocnet_ros.synth.layout import Box2, Layout


@dataclass(frozen=True)
class Trajectory:
    xy: np.ndarray  # (T, 2) town metres
    yaw: np.ndarray  # (T,) rad, CCW from x
    t: np.ndarray  # (T,) seconds


def _route(layout: Layout, rng, min_len: float, margin: float) -> np.ndarray:
    """Random walk over intersections inside the town (no U-turns), as a polyline of node positions."""
    adj = layout.adjacency()
    for m in (margin, margin / 2, 0.0):  # sparse towns may need to drive closer to their edge
        inside = {k for k in adj if all(m < v < layout.size_m - m for v in layout.nodes[k])}
        starts = [k for k in inside if any(n in inside for n in adj[k])]
        if starts:
            break
    else:
        raise RuntimeError("town has no drivable road inside it; use a larger size")
    cur = int(rng.choice(starts))
    prev, path, length = -1, [cur], 0.0
    for _ in range(10_000):
        options = [n for n in adj[cur] if n in inside and n != prev] or [n for n in adj[cur] if n in inside]
        nxt = int(rng.choice(options))
        length += float(np.linalg.norm(layout.nodes[nxt] - layout.nodes[cur]))
        prev, cur = cur, nxt
        path.append(cur)
        if length >= min_len:
            break
    return np.array(path)


def _smooth_polyline(pts: np.ndarray, step: float, corner_radius: float) -> np.ndarray:
    """Dense resampling with corners rounded by repeated moving averages."""
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    ss = np.arange(0, s[-1], step)
    dense = np.stack([np.interp(ss, s, pts[:, 0]), np.interp(ss, s, pts[:, 1])], -1)
    k = max(int(corner_radius / step), 1)
    for _ in range(3):
        padded = np.concatenate([np.repeat(dense[:1], k, 0), dense, np.repeat(dense[-1:], k, 0)])
        c = np.cumsum(padded, axis=0)
        dense = (c[2 * k :] - c[: -2 * k]) / (2 * k)
    return dense


def make_trajectory(
    layout: Layout,
    n_frames: int,
    rng,
    hz: float = 10.0,
    margin: float = 70.0,
    speed=(5.0, 12.0),
    right_hand: bool = True,
) -> Trajectory:
    """Drive on the right lane along a random route, speed varying smoothly within `speed` (m/s)."""
    v = rng.uniform(*speed)
    need = n_frames / hz * speed[1] + 50.0
    nodes = _route(layout, rng, need, margin)
    widths = [layout.road_width(int(a), int(b)) for a, b in itertools.pairwise(nodes)]
    lane = min(widths) / 4.0
    centre = _smooth_polyline(layout.nodes[nodes], 0.25, 6.0)
    d = np.gradient(centre, axis=0)
    d /= np.linalg.norm(d, axis=1, keepdims=True) + 1e-12
    right = np.stack([d[:, 1], -d[:, 0]], -1) * (1 if right_hand else -1)
    path = centre + right * lane
    s = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])
    speeds = np.clip(v + np.cumsum(rng.normal(0, 0.08, n_frames)), *speed)
    dist = np.concatenate([[0.0], np.cumsum(speeds[:-1] / hz)])
    if dist[-1] > s[-1]:
        dist *= s[-1] / dist[-1]
    x = np.interp(dist, s, path[:, 0])
    y = np.interp(dist, s, path[:, 1])
    ahead = np.minimum(dist + 1.0, s[-1])
    bx, by = (
        np.interp(np.maximum(dist - 1.0, 0), s, path[:, 0]),
        np.interp(np.maximum(dist - 1.0, 0), s, path[:, 1]),
    )
    fx, fy = np.interp(ahead, s, path[:, 0]), np.interp(ahead, s, path[:, 1])
    yaw = np.arctan2(fy - by, fx - bx)
    return Trajectory(np.stack([x, y], -1), yaw, np.arange(n_frames) / hz)


def moving_cars(layout: Layout, n_cars: int, n_frames: int, rng, hz: float = 10.0) -> list[list[Box2]]:
    """Per frame, the cars driving around town: seen by the LiDAR, absent from the orthophoto."""
    tracks = []
    for _ in range(n_cars):
        try:
            tr = make_trajectory(
                layout, n_frames, rng, hz, margin=0.0, speed=(4.0, 14.0), right_hand=rng.random() < 0.5
            )
        except RuntimeError:
            continue
        dims = rng.uniform([4.0, 1.7, 1.4], [5.2, 2.0, 1.9])
        tracks.append((tr, dims))
    return [[Box2(*tr.xy[i], tr.yaw[i], *dims) for tr, dims in tracks] for i in range(n_frames)]


def companion_vehicle(traj: Trajectory, rng, prob: float = 0.35) -> list[Box2 | None]:
    """Per frame, a van, bus or truck driving beside the ego car for part of the drive (or None): it hides a
    large sector of the scan right next to the vehicle, as real traffic does."""
    n = len(traj.t)
    out: list[Box2 | None] = [None] * n
    if rng.random() >= prob or n < 2:
        return out
    span = int(rng.uniform(0.2, 0.6) * n)
    start = int(rng.integers(0, max(n - span, 1)))
    side = rng.choice([-1.0, 1.0])
    lateral = side * rng.uniform(3.2, 4.0)
    length, width, height = rng.uniform(6, 12), rng.uniform(2.3, 2.55), rng.uniform(2.5, 3.5)
    drift = np.cumsum(rng.normal(0, 0.15, n))
    drift = 8.0 * np.tanh((drift - drift[start]) / 8.0) + rng.uniform(-4, 4)
    for i in range(start, min(start + span, n)):
        c, s = np.cos(traj.yaw[i]), np.sin(traj.yaw[i])
        x = traj.xy[i, 0] + c * drift[i] - s * lateral
        y = traj.xy[i, 1] + s * drift[i] + c * lateral
        out[i] = Box2(float(x), float(y), float(traj.yaw[i]), length, width, height, where="companion")
    return out
