"""The `localizer` node: PointCloud2 + a prior in, PoseWithCovarianceStamped + TF out (AMCL conventions).

The node only converts messages, keeps parameters, threads and timing; localization is the ROS-free engine
(localization/fusion.py): with `filter.enabled` the temporal filter that `eval --protocol sequence` runs, fed
with the odom -> base_frame motion between scans, publishing its posterior once converged.
Scans are processed on a worker thread, newest first: a scan that arrives while the previous one is being
processed replaces the waiting one (counted as superseded), so callbacks never block and latency never grows.
Every received scan ends in exactly one counter: superseded, rejected (with the reason) or localized.
"""

from __future__ import annotations

import signal
import threading
import time
import traceback
from collections import deque
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import Image, NavSatFix, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D, transform_cloud
from translocnet_ros.geo.tf_tree import TransformError
from translocnet_ros.imagery.open import open_imagery
from translocnet_ros.localization.filter import format_confidence
from translocnet_ros.localization.fusion import FilteredLocalizer, SingleScanLocalizer
from translocnet_ros.localization.methods import make_method
from translocnet_ros.localization.support import SupportedLocalizer
from translocnet_ros.localization.translocnet import DEFAULT_MODEL
from translocnet_ros.ros.convert import (
    diagnostic_status,
    likelihood_image,
    matrix_to_pose2d,
    pose2d_to_matrix,
    pose_from_msg,
    pose_msg,
    sec_to_stamp,
    stamp_to_sec,
    transform_msg,
)
from translocnet_ros.ros.memory import is_large, release_heap, use_dynamic_dds_memory
from translocnet_ros.ros.parameters import PARAMETERS, cross_check, filter_config, tracker_config
from translocnet_ros.ros.pointcloud2 import CloudFormatError, cloud_to_xyzi
from translocnet_ros.ros.transforms import TF_QOS, TransformSource
from translocnet_ros.ros.validate import clip, fix_problem, initial_pose_problem, stamp_problem

try:  # Iron and later
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

POSE_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
POINTS_DEPTH = 10  # the callback only hands the scan over, so a short queue never overflows unseen
OK, WARN, ERROR = DiagnosticStatus.OK[0], DiagnosticStatus.WARN[0], DiagnosticStatus.ERROR[0]


class LocalizerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("localizer", **kwargs)
        for name, param in PARAMETERS.items():
            self.declare_parameter(name, param.default, param.descriptor())
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        self.map_origin = np.array(p["map_origin"], float)
        self.stats = {
            "scans received": 0,
            "scans superseded": 0,
            "scans rejected": 0,
            "scans localized": 0,
            "scans lost in transport": 0,
            "poses published": 0,
            "priors rejected": 0,
            "last latency ms": "-",
            "last confidence": "-",
            "intensity": "-",  # field / divisor onto 0..1 reflectance
        }
        self.problem = ""  # why nothing is published right now ("" when all is well)
        self.notes: dict[str, str] = {}  # warnings beside the main state: degraded modes, TF, stale inputs
        self.last_rejected_prior = "-"
        self.localizer = self.imagery = self.map_frame_geo = None
        self._setup_engine()
        # the engine (thread-safe: callbacks set priors while the worker localizes)
        self.engine = (
            FilteredLocalizer(self.localizer, filter_config(p), p["confidence_publish"])
            if p["filter.enabled"]
            else SingleScanLocalizer(self.localizer, tracker_config(p))
        )

        self.tf = TransformSource(self, tolerance_s=0.0)  # no extrapolation: wait for in-flight TF instead
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", POSE_QOS)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.lik_pub = self.create_publisher(Image, "~/likelihood", 1)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        points_qos = (
            QoSProfile(depth=POINTS_DEPTH, reliability=ReliabilityPolicy.RELIABLE)
            if p["points_reliable"]
            else qos_profile_sensor_data
        )
        self.points_sub = self.create_subscription(
            PointCloud2,
            "points",
            self._on_cloud,
            points_qos,
            event_callbacks=SubscriptionEventCallbacks(message_lost=self._on_cloud_lost),
        )
        self.create_subscription(NavSatFix, "gnss/fix", self._on_fix, qos_profile_sensor_data)
        self.create_subscription(PoseWithCovarianceStamped, "/initialpose", self._on_initial_pose, 10)
        self.create_service(Trigger, "~/relocalize", self._on_relocalize)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        # diagnostics and input timeouts on the steady clock: they must flow even when sim time is not running
        self._last_scan = time.monotonic()
        self._last_fix: float | None = None
        self._throttle_window = deque(maxlen=11)  # (received, superseded) at each diagnostics tick
        self.create_timer(1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

        if len(p["initial_pose"]) == 3:
            x, y, yaw = p["initial_pose"]
            self.engine.set_initial_pose(Pose2D(x + self.map_origin[0], y + self.map_origin[1], yaw))
        self._pending: PointCloud2 | None = None
        self._cv = threading.Condition()
        self._out_lock = threading.Lock()  # held while publishing from the worker; shutdown takes it
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="localizer", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"localizer ready: method={getattr(self.localizer, 'name', '-')} "
            f"device={getattr(self.localizer, 'device', '-')} imagery={p['imagery'] or '(none)'} "
            f"transforms via {self.tf.backend}"
            + (f"; NOT localizing: {self.problem}" if self.problem else "")
        )

    # ---- set-up -------------------------------------------------------------------------------------------
    def _setup_engine(self) -> None:
        """Open imagery and model; on failure the node stays up and says why in diagnostics."""
        p = self.p
        try:
            problem = cross_check(p)
            if problem:
                raise ValueError(problem)
            if not p["imagery"]:
                raise ValueError("parameter 'imagery' is empty: give a GeoTIFF path or a tile URL template")
            self.imagery = open_imagery(
                p["imagery"],
                p["map_crs"] or None,
                timeout_s=p["tile_timeout_s"],
                **({"disk_cache": p["tile_cache_dir"]} if p["tile_cache_dir"] else {}),
            )
            self.map_frame_geo = MapFrame.from_any(self.imagery.crs)
            method = p["method"]
            model = Path(p["model_path"]) if p["model_path"] else DEFAULT_MODEL
            if method == "auto":
                method = "translocnet" if model.is_file() else "ncc"
                if method == "ncc":
                    self.notes["degraded"] = f"degraded: no model at {model}, using the classic NCC baseline"
                    self.get_logger().warning(self.notes["degraded"])
            options = (
                {
                    "device": p["device"],
                    "model_path": model,
                    "views": p["views"] or None,
                    "ncc_weight": None if p["ncc_weight"] < 0 else p["ncc_weight"],
                }
                if method == "translocnet"
                else {}
            )
            self.localizer = SupportedLocalizer(make_method(method, **options))
        except Exception as exc:
            self.problem = f"set-up failed: {exc}"
            self.get_logger().error(self.problem)

    def _on_set_parameters(self, params) -> SetParametersResult:
        """Live tunables: rclpy has already refused read-only names and out-of-range values."""
        new = {**self.p, **{q.name: q.value for q in params if q.name in PARAMETERS}}
        problem = cross_check(new)
        if problem:
            return SetParametersResult(successful=False, reason=problem)
        self.p = new
        if isinstance(self.engine, FilteredLocalizer):
            self.engine.configure(filter_config(new), new["confidence_publish"])
        else:
            self.engine.configure(tracker_config(new))
        return SetParametersResult(successful=True)

    # ---- callbacks (never block) --------------------------------------------------------------------------
    def _on_cloud(self, msg: PointCloud2) -> None:
        self.stats["scans received"] += 1
        self._last_scan = time.monotonic()
        with self._cv:
            if self._pending is not None:
                self.stats["scans superseded"] += 1
            self._pending = msg
            self._cv.notify()

    def _on_cloud_lost(self, info) -> None:
        self.stats["scans lost in transport"] += info.total_count_change

    def _reject_prior(self, what: str, problem: str) -> None:
        self.stats["priors rejected"] += 1
        self.last_rejected_prior = f"{what}: {problem}"
        self.get_logger().warning(f"{what} ignored: {problem}", throttle_duration_sec=5.0)

    def _on_fix(self, msg: NavSatFix) -> None:
        if self.map_frame_geo is None or msg.status.status < 0:  # no fix: nothing to say
            return
        problem = fix_problem(msg.latitude, msg.longitude)
        if problem:
            return self._reject_prior("NavSatFix", problem)
        self._last_fix = time.monotonic()
        x, y = self.map_frame_geo.to_map(msg.latitude, msg.longitude)
        self.engine.set_gnss(float(x), float(y))

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        if msg.header.frame_id not in ("", self.p["map_frame"]):
            return self._reject_prior(
                "/initialpose", f"frame '{clip(msg.header.frame_id)}' is not the map frame"
            )
        q = msg.pose.pose.orientation
        pos = msg.pose.pose.position
        problem = initial_pose_problem([pos.x, pos.y, pos.z], [q.x, q.y, q.z, q.w], msg.pose.covariance)
        if problem:
            return self._reject_prior("/initialpose", problem)
        pose, cov = pose_from_msg(msg)
        self.engine.set_initial_pose(
            Pose2D(pose.x + self.map_origin[0], pose.y + self.map_origin[1], pose.yaw),
            float(np.sqrt(max(cov[2, 2], 0.0))),
        )
        self.get_logger().info(
            f"initial pose ({pose.x:.1f}, {pose.y:.1f}, {np.degrees(pose.yaw):.0f} deg): wide search"
        )

    def _on_relocalize(self, request, response):
        if self.localizer is None:
            response.success, response.message = False, f"not localizing: {self.problem}"
            return response
        why_not = self.engine.relocalize()
        response.success = not why_not
        response.message = why_not or "wide search around the last estimated pose"
        return response

    # ---- worker -------------------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self._cv:
                while self._pending is None and not self._stop:
                    self._cv.wait(0.5)
                if self._stop:
                    return
                msg, self._pending = self._pending, None
            localized = self.stats["scans localized"]
            try:
                self.problem = self._process(msg) or ""
            except Exception as exc:
                self.problem = f"internal error: {exc}"
                if not self._stop:
                    self.get_logger().error(f"{self.problem}\n{traceback.format_exc()}")
            if self.stats["scans localized"] == localized:
                self.stats["scans rejected"] += 1
            if self.problem and not self._stop:
                self.get_logger().warning(self.problem, throttle_duration_sec=5.0)
            large, msg = is_large(msg), None  # drop the message before giving its memory back
            if large:
                release_heap()

    def _process(self, msg: PointCloud2) -> str | None:
        """Localize one scan; returns why nothing was published, or None."""
        if self.localizer is None:
            return self.problem or "no localizer"
        p = self.p
        problem = stamp_problem(
            msg.header.stamp.sec,
            msg.header.stamp.nanosec,
            self.get_clock().now().nanoseconds * 1e-9,
            p["max_scan_age_s"],
            p["max_scan_future_s"],
        )
        if problem:
            return problem
        stamp = stamp_to_sec(msg.header.stamp)
        try:
            cloud = cloud_to_xyzi(msg, p["max_points"], p["max_range_m"], p["intensity_full_scale"])
        except CloudFormatError as exc:
            return f"bad PointCloud2: {exc}"
        scale = f"{cloud.intensity_field or 'none'} / {cloud.intensity_divisor:g}"
        if self.stats.get("intensity") != scale:  # a driver's scale is news once, not every scan
            self.get_logger().info(
                f"LiDAR intensity onto 0..1 reflectance: field {scale} (intensity_full_scale)"
            )
        self.stats["intensity"] = scale
        if cloud.total_points > p["max_points"]:  # degraded while it lasts
            self.notes["subsampled"] = (
                f"degraded: clouds of {cloud.total_points} points subsampled to max_points {p['max_points']}"
            )
        else:
            self.notes.pop("subsampled", None)
        if len(cloud.points) < p["min_points"]:
            return f"scan has {len(cloud.points)} finite points (< min_points {p['min_points']})"
        sensor = msg.header.frame_id or p["base_frame"]
        try:
            t = self.tf.lookup(p["base_frame"], sensor, stamp, timeout_s=0.2)
        except TransformError as exc:
            return f"no transform {clip(sensor)} -> {p['base_frame']}: {clip(str(exc), 200)}"
        pts = transform_cloud(cloud.points, t)
        odom = self._odometry(stamp)
        step = self.engine.step(pts, self.imagery, odom)
        if step.fused:
            self.stats["scans localized"] += 1
            self.stats["last latency ms"] = f"{step.latency_ms:.0f}"
            self.stats["last confidence"] = format_confidence(step.estimate.confidence)
        if step.likelihood is not None:
            self._emit(self.lik_pub, likelihood_image(step.likelihood, p["map_frame"], msg.header.stamp))
        if not step.publish:
            return f"{step.reason}: pose not published" if step.fused else step.reason
        self._publish(step.estimate, odom, msg.header.stamp, stamp)
        self._prefetch_ahead(step.estimate.pose)
        return None

    def _odometry(self, stamp: float) -> Pose2D | None:
        """odom -> base at the scan's time; a missing one is reported, never silently replaced."""
        p = self.p
        if not p["odom_frame"]:
            self.notes.pop("odometry", None)
            return None
        try:
            m = self.tf.lookup(p["odom_frame"], p["base_frame"], stamp, timeout_s=0.2)
        except TransformError as exc:
            self.notes["odometry"] = (
                f"no {p['odom_frame']} -> {p['base_frame']} transform on TF at the scan's stamp within 0.2 s "
                f"({clip(str(exc), 160)}): scan fused without odometry, map -> {p['odom_frame']} not published "
                "(odom_frame:='' when there is no odometry)"
            )
            return None
        self.notes.pop("odometry", None)
        return matrix_to_pose2d(m)

    def _prefetch_ahead(self, pose: Pose2D, ahead_m: float = 25.0) -> None:
        """Tile servers: start fetching the imagery the next scans will need, along the direction of motion."""
        prefetch = getattr(self.imagery, "prefetch", None)
        if prefetch is not None:
            x, y = pose.x + ahead_m * np.cos(pose.yaw), pose.y + ahead_m * np.sin(pose.yaw)
            prefetch(x, y, 2 * (self.p["tracking_radius_m"] + 50.0), 0.5)

    def _emit(self, pub, msg) -> None:
        """Publish from the worker unless shutdown has begun (the context may already be invalid)."""
        with self._out_lock:
            if not self._stop and self.context.ok():
                pub.publish(msg)

    def _publish(self, est, odom: Pose2D | None, stamp_msg, stamp: float) -> None:
        p = self.p
        local = Pose2D(est.pose.x - self.map_origin[0], est.pose.y - self.map_origin[1], est.pose.yaw)
        self._emit(self.pose_pub, pose_msg(local, est.covariance, p["map_frame"], stamp_msg))
        self.stats["poses published"] += 1
        if not p["publish_tf"] or (p["odom_frame"] and odom is None):
            return  # without odometry map -> odom is unknown; map -> base would give base a second parent
        child = p["odom_frame"] or p["base_frame"]
        parent = self.tf.parent_of(child)
        if parent not in (None, p["map_frame"]):
            self.notes["tf"] = (
                f"map -> {child} not published: {child} already has parent '{clip(parent)}' on TF "
                "(set base_frame to the root of the robot's tree, or odom_frame)"
            )
            return
        self.notes.pop("tf", None)
        map_base = pose2d_to_matrix(local)
        m = map_base @ np.linalg.inv(pose2d_to_matrix(odom)) if p["odom_frame"] else map_base
        future = sec_to_stamp(stamp + p["transform_tolerance"])
        self._emit(self.tf_pub, TFMessage(transforms=[transform_msg(p["map_frame"], child, m, future)]))

    # ---- diagnostics --------------------------------------------------------------------------------------
    def _input_warnings(self) -> list[str]:
        """Stale inputs and degraded modes, worst first."""
        now, timeout = time.monotonic(), self.p["scan_timeout_s"]
        out = []
        if now - self._last_scan > timeout:
            what = "no scans" if self.stats["scans received"] else "no scans received yet"
            out.append(f"{what} for {now - self._last_scan:.0f} s on {self.points_sub.topic_name}")
        if self._last_fix is not None and now - self._last_fix > timeout:
            out.append(f"GNSS stale: last fix {now - self._last_fix:.0f} s ago")
        resized = getattr(self.imagery, "resized_tiles", 0)
        if resized:
            self.notes["tiles"] = f"degraded: {resized} imagery tiles had the wrong size and were resized"
        self._throttle_window.append((self.stats["scans received"], self.stats["scans superseded"]))
        received = self._throttle_window[-1][0] - self._throttle_window[0][0]
        superseded = self._throttle_window[-1][1] - self._throttle_window[0][1]
        if received >= 5 and 2 * superseded > received:
            self.notes["throttled"] = (
                f"degraded: {superseded} of {received} scans superseded in the last "
                f"{len(self._throttle_window) - 1} s (processing slower than the input)"
            )
        else:
            self.notes.pop("throttled", None)
        return out + list(self.notes.values())

    def _publish_diagnostics(self) -> None:
        warnings = self._input_warnings() if self.localizer is not None else []
        if self.problem:
            level, message = (ERROR if self.localizer is None else WARN), self.problem
        else:
            level, message = (WARN if self.engine.waiting else OK), self.engine.state_text
        if warnings:
            level = max(level, WARN)
            message = "; ".join(warnings if warnings[0].startswith("no scans") else [message, *warnings])
        values = {
            "state": self.engine.state_text,
            **self.engine.diagnostics(),
            **self.stats,
            "last rejected prior": self.last_rejected_prior,
            "last problem": self.problem or "-",
            "device": getattr(self.localizer, "device", "-"),
            "imagery": clip(self.p["imagery"], 200),
        }
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [
            diagnostic_status(
                "translocnet_ros: localizer", self.get_fully_qualified_name(), level, message, values
            )
        ]
        self.diag_pub.publish(arr)

    def destroy_node(self) -> None:
        """Stop the worker before the node's handles go: no publish after shutdown has begun."""
        with self._out_lock:
            self._stop = True
        with self._cv:
            self._cv.notify()
        self._worker.join(timeout=10.0)
        super().destroy_node()


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(args=None) -> None:
    # rclpy's own handlers would invalidate the context while the worker may still publish: stop it first
    use_dynamic_dds_memory()  # before rclpy creates the DDS participant (memory.py)
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    # SIGINT too, explicitly: a process started in the background by a non-interactive shell inherits SIGINT
    # ignored, and Python then installs no handler, so `ros2 launch`'s SIGINT would not stop the node
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    node = LocalizerNode()
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
