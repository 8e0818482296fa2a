"""A small transform tree with tf2's lookup semantics, for machines without tf2_ros.

Static edges hold for all time; dynamic edges are interpolated (linear translation, slerp rotation) between
the two samples around the query time; a query outside a dynamic edge's history fails unless it is within
`tolerance_s` of the nearest sample; time 0 means "latest common time", as in tf2.
"""

from __future__ import annotations

import bisect
import threading
from collections import deque
from dataclasses import dataclass

import numpy as np


class TransformError(LookupError):
    """No path between the frames, or the query time is outside the buffered history."""


def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = q
    n = x * x + y * y + z * z + w * w
    if n < 1e-12:
        raise ValueError("zero quaternion")
    s = 2.0 / n
    return np.array(
        [
            [1 - s * (y * y + z * z), s * (x * y - z * w), s * (x * z + y * w)],
            [s * (x * y + z * w), 1 - s * (x * x + z * z), s * (y * z - x * w)],
            [s * (x * z - y * w), s * (y * z + x * w), 1 - s * (x * x + y * y)],
        ]
    )


def matrix_to_quat(r: np.ndarray) -> np.ndarray:
    """(x, y, z, w) of a rotation matrix (Shepperd's method)."""
    t = np.trace(r)
    if t > 0:
        s = np.sqrt(t + 1.0) * 2
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    else:
        i = int(np.argmax(np.diag(r)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = np.sqrt(1.0 + r[i, i] - r[j, j] - r[k, k]) * 2
        q = [0.0, 0.0, 0.0, (r[k, j] - r[j, k]) / s]
        q[i] = 0.25 * s
        q[j] = (r[j, i] + r[i, j]) / s
        q[k] = (r[k, i] + r[i, k]) / s
    q = np.array(q)
    return q / np.linalg.norm(q)


def slerp(q0: np.ndarray, q1: np.ndarray, t: float) -> np.ndarray:
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + t * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - t) * th) * q0 + np.sin(t * th) * q1) / np.sin(th)


def make_transform(translation, quaternion) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = quat_to_matrix(quaternion)
    m[:3, 3] = translation
    return m


@dataclass
class _Edge:
    parent: str
    static: bool
    times: list[float]
    samples: deque  # (translation (3,), quaternion (4,))


class TransformTree:
    def __init__(self, cache_time_s: float = 10.0, tolerance_s: float = 0.0):
        self.cache_time_s, self.tolerance_s = cache_time_s, tolerance_s
        self._edges: dict[str, _Edge] = {}  # child -> edge to its parent
        self._lock = threading.RLock()

    def set_transform(
        self, parent: str, child: str, stamp: float, translation, quaternion, static: bool
    ) -> None:
        if parent == child:
            raise ValueError(f"transform from '{child}' to itself")
        t = np.asarray(translation, float)
        q = np.asarray(quaternion, float)
        q = q / np.linalg.norm(q)
        with self._lock:
            e = self._edges.get(child)
            if e is None or e.parent != parent or e.static != static:
                e = self._edges[child] = _Edge(parent, static, [], deque())
            if static:
                e.times, e.samples = [0.0], deque([(t, q)])
                return
            if e.times and stamp < e.times[-1]:  # out of order: insert, keep sorted
                k = bisect.bisect(e.times, stamp)
                e.times.insert(k, stamp)
                e.samples.insert(k, (t, q))
            else:
                e.times.append(stamp)
                e.samples.append((t, q))
            while e.times and e.times[-1] - e.times[0] > self.cache_time_s:
                e.times.pop(0)
                e.samples.popleft()

    def frames(self) -> set[str]:
        with self._lock:
            return set(self._edges) | {e.parent for e in self._edges.values()}

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._edges:
            chain.append(self._edges[chain[-1]].parent)
            if len(chain) > 100:
                raise TransformError("transform tree has a loop")
        return chain

    def _edge_at(self, child: str, stamp: float) -> np.ndarray:
        e = self._edges[child]
        if e.static:
            return make_transform(*e.samples[0])
        times = e.times
        if stamp == 0.0:
            stamp = times[-1]
        if stamp < times[0] - self.tolerance_s or stamp > times[-1] + self.tolerance_s:
            raise TransformError(
                f"lookup of {e.parent} -> {child} at {stamp:.3f} s is outside the buffered "
                f"[{times[0]:.3f}, {times[-1]:.3f}] s"
            )
        if stamp <= times[0]:
            return make_transform(*e.samples[0])
        if stamp >= times[-1]:
            return make_transform(*e.samples[-1])
        k = bisect.bisect(times, stamp)
        t0, t1 = times[k - 1], times[k]
        a = (stamp - t0) / (t1 - t0)
        (p0, q0), (p1, q1) = e.samples[k - 1], e.samples[k]
        return make_transform(p0 + a * (p1 - p0), slerp(q0, q1, a))

    def latest_common_time(self, target: str, source: str) -> float:
        with self._lock:
            chain = self._chain(source) + self._chain(target)
            times = [
                self._edges[f].times[-1] for f in chain if f in self._edges and not self._edges[f].static
            ]
        return min(times) if times else 0.0

    def lookup(self, target: str, source: str, stamp: float = 0.0) -> np.ndarray:
        """4x4 transform taking points in `source` into `target` at `stamp` (seconds; 0 = latest)."""
        if stamp == 0.0:
            stamp = self.latest_common_time(target, source)
        with self._lock:
            up_s, up_t = self._chain(source), self._chain(target)
            common = next((f for f in up_s if f in up_t), None)
            if common is None:
                raise TransformError(
                    f"no transform between '{target}' and '{source}' (frames: {sorted(self.frames())})"
                )
            m_source = np.eye(4)  # source -> common
            for f in up_s[: up_s.index(common)]:
                m_source = self._edge_at(f, stamp) @ m_source
            m_target = np.eye(4)  # target -> common
            for f in up_t[: up_t.index(common)]:
                m_target = self._edge_at(f, stamp) @ m_target
        return np.linalg.inv(m_target) @ m_source
