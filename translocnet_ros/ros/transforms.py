"""Transform lookups for the node: tf2_ros when it is installed, else the project's TransformTree fed from
/tf and /tf_static with the same semantics."""

from __future__ import annotations

import time

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time

from translocnet_ros.geo.tf_tree import TransformError, TransformTree, make_transform
from translocnet_ros.ros.convert import sec_to_stamp, stamp_to_sec

try:  # a real ROS 2 install
    import tf2_ros

    HAVE_TF2 = True
except ImportError:
    HAVE_TF2 = False

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
# The node listens to /tf best effort. A reliable reader delivers in order: one /tf sample lost in transport (a
# loaded machine, 2 MB clouds on the same link) holds back every later one until the writer's next heartbeat
# repairs it, seconds later, so odom -> base_link lookups at the scan's stamp failed for a run of scans. Best
# effort only loses that sample, and a lookup between its neighbours interpolates. It also matches best-effort
# /tf publishers, which a reliable reader would not.
TF_LISTEN_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE
)
TF_STATIC_QOS = QoSProfile(
    depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)


class TransformSource:
    """Lookups, plus the parent of every frame seen on /tf and /tf_static, so the node can refuse to give a
    frame a second parent."""

    def __init__(self, node: Node, tolerance_s: float = 0.1, force_fallback: bool = False):
        self.backend = "tf2_ros" if HAVE_TF2 and not force_fallback else "translocnet TransformTree"
        self.tolerance_s = tolerance_s
        self._parents: dict[str, str] = {}
        if self.backend == "tf2_ros":
            self._buffer = tf2_ros.Buffer()
            self._listener = tf2_ros.TransformListener(
                self._buffer, node, spin_thread=False, qos=TF_LISTEN_QOS, static_qos=TF_STATIC_QOS
            )
        else:
            self._tree = TransformTree(cache_time_s=20.0, tolerance_s=tolerance_s)
        from tf2_msgs.msg import TFMessage

        node.create_subscription(TFMessage, "/tf", lambda m: self._ingest(m, False), TF_LISTEN_QOS)
        node.create_subscription(TFMessage, "/tf_static", lambda m: self._ingest(m, True), TF_STATIC_QOS)

    def parent_of(self, frame: str) -> str | None:
        """The parent `frame` has on TF (from any publisher, this node included), or None."""
        return self._parents.get(frame)

    def _ingest(self, msg, static: bool) -> None:
        for t in msg.transforms:
            self._parents[t.child_frame_id] = t.header.frame_id
            if self.backend == "tf2_ros":
                continue
            tr, r = t.transform.translation, t.transform.rotation
            try:
                self._tree.set_transform(
                    t.header.frame_id,
                    t.child_frame_id,
                    stamp_to_sec(t.header.stamp),
                    [tr.x, tr.y, tr.z],
                    [r.x, r.y, r.z, r.w],
                    static,
                )
            except ValueError:
                continue  # malformed transform (zero quaternion, self-loop): ignore it like tf2 does

    def lookup(self, target: str, source: str, stamp_s: float, timeout_s: float = 0.0) -> np.ndarray:
        """4x4 taking points in `source` to `target` at `stamp_s` (0 = latest); waits up to `timeout_s` for
        transforms still in flight (as tf2's message filters do); raises TransformError."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return self._lookup(target, source, stamp_s)
            except TransformError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    def _lookup(self, target: str, source: str, stamp_s: float) -> np.ndarray:
        if target == source:
            return np.eye(4)
        if self.backend != "tf2_ros":
            return self._tree.lookup(target, source, stamp_s)
        try:
            when = Time() if stamp_s == 0 else Time.from_msg(sec_to_stamp(stamp_s))
            t = self._buffer.lookup_transform(target, source, when)
        except Exception as exc:  # tf2's Lookup/Connectivity/Extrapolation exceptions
            raise TransformError(str(exc)) from exc
        tr, r = t.transform.translation, t.transform.rotation
        return make_transform([tr.x, tr.y, tr.z], [r.x, r.y, r.z, r.w])
