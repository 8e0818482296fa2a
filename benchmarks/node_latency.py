"""End-to-end latency of the node (cloud published -> pose received), its resident memory and its queue, at
10 Hz input, with the node and the replay as separate ROS 2 processes.

    python benchmarks/node_latency.py --duration 600     # the soak run
    python benchmarks/node_latency.py --duration 60      # quick look

Baseline in the same run: the same pipeline with the NCC method. Writes the `node` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.geo.crs import MapFrame  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.localization.translocnet import DEFAULT_MODEL  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_one(method: str, drive: Path, ortho: Path, duration: float) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from translocnet_ros.ros.convert import pose_msg, stamp_to_sec
    from translocnet_ros.ros.localizer_node import POSE_QOS

    src = GeoTiffSource(ortho)
    first = KittiDrive(drive).ground_truth(MapFrame.from_any(src.crs)).poses[0]
    n_frames = len(KittiDrive(drive).frames)
    loops = max(int(np.ceil(duration / (n_frames / 10.0))), 1)
    node_proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "translocnet_ros.ros.localizer_node",
            "--ros-args",
            "-p",
            f"imagery:={ortho}",
            "-p",
            f"method:={method}",
            "-p",
            "points_reliable:=true",
            "-r",
            "points:=/kitti/velo/pointcloud",
            "-r",
            "gnss/fix:=/kitti/oxts/gps/fix",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rclpy.init()
    node = rclpy.create_node("latency_probe")
    cloud_rx, pose_rx, diags, rss = {}, {}, [], []
    node.create_subscription(
        PointCloud2,
        "/kitti/velo/pointcloud",
        lambda m: cloud_rx.setdefault(stamp_to_sec(m.header.stamp), time.monotonic()),
        QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE),
    )
    node.create_subscription(
        PoseWithCovarianceStamped,
        "/localizer/pose",
        lambda m: pose_rx.setdefault(stamp_to_sec(m.header.stamp), time.monotonic()),
        POSE_QOS,
    )
    node.create_subscription(
        DiagnosticArray,
        "/diagnostics",
        lambda m: diags.append({kv.key: kv.value for kv in m.status[0].values}),
        10,
    )
    while not diags and node_proc.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.1)
    init = node.create_publisher(PoseWithCovarianceStamped, "/initialpose", 10)
    for _ in range(5):
        init.publish(
            pose_msg(
                first.offset(3.0, -2.0, 0.05),
                np.diag([9.0, 9.0, 0.01]),
                "map",
                node.get_clock().now().to_msg(),
            )
        )
        rclpy.spin_once(node, timeout_sec=0.2)
    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "translocnet_ros.cli",
            "replay",
            str(drive),
            "--odom",
            "--gnss-noise-m",
            "3",
            "--restamp",
            "--loop",
            str(loops),
        ],
        stdout=subprocess.DEVNULL,
    )
    t0, next_rss = time.monotonic(), 0.0
    while replay.poll() is None and time.monotonic() - t0 < duration + 30:
        rclpy.spin_once(node, timeout_sec=0.02)
        if time.monotonic() >= next_rss:
            rss.append((time.monotonic() - t0, rss_mb(node_proc.pid)))
            next_rss = time.monotonic() + 1.0
    end = time.monotonic() + 2
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    for p in (replay, node_proc):
        if p.poll() is None:
            p.terminate()
            p.wait(10)
    node.destroy_node()
    rclpy.try_shutdown()
    lat = np.array([1e3 * (pose_rx[s] - cloud_rx[s]) for s in pose_rx if s in cloud_rx])
    r = np.array(rss)
    last = diags[-1] if diags else {}
    half = r[:, 0] > r[-1, 0] / 2
    return {
        "method": method,
        "poses": len(lat),
        "scans": len(cloud_rx),
        "p50": np.percentile(lat, 50) if len(lat) else np.nan,
        "p95": np.percentile(lat, 95) if len(lat) else np.nan,
        "rss_peak": r[:, 1].max(),
        "rss_first_half": r[~half, 1].mean(),
        "rss_second_half": r[half, 1].mean(),
        "seconds": r[-1, 0],
        "dropped": last.get("scans superseded", "?"),
        "device": last.get("device", "?"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600.0)
    ap.add_argument(
        "--methods", nargs="+", default=["translocnet", "ncc"] if DEFAULT_MODEL.exists() else ["ncc"]
    )
    args = ap.parse_args()
    name, spec = split_towns("demo")[0]
    town = ROOT / "data" / "synth" / name
    build([(town, spec)], force=False)
    rows = [run_one(m, town / "drive_00", town / "ortho.tif", args.duration) for m in args.methods]
    lines = [
        "## Node: end-to-end latency, memory and queue at 10 Hz",
        "",
        f"Command: `python benchmarks/node_latency.py --duration {args.duration:.0f} --methods "
        f"{' '.join(args.methods)}`. Node and replay as separate "
        f"processes over Fast DDS on loopback (reliable points QoS), `{name}` looped with wall-clock stamps, "
        f"latency = pose received - the same cloud received by a probe. Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| method | device | run [s] | scans | poses | latency p50 [ms] | p95 [ms] | RSS peak [MB] | RSS 1st half | RSS 2nd half | dropped (newest-first) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['device']} | {r['seconds']:.0f} | {r['scans']} | {r['poses']} | {r['p50']:.0f} "
            f"| {r['p95']:.0f} | {r['rss_peak']:.0f} | {r['rss_first_half']:.0f} | {r['rss_second_half']:.0f} "
            f"| {r['dropped']} |"
        )
        print(r)
    write_section("node", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
