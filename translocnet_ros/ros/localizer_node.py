"""The `localizer` node: PointCloud2 + a prior in, PoseWithCovarianceStamped + TF out (AMCL conventions).

The node only converts messages, keeps parameters, threads and timing; localization is the ROS-free engine.
Scans are processed on a worker thread, newest first: a scan that arrives while the previous one is being
processed replaces the waiting one (counted as dropped), so callbacks never block and latency never grows.
"""

from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseWithCovarianceStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image, NavSatFix, PointCloud2
from std_srvs.srv import Trigger
from tf2_msgs.msg import TFMessage

from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.geo.pose import Pose2D, transform_cloud
from translocnet_ros.geo.tf_tree import TransformError
from translocnet_ros.imagery.open import open_imagery
from translocnet_ros.localization.methods import make_method
from translocnet_ros.localization.tracker import State, Tracker, TrackerConfig
from translocnet_ros.localization.translocnet import DEFAULT_MODEL
from translocnet_ros.localization.types import LocalizationError
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
from translocnet_ros.ros.pointcloud2 import CloudFormatError, cloud_to_xyzi
from translocnet_ros.ros.transforms import TF_QOS, TransformSource

POSE_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
OK, WARN, ERROR = DiagnosticStatus.OK[0], DiagnosticStatus.WARN[0], DiagnosticStatus.ERROR[0]

PARAMETERS = {
    # name: (default, description)
    "method": (
        "auto",
        "translocnet (learned), ncc (classic baseline) or auto (translocnet when its model exists)",
    ),
    "model_path": ("", "TorchScript model; empty = models/translocnet.pt of this package"),
    "device": ("auto", "inference device: auto (CUDA when present), cpu or cuda"),
    "imagery": (
        "",
        "orthophoto: GeoTIFF/COG path, or XYZ tile URL template with {z}/{x}/{y} (tms:// for TMS)",
    ),
    "map_crs": ("", "projected CRS of the map frame (e.g. EPSG:32632); empty = the GeoTIFF's own CRS"),
    "map_origin": (
        [0.0, 0.0],
        "map-frame origin in map_crs coordinates (published poses are relative to it)",
    ),
    "tile_timeout_s": (2.0, "tile server: per-request timeout"),
    "tile_cache_dir": ("", "tile server: optional on-disk tile cache folder"),
    "search_radius_m": (20.0, "wide search: half-size of the position window around the prior"),
    "search_yaw_deg": (10.0, "wide search: half-range of yaw when the prior's heading is known"),
    "tracking_radius_m": (6.0, "tracking: half-size of the position window around the odometry-moved fix"),
    "tracking_yaw_deg": (6.0, "tracking: half-range of yaw"),
    "confidence_tracking": (0.5, "confidence from which the node tracks with a small window"),
    "confidence_publish": (0.2, "confidence below which no pose is published"),
    "map_frame": ("map", "global frame of the published pose"),
    "odom_frame": ("odom", "odometry frame; empty = publish map -> base_link instead of map -> odom"),
    "base_frame": ("base_link", "vehicle frame"),
    "publish_tf": (True, "publish the map -> odom (or map -> base_link) transform"),
    "transform_tolerance": (0.5, "post-date published transforms by this much [s] (as AMCL does)"),
    "points_reliable": (
        False,
        "subscribe to points with reliable QoS instead of SensorDataQoS (large clouds over "
        "a UDP-only DDS transport lose fragments when best effort)",
    ),
    "max_scan_age_s": (2.0, "scans older than this when processing starts are dropped"),
    "min_points": (500, "scans with fewer finite points are rejected"),
    "initial_pose": ([0.0], "optional [x, y, yaw] in the map frame to start from; [0.0] = none"),
}


