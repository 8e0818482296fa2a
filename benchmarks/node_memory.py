"""Resident memory of the localizer node around one huge cloud (issue 9): RSS before, peak, and after a
10-million-point PointCloud2 between normal scans, for the node as it starts by default (dynamic Fast DDS
history memory, heap trimmed after huge messages: ros/memory.py), the node with dds_dynamic_memory:=false
(rmw_fastrtps' preallocated buffers, the trim only), and a bare rclpy subscriber receiving the same cloud with
rmw_fastrtps' defaults (what DDS and message deserialization cost by themselves).

    python benchmarks/node_memory.py [--points 10000000] [--town data/synth/demo_town] [--dds-dynamic-memory]

--dds-dynamic-memory runs the bare subscriber with config/fastdds_dynamic_memory.xml too.

Each process runs on its own; prints a markdown table and writes the `node-memory` section of BENCHMARKS.md
(--no-write: print only).
"""

from __future__ import annotations

import argparse
import contextlib
import os
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
from translocnet_ros.ros.launch_args import dds_environment, dds_opt_out  # noqa: E402

TOPIC = "/memory_probe/points"


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process in MB: now, and the peak so far."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def bare_subscriber() -> None:
    """Receive clouds and drop them: the transport's own memory."""
    import rclpy
    from rclpy.executors import ExternalShutdownException
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    rclpy.init()
    node = rclpy.create_node("memory_probe_bare")
    node.create_subscription(
        PointCloud2, TOPIC, lambda m: None, QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    with contextlib.suppress(KeyboardInterrupt, ExternalShutdownException):
        rclpy.spin(node)


def measure(
    cmd: list[str], scan: np.ndarray, n_points: int, env: dict[str, str] | None = None
) -> tuple[float, float, float]:
    """(RSS before, peak, RSS after) of the process started by `cmd` (extra environment `env`) around one
    n_points cloud."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    from translocnet_ros.ros.pointcloud2 import array_to_cloud

    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})}
    )
    rclpy.init()
    node = rclpy.create_node("memory_probe_publisher")
    pub = node.create_publisher(
        PointCloud2, TOPIC, QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE)
    )

    def spin(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.05)

    def normal_scans() -> None:
        for _ in range(3):
            pub.publish(array_to_cloud(scan, "base_link", node.get_clock().now().to_msg()))
            spin(3.0)

    try:
        spin(10.0)  # start-up, model warm-up, discovery
        normal_scans()
        before = memory_mb(proc.pid)[0]
        reps = n_points // len(scan) + 1
        rng = np.random.default_rng(0)
        big = np.concatenate([scan + rng.normal(0, 0.05, scan.shape).astype(np.float32) for _ in range(reps)])
        msg = array_to_cloud(big[:n_points], "base_link", node.get_clock().now().to_msg())
        del big
        pub.publish(msg)
        del msg
        spin(30.0)
        normal_scans()
        after, peak = memory_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(20)
        node.destroy_node()
        rclpy.shutdown()
    return before, peak, after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=10_000_000)
    ap.add_argument(
        "--town", type=Path, default=None, help="a town folder (ortho.tif, drive_00); default: demo"
    )
    ap.add_argument(
        "--dds-dynamic-memory", action="store_true", help="the bare subscriber with the dynamic profile too"
    )
    ap.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    ap.add_argument("--bare", action="store_true", help=argparse.SUPPRESS)  # the baseline's own process
    args = ap.parse_args()
    if args.bare:
        bare_subscriber()
        return 0
    town = args.town
    if town is None:
        from translocnet_ros.synth.cli import build
        from translocnet_ros.synth.splits import split_towns

        name, spec = split_towns("demo")[0]
        town = ROOT / "data" / "synth" / name
        build([(town, spec)], force=False)
    src = GeoTiffSource(town / "ortho.tif")
    drive = KittiDrive(town / "drive_00")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    node_cmd = [
        sys.executable,
        "-m",
        "translocnet_ros.ros.localizer_node",
        "--ros-args",
        "-r",
        f"points:={TOPIC}",
        "-p",
        f"imagery:={town / 'ortho.tif'}",
        "-p",
        "odom_frame:=''",
        "-p",
        "points_reliable:=true",
        "-p",
        "max_scan_age_s:=60.0",  # the huge cloud takes seconds on the wire: measure its processing
        "-p",
        f"initial_pose:=[{gt.x}, {gt.y}, {gt.yaw}]",
    ]
    scan = drive.scan_base(0)
    bare = "bare rclpy subscriber" + (
        " (dynamic profile)" if args.dds_dynamic_memory else " (rmw_fastrtps defaults)"
    )
    rows = [
        (
            "localizer node (default: dynamic DDS history memory + heap trim)",
            measure(node_cmd, scan, args.points),
        ),
        (
            "localizer node, dds_dynamic_memory:=false (heap trim only)",
            measure(node_cmd, scan, args.points, dds_opt_out()),
        ),
        (
            bare,
            measure(
                [sys.executable, __file__, "--bare"],
                scan,
                args.points,
                dds_environment(str(ROOT)) if args.dds_dynamic_memory else None,
            ),
        ),
    ]
    lines = [
        "## Node memory after a huge cloud (issue 9)",
        "",
        f"Command: `python benchmarks/node_memory.py --points {args.points}`. Machine: {machine()}. "
        f"Date: {time.strftime('%Y-%m-%d')}. Each process alone, three normal scans before and after one "
        f"{args.points:,}-point PointCloud2 (reliable QoS); RSS from /proc.",
        "",
        f"| process ({args.points:,} point cloud) | RSS before [MB] | peak [MB] | RSS after [MB] | after - before |",
        "|---|---|---|---|---|",
    ]
    for name, (before, peak, after) in rows:
        lines.append(f"| {name} | {before:.0f} | {peak:.0f} | {after:.0f} | {after - before:+.0f} |")
    print("\n".join(lines))
    if not args.no_write:
        write_section("node-memory", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
