"""`translocnet demo`: the localizer node and a drive replay as separate ROS 2 processes, poses collected
and scored against ground truth, a picture of estimates over the orthophoto.

Also the harness of the integration tests (`run_live`), so the README's demo and CI exercise one path.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from translocnet_ros.localization.translocnet import DEFAULT_MODEL


@dataclass
class LiveResult:
    poses: list[tuple[float, float, float, float, float]] = field(
        default_factory=list
    )  # stamp, x, y, yaw, conf
    transforms: list[tuple[float, str, str, np.ndarray]] = field(
        default_factory=list
    )  # stamp, parent, child, 4x4
    static_parents: set[tuple[str, str]] = field(default_factory=set)  # (parent, child) seen on /tf_static
    diagnostics: list[tuple[int, str, dict]] = field(default_factory=list)
    node_log: str = ""
    node_alive: bool = False
    node_returncode: int | None = None  # after the harness stopped it with SIGTERM


def _python_cmd(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def replay_waits(source: Path, replay_args: list) -> list[str]:
    """--wait-for-subscriber arguments for a replay of `source` into the node: each of the node's inputs that the
    replay publishes must be matched before the first message (DDS discovery between processes takes from
    milliseconds to seconds on a loaded machine; a fixed start delay lost the first clouds). The collector also
    listens to /tf and /tf_static, so those need two subscribers."""
    from translocnet_ros.ros import replay

    parser = argparse.ArgumentParser()
    replay.add_arguments(parser)
    topics = replay.source_topics(parser.parse_args([str(source), *replay_args]))
    inputs = {replay.LIDAR_TOPIC: 1, replay.GNSS_TOPIC: 1, "/tf": 2, "/tf_static": 2}
    return [a for t, n in inputs.items() if t in topics for a in ("--wait-for-subscriber", f"{t}:{n}")]


def run_live(
    drive: Path | None,
    imagery: str,
    method: str,
    params: dict | None = None,
    replay_args: list | None = None,
    timeout_s: float = 120.0,
    publish=None,
    settle_s: float = 3.0,
    initial_pose=None,
) -> LiveResult:
    """Start the node (own process), optionally replay `drive` (own process), collect what the node publishes.

    `publish(node)`, if given, runs in the collector process instead of / before a replay (bad-input tests)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.geo.pose import quaternion_to_yaw
    from translocnet_ros.geo.tf_tree import make_transform
    from translocnet_ros.ros.convert import stamp_to_sec
    from translocnet_ros.ros.localizer_node import POSE_QOS
    from translocnet_ros.ros.transforms import TF_QOS, TF_STATIC_QOS

    ros_params = {"imagery": imagery, "method": method, "use_sim_time": drive is not None, **(params or {})}
    args = ["--ros-args", "-r", "points:=/kitti/velo/pointcloud", "-r", "gnss/fix:=/kitti/oxts/gps/fix"]
    for k, v in ros_params.items():
        val = "''" if v == "" else (str(v).lower() if isinstance(v, bool) else str(v))
        args += ["-p", f"{k}:={val}"]
    node_proc = subprocess.Popen(
        _python_cmd("translocnet_ros.ros.localizer_node") + args,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    res = LiveResult()
    rclpy.init()
    node = rclpy.create_node("translocnet_demo_collector")

    def on_pose(m):
        p = m.pose.pose
        yaw = quaternion_to_yaw(p.orientation.x, p.orientation.y, p.orientation.z, p.orientation.w)
        res.poses.append(
            (stamp_to_sec(m.header.stamp), p.position.x, p.position.y, yaw, m.pose.covariance[0])
        )

    def on_tf(m):
        for t in m.transforms:
            tr, r = t.transform.translation, t.transform.rotation
            res.transforms.append(
                (
                    stamp_to_sec(t.header.stamp),
                    t.header.frame_id,
                    t.child_frame_id,
                    make_transform([tr.x, tr.y, tr.z], [r.x, r.y, r.z, r.w]),
                )
            )

    def on_diag(m):
        for s in m.status:
            if "translocnet" in s.name:
                res.diagnostics.append((s.level[0], s.message, {kv.key: kv.value for kv in s.values}))

    node.create_subscription(PoseWithCovarianceStamped, "/localizer/pose", on_pose, POSE_QOS)
    node.create_subscription(TFMessage, "/tf", on_tf, TF_QOS)
    node.create_subscription(
        TFMessage,
        "/tf_static",
        lambda m: res.static_parents.update((t.header.frame_id, t.child_frame_id) for t in m.transforms),
        TF_STATIC_QOS,
    )
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    replay = None
    try:
        deadline = time.monotonic() + timeout_s
        while not res.diagnostics and time.monotonic() < deadline and node_proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)  # the node is up once it reports diagnostics
        if initial_pose is not None:  # as a user clicking "2D Pose Estimate" in RViz
            from translocnet_ros.ros.convert import pose_msg

            pub = node.create_publisher(PoseWithCovarianceStamped, "/initialpose", 10)
            msg = pose_msg(
                initial_pose,
                np.diag([25.0, 25.0, np.radians(10) ** 2]),
                "map",
                node.get_clock().now().to_msg(),
            )
            for _ in range(5):
                pub.publish(msg)
                end = time.monotonic() + 0.2
                while time.monotonic() < end:
                    rclpy.spin_once(node, timeout_sec=0.05)
        if publish is not None:
            publish(node, res)
        if drive is not None:
            args = [str(drive), "--clock", *(replay_args or [])]
            replay = subprocess.Popen(
                [*_python_cmd("translocnet_ros.cli"), "replay", *args, *replay_waits(drive, args[1:])]
            )
            while replay.poll() is None and time.monotonic() < deadline:
                rclpy.spin_once(node, timeout_sec=0.05)
        end = time.monotonic() + settle_s
        while time.monotonic() < min(end, deadline):
            rclpy.spin_once(node, timeout_sec=0.05)
        res.node_alive = node_proc.poll() is None
    finally:
        for proc in (replay, node_proc):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:  # longer than the node's own 10 s wait for a worker still inside a scan (destroy_node)
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        res.node_returncode = node_proc.returncode
        res.node_log = node_proc.stdout.read() if node_proc.stdout else ""
        node.destroy_node()
        rclpy.try_shutdown()
    return res