class LocalizerNode(Node):
    def __init__(self, **kwargs):
        super().__init__("localizer", **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p = p
        self.map_origin = np.array(p["map_origin"], float)
        self.tracker = Tracker(
            TrackerConfig(
                p["search_radius_m"],
                p["search_yaw_deg"],
                p["tracking_radius_m"],
                p["tracking_yaw_deg"],
                p["confidence_tracking"],
                p["confidence_publish"],
            )
        )
        self.stats = {
            "scans received": 0,
            "scans processed": 0,
            "scans dropped (stale/superseded)": 0,
            "poses published": 0,
            "last latency ms": "-",
            "last confidence": "-",
        }
        self.problem = ""  # why nothing is published right now ("" when all is well)
        self.localizer = self.imagery = self.map_frame_geo = None
        self._setup_engine()

        self.tf = TransformSource(self, tolerance_s=0.0)  # no extrapolation: wait for in-flight TF instead
        self.pose_pub = self.create_publisher(PoseWithCovarianceStamped, "~/pose", POSE_QOS)
        self.tf_pub = self.create_publisher(TFMessage, "/tf", TF_QOS)
        self.lik_pub = self.create_publisher(Image, "~/likelihood", 1)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        points_qos = (
            QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
            if p["points_reliable"]
            else (qos_profile_sensor_data)
        )
        self.create_subscription(PointCloud2, "points", self._on_cloud, points_qos)
        self.create_subscription(NavSatFix, "gnss/fix", self._on_fix, qos_profile_sensor_data)
        self.create_subscription(PoseWithCovarianceStamped, "/initialpose", self._on_initial_pose, 10)
        self.create_service(Trigger, "~/relocalize", self._on_relocalize)
        # diagnostics on the steady clock: they must flow even when sim time (/clock) is not running
        self.create_timer(1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))

        if len(p["initial_pose"]) == 3:
            x, y, yaw = p["initial_pose"]
            self.tracker.set_initial_pose(Pose2D(x + self.map_origin[0], y + self.map_origin[1], yaw))
        self._pending: PointCloud2 | None = None
        self._cv = threading.Condition()
        self._stop = False
        self._worker = threading.Thread(target=self._work, name="localizer", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"localizer ready: method={getattr(self.localizer, 'name', '-')} device={getattr(self.localizer, 'device', '-')} "
            f"imagery={p['imagery'] or '(none)'} transforms via {self.tf.backend}"
            + (f"; NOT localizing: {self.problem}" if self.problem else "")
        )

    # ---- set-up -------------------------------------------------------------------------------------------
    def _setup_engine(self) -> None:
        """Open imagery and model; on failure the node stays up and says why in diagnostics."""
        p = self.p
        try:
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
                    self.get_logger().warning(f"no model at {model}: using the classic NCC baseline")
            options = {"device": p["device"], "model_path": model} if method == "translocnet" else {}
            self.localizer = make_method(method, **options)
        except Exception as exc:
            self.problem = f"set-up failed: {exc}"
            self.get_logger().error(self.problem)

    # ---- callbacks (never block) --------------------------------------------------------------------------
    def _on_cloud(self, msg: PointCloud2) -> None:
        self.stats["scans received"] += 1
        with self._cv:
            if self._pending is not None:
                self.stats["scans dropped (stale/superseded)"] += 1
            self._pending = msg
            self._cv.notify()

    def _on_fix(self, msg: NavSatFix) -> None:
        if (
            self.map_frame_geo is None
            or msg.status.status < 0
            or not np.isfinite([msg.latitude, msg.longitude]).all()
        ):
            return
        x, y = self.map_frame_geo.to_map(msg.latitude, msg.longitude)
        self.tracker.set_gnss(float(x), float(y))

    def _on_initial_pose(self, msg: PoseWithCovarianceStamped) -> None:
        if msg.header.frame_id not in ("", self.p["map_frame"]):
            self.get_logger().warning(
                f"/initialpose in frame '{msg.header.frame_id}' ignored (expected map frame)"
            )
            return
        pose, cov = pose_from_msg(msg)
        self.tracker.set_initial_pose(
            Pose2D(pose.x + self.map_origin[0], pose.y + self.map_origin[1], pose.yaw),
            float(np.sqrt(max(cov[2, 2], 0.0))),
        )
        self.get_logger().info(
            f"initial pose ({pose.x:.1f}, {pose.y:.1f}, {np.degrees(pose.yaw):.0f} deg): wide search"
        )

    def _on_relocalize(self, request, response):
        response.success = self.tracker.relocalize()
        response.message = (
            "wide search around the last pose" if response.success else "no pose to search around"
        )
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
            try:
                self.problem = self._process(msg) or ""
            except Exception as exc:
                self.problem = f"internal error: {exc}"
                self.get_logger().error(f"{self.problem}\n{traceback.format_exc()}")
            if self.problem:
                self.get_logger().warning(self.problem, throttle_duration_sec=5.0)

    def _process(self, msg: PointCloud2) -> str | None:
        """Localize one scan; returns why nothing was published, or None."""
        if self.localizer is None:
            return self.problem or "no localizer"
        p = self.p
        stamp = stamp_to_sec(msg.header.stamp)
        now = self.get_clock().now().nanoseconds * 1e-9
        if now - stamp > p["max_scan_age_s"] and stamp > 0:
            self.stats["scans dropped (stale/superseded)"] += 1
            return f"scan is {now - stamp:.1f} s old (> max_scan_age_s)"
        try:
            cloud = cloud_to_xyzi(msg)
        except CloudFormatError as exc:
            return f"bad PointCloud2: {exc}"
        if len(cloud.points) < p["min_points"]:
            return f"scan has {len(cloud.points)} finite points (< min_points {p['min_points']})"
        sensor = msg.header.frame_id or p["base_frame"]
        try:
            t = self.tf.lookup(p["base_frame"], sensor, stamp, timeout_s=0.2)
        except TransformError as exc:
            return f"no transform {sensor} -> {p['base_frame']}: {exc}"
        pts = transform_cloud(cloud.points, t)
        odom = None
        if p["odom_frame"]:
            try:
                odom = matrix_to_pose2d(
                    self.tf.lookup(p["odom_frame"], p["base_frame"], stamp, timeout_s=0.2)
                )
            except TransformError:
                odom = None
        prior = self.tracker.prior(odom)
        if prior is None:
            return "waiting for a prior: publish /initialpose, a GNSS fix on gnss/fix, or set initial_pose"
        t0 = time.perf_counter()
        try:
            est = self.localizer.localize(pts, self.imagery, prior.pose, prior.window)
        except LocalizationError as exc:
            return f"localization failed: {exc}"
        self.stats["scans processed"] += 1
        self.stats["last latency ms"] = f"{1e3 * (time.perf_counter() - t0):.0f}"
        self.stats["last confidence"] = f"{est.confidence:.2f}"
        if est.likelihood is not None:
            self.lik_pub.publish(likelihood_image(est.likelihood, p["map_frame"], msg.header.stamp))
        if not self.tracker.update(est, odom):
            return f"low confidence {est.confidence:.2f} (< confidence_publish): pose not published"
        self._publish(est, odom, msg.header.stamp, stamp)
        self._prefetch_ahead(est.pose)
        return None

    def _prefetch_ahead(self, pose: Pose2D, ahead_m: float = 25.0) -> None:
        """Tile servers: start fetching the imagery the next scans will need, along the direction of motion."""
        prefetch = getattr(self.imagery, "prefetch", None)
        if prefetch is not None:
            x, y = pose.x + ahead_m * np.cos(pose.yaw), pose.y + ahead_m * np.sin(pose.yaw)
            prefetch(x, y, 2 * (self.p["tracking_radius_m"] + 50.0), 0.5)

    def _publish(self, est, odom: Pose2D | None, stamp_msg, stamp: float) -> None:
        p = self.p
        local = Pose2D(est.pose.x - self.map_origin[0], est.pose.y - self.map_origin[1], est.pose.yaw)
        self.pose_pub.publish(pose_msg(local, est.covariance, p["map_frame"], stamp_msg))
        self.stats["poses published"] += 1
        if not p["publish_tf"]:
            return
        map_base = pose2d_to_matrix(local)
        if p["odom_frame"] and odom is not None:
            parent_child = (p["map_frame"], p["odom_frame"])
            m = map_base @ np.linalg.inv(pose2d_to_matrix(odom))
        else:
            parent_child = (p["map_frame"], p["base_frame"])
            m = map_base
        future = sec_to_stamp(stamp + p["transform_tolerance"])
        self.tf_pub.publish(TFMessage(transforms=[transform_msg(*parent_child, m, future)]))

    def _publish_diagnostics(self) -> None:
        if self.problem:
            level, message = (ERROR if self.localizer is None else WARN), self.problem
        else:
            level, message = (WARN if self.tracker.state == State.WAITING else OK), self.tracker.state.value
        values = {
            "state": self.tracker.state.value,
            **self.stats,
            "device": getattr(self.localizer, "device", "-"),
            "imagery": self.p["imagery"],
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
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args=None) -> None:
    rclpy.init(args=args)
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