def score(drive_dir: Path, crs, res: LiveResult):
    """Ground truth at each published pose's stamp (the scan's stamp) -> (gt (N, 3), est (N, 3))."""
    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.geo.crs import MapFrame

    drive = KittiDrive(drive_dir)
    gt_all = drive.ground_truth(MapFrame.from_any(crs)).xy_yaw()
    ts = drive.timestamps
    gt, est = [], []
    for stamp, x, y, yaw, _ in res.poses:
        k = int(np.argmin(np.abs(ts - stamp)))
        if abs(ts[k] - stamp) < 0.02:
            gt.append(gt_all[k])
            est.append([x, y, yaw])
    return np.array(gt).reshape(-1, 3), np.array(est).reshape(-1, 3)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method", default="auto", help="translocnet | ncc | auto (translocnet when a model exists)"
    )
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--data", type=Path, default=Path("data/synth"))
    p.add_argument(
        "--rate",
        type=float,
        default=0.2,
        help="replay speed (1 = real time, 10 Hz scans); 0.2 by default: on a 2-core CPU the default model (8 "
        "views + NCC evidence) takes about 1 s per scan, and at real time most scans would be superseded",
    )
    p.add_argument("--gnss-noise-m", type=float, default=3.0)


def run(args) -> int:
    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.evaluation.metrics import summarize
    from translocnet_ros.evaluation.plots import plot_run
    from translocnet_ros.geo.crs import MapFrame
    from translocnet_ros.imagery.geotiff import GeoTiffSource
    from translocnet_ros.synth.cli import build
    from translocnet_ros.synth.splits import split_towns

    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    name, spec = split_towns("demo")[0]
    town = args.data / name
    build([(town, spec)], force=False)
    method = args.method
    if method == "auto":
        method = "translocnet" if DEFAULT_MODEL.exists() else "ncc"
    print(
        f"[demo] node ({method}) and replay of {town.name}/drive_00 as separate ROS 2 processes: initial pose "
        f"7 m / 7 deg off, GNSS with {args.gnss_noise_m} m noise, simulated odometry, {args.rate}x real time"
    )
    src = GeoTiffSource(town / "ortho.tif")
    first = KittiDrive(town / "drive_00").ground_truth(MapFrame.from_any(src.crs)).poses[0]
    res = run_live(
        town / "drive_00",
        str(town / "ortho.tif"),
        method,
        params={"points_reliable": True},
        replay_args=["--odom", "--gnss-noise-m", str(args.gnss_noise_m), "--rate", str(args.rate)],
        timeout_s=600,
        initial_pose=first.offset(6.0, -4.0, np.radians(7.0)),
    )
    gt, est = score(town / "drive_00", src.crs, res)
    args.out.mkdir(parents=True, exist_ok=True)
    last = res.diagnostics[-1] if res.diagnostics else (None, "no diagnostics", {})
    print(f"[demo] node diagnostics: {last[1]} | " + ", ".join(f"{k}: {v}" for k, v in last[2].items()))
    if len(gt) == 0:
        print("[demo] no pose was published; node log:\n" + res.node_log[-3000:])
        return 1
    s = summarize(
        gt,
        est,
        np.zeros(len(gt)),
        method,
        "live (initial pose + GNSS + odometry through the temporal filter)",
        last[2].get("device", "?"),
    )
    s.pop("latency_ms")
    (args.out / "live.json").write_text(json.dumps(s, indent=2) + "\n")
    plot_run(
        args.out / "live.png", src, gt, est, f"live node ({method}) on {town.name}: {len(gt)} published poses"
    )
    pe = s["position_error_m"]
    print(
        f"[demo] {len(gt)} poses published for {spec.n_frames} scans; position error mean {pe['mean']:.2f} m, "
        f"median {pe['median']:.2f} m; yaw error median {s['yaw_error_deg']['median']:.2f} deg; "
        f"lateral < 1 m: {s['lateral_recall']['1m']:.0%}, longitudinal < 1 m: {s['longitudinal_recall']['1m']:.0%}"
    )
    print(f"[demo] wrote {args.out / 'live.json'} and {args.out / 'live.png'}")
    return 0
