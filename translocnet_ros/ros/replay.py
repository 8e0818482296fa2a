"""`translocnet replay SOURCE`: publish a recorded drive on ROS 2 topics, like `ros2 bag play --clock`.

SOURCE is a ROS 1 bag (as written by kitti2bag), a ROS 2 bag (sqlite3 / MCAP), both read with `rosbags`, or
a drive folder in the KITTI raw layout (scans, OXTS as NavSatFix, the calibration as /tf_static, optional
simulated wheel odometry: the noisy increments of DESIGN.md §6, the same draws as `eval --protocol sequence`). The bag's ground-truth pose (`/tf` world -> base_link) is withheld unless
--with-ground-truth.
"""

from __future__ import annotations

import argparse
import importlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

GT_CHILD_FRAMES = {"base_link"}  # kitti2bag publishes world -> base_link as ground truth on /tf
LIDAR_TOPIC, GNSS_TOPIC = "/kitti/velo/pointcloud", "/kitti/oxts/gps/fix"  # kitti2bag's names


def _ros_class(type_name: str):
    pkg, kind, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def to_ros(obj, cls):
    """Copy a rosbags message object into an rclpy message of class `cls`, field by field."""
    out = cls()
    for field in cls.get_fields_and_field_types():
        if not hasattr(obj, field):
            continue
        value = getattr(obj, field)
        if hasattr(value, "__msgtype__"):
            setattr(out, field, to_ros(value, type(getattr(out, field))))
        elif isinstance(value, list | tuple) and value and hasattr(value[0], "__msgtype__"):
            inner = _ros_class(value[0].__msgtype__)
            setattr(out, field, [to_ros(v, inner) for v in value])
        elif isinstance(value, np.ndarray):
            setattr(out, field, value.tobytes() if value.dtype == np.uint8 else value.tolist())
        else:
            setattr(out, field, value)
    return out


def bag_messages(path: Path, with_ground_truth: bool) -> Iterator[tuple[int, str, object]]:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        classes = {c.id: _ros_class(c.msgtype) for c in reader.connections}
        for conn, stamp_ns, raw in reader.messages():
            msg = to_ros(reader.deserialize(raw, conn.msgtype), classes[conn.id])
            if conn.topic == "/tf" and not with_ground_truth:
                msg.transforms = [t for t in msg.transforms if t.child_frame_id not in GT_CHILD_FRAMES]
                if not msg.transforms:
                    continue
            yield stamp_ns, conn.topic, msg


def bag_topics(path: Path) -> dict[str, type]:
    from rosbags.highlevel import AnyReader

    with AnyReader([path]) as reader:
        return {c.topic: _ros_class(c.msgtype) for c in reader.connections}


def drive_topics(with_ground_truth: bool, odom: bool, gnss: bool = True) -> dict[str, type]:
    from sensor_msgs.msg import NavSatFix, PointCloud2
    from tf2_msgs.msg import TFMessage

    topics = {"/tf_static": TFMessage, LIDAR_TOPIC: PointCloud2}
    if gnss:
        topics[GNSS_TOPIC] = NavSatFix
    if with_ground_truth or odom:
        topics["/tf"] = TFMessage
    return topics


def drive_messages(
    path: Path, with_ground_truth: bool, gnss_noise_m: float, odom: bool, seed: int = 0, gnss: bool = True
) -> Iterator[tuple[int, str, object]]:
    """A KITTI-layout drive as kitti2bag would publish it, plus optional odom -> base_link: dead reckoning from
    the wheel-odometry increments of DESIGN.md §6 drawn with `seed` (eval --protocol sequence --seed draws the
    same ones), so a live run and the offline protocol see the same odometry."""
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.evaluation.sequence import noisy_odometry
    from translocnet_ros.geo.crs import MapFrame
    from translocnet_ros.geo.pose import Pose2D
    from translocnet_ros.ros.convert import pose2d_to_matrix, sec_to_stamp, transform_msg
    from translocnet_ros.ros.pointcloud2 import array_to_cloud

    drive = KittiDrive(path)
    rng = np.random.default_rng(seed)
    lat, lon = drive.oxts[:, 0], drive.oxts[:, 1]
    # a local metric frame for noise and odometry: UTM zone of the first fix
    zone = int((lon[0] + 180) // 6) + 1
    frame = MapFrame.from_any(f"EPSG:{32600 + zone if lat[0] >= 0 else 32700 + zone}")
    gt = drive.ground_truth(frame).poses
    base_velo = drive.t_velo_to_base
    increments = noisy_odometry(gt, seed) if odom else []
    odom_pose = Pose2D(0.0, 0.0, 0.0)
    for k, f in enumerate(drive.frames):
        t = float(drive.timestamps[k])
        stamp = sec_to_stamp(t)
        ns = int(round(t * 1e9))
        yield (
            ns,
            "/tf_static",
            TFMessage(transforms=[transform_msg("base_link", "velo_link", base_velo, stamp)]),
        )
        if odom:  # wheel odometry: 2% scale error, heading drift and noise (DESIGN.md §6)
            odom_pose = odom_pose.compose(increments[k])
            yield (
                ns,
                "/tf",
                TFMessage(
                    transforms=[transform_msg("odom", "base_link", pose2d_to_matrix(odom_pose), stamp)]
                ),
            )
        if with_ground_truth:
            yield (
                ns,
                "/tf",
                TFMessage(transforms=[transform_msg("world", "base_link", pose2d_to_matrix(gt[k]), stamp)]),
            )
        e, n = frame.to_map(lat[k], lon[k])
        noise = rng.normal(0, gnss_noise_m, 2)  # drawn either way: the fixes do not depend on --no-gnss
        if gnss:
            yield (
                ns,
                GNSS_TOPIC,
                _fix(stamp, frame, e + noise[0], n + noise[1], drive.oxts[k, 2], gnss_noise_m),
            )
        cloud = array_to_cloud(drive.scan_velo(f), "velo_link", stamp, ("x", "y", "z", "i"))
        yield ns, LIDAR_TOPIC, cloud


def _fix(stamp, frame, e: float, n: float, altitude: float, noise_m: float):
    from sensor_msgs.msg import NavSatFix, NavSatStatus

    fix = NavSatFix()
    fix.header.stamp, fix.header.frame_id = stamp, "imu_link"
    fix.status.status, fix.status.service = NavSatStatus.STATUS_FIX, NavSatStatus.SERVICE_GPS
    fl, fo = frame.to_latlon(e, n)
    fix.latitude, fix.longitude, fix.altitude = float(fl), float(fo), float(altitude)
    var = max(noise_m, 0.05) ** 2
    fix.position_covariance = [var, 0, 0, 0, var, 0, 0, 0, 25.0]
    fix.position_covariance_type = NavSatFix.COVARIANCE_TYPE_DIAGONAL_KNOWN
    return fix


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "source", type=Path, help="ROS 1 .bag, ROS 2 bag (folder / .db3 / .mcap) or KITTI-layout drive"
    )
    p.add_argument("--rate", type=float, default=1.0, help="playback speed factor (0 = as fast as possible)")
    p.add_argument("--clock", action="store_true", help="publish /clock (use with use_sim_time:=true)")
    p.add_argument(
        "--with-ground-truth", action="store_true", help="also publish the ground-truth pose on /tf"
    )
    p.add_argument(
        "--gnss-noise-m", type=float, default=0.0, help="drive folders: noise added to the GNSS fixes"
    )
    p.add_argument("--odom", action="store_true", help="drive folders: publish simulated odom -> base_link")
    p.add_argument("--no-gnss", action="store_true", help="drive folders: publish no GNSS fixes")
    p.add_argument(
        "--start-delay",
        type=float,
        default=1.0,
        help="seconds between creating the publishers and the first message (discovery)",
    )
    p.add_argument(
        "--wait-for-subscriber",
        action="append",
        default=[],
        metavar="TOPIC[:N]",
        help="before the first message, wait until TOPIC has N matched subscribers (default 1; repeatable; as "
        "ROS 1 `rosbag play --wait-for-subscribers`): a volatile subscriber that DDS discovery has not matched "
        "yet misses every message published before the match, and discovery can take seconds on a loaded machine",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=30.0,
        help="seconds to wait for --wait-for-subscriber topics; then exit with status 1, publishing nothing",
    )
    p.add_argument("--loop", type=int, default=1, help="play the source this many times")
    p.add_argument(
        "--restamp", action="store_true", help="stamp messages with the wall clock (soak tests, loops)"
    )


def _restamp(msg, stamp) -> None:
    if hasattr(msg, "header"):
        msg.header.stamp = stamp
    for t in getattr(msg, "transforms", []):
        t.header.stamp = stamp


def source_topics(args) -> dict[str, type]:
    """The topics `replay` publishes for these arguments (besides /clock), with their message classes."""
    if (args.source / "velodyne_points").is_dir():
        return drive_topics(args.with_ground_truth, args.odom, not args.no_gnss)
    return bag_topics(args.source)


def parse_wait_for(values: list[str]) -> dict[str, int]:
    """--wait-for-subscriber values, TOPIC or TOPIC:N (a topic name has no colon), as {topic: N}."""
    out = {}
    for v in values:
        topic, _, n = v.partition(":")
        if not topic or (n and (not n.isdigit() or int(n) < 1)):
            raise ValueError(f"{v!r} is not TOPIC or TOPIC:N with N >= 1")
        out[topic] = max(out.get(topic, 1), int(n or 1))
    return out


def wait_for_subscribers(pubs: dict, timeout_s: float, poll_s: float = 0.02) -> bool:
    """Block until every publisher in {topic: (publisher, n)} has matched n subscribers, or `timeout_s` passed
    (then name the topics still short of them and return False). A match seen here is the writer's: from then on a
    reliable writer resends (within its history depth) each sample that reader has not acknowledged, even if
    the reader's side of the match completes later, so a reliable subscriber loses nothing published after
    this returns True (a best-effort one can still miss samples sent before its own side matched)."""
    deadline = time.monotonic() + timeout_s
    while True:
        counts = {t: pub.get_subscription_count() for t, (pub, _) in pubs.items()}
        missing = [f"{t} ({counts[t]} of {n})" for t, (_, n) in pubs.items() if counts[t] < n]
        if not missing:
            return True
        if time.monotonic() >= deadline:
            print(
                f"[replay] subscribers missing after {timeout_s:g} s: {', '.join(missing)}; published nothing"
            )
            return False
        time.sleep(poll_s)


def run(args) -> int:
    import rclpy
    from rclpy.duration import Duration
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock

    from translocnet_ros.ros.convert import sec_to_stamp

    source = args.source

    is_drive = (source / "velodyne_points").is_dir()

    def items():
        for k in range(args.loop):
            if is_drive:
                yield from drive_messages(
                    source,
                    args.with_ground_truth,
                    args.gnss_noise_m,
                    args.odom,
                    seed=k,
                    gnss=not args.no_gnss,
                )
            else:
                yield from bag_messages(source, args.with_ground_truth)

    topics = source_topics(args)
    try:
        wanted = parse_wait_for(args.wait_for_subscriber)
    except ValueError as e:
        print(f"[replay] --wait-for-subscriber: {e}")
        return 2
    unknown = sorted(set(wanted) - set(topics) - ({"/clock"} if args.clock else set()))
    if unknown:
        print(
            f"[replay] --wait-for-subscriber: {', '.join(unknown)} not published (topics: {', '.join(topics)})"
        )
        return 2
    rclpy.init()
    node = rclpy.create_node("translocnet_replay")
    # Point clouds leave through a DDS participant of their own, as a LiDAR driver's would: sharing one with
    # /tf, a few 2 MB clouds fill its shared-memory segment on a loaded machine, and the small samples queued
    # behind them (odom -> base_link) are dropped and only repaired at the writer's next heartbeat, seconds late.
    cloud_ctx = rclpy.Context()
    rclpy.init(context=cloud_ctx)
    cloud_node = rclpy.create_node("translocnet_replay_points", context=cloud_ctx)
    static_qos = QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    default_qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    # every publisher exists before the first message; the start delay gives discovery time, but only
    # --wait-for-subscriber knows it is done (matching can take one 3 s Fast DDS announcement period or more)
    pubs = {
        topic: (cloud_node if cls.__name__ == "PointCloud2" else node).create_publisher(
            cls, topic, static_qos if topic == "/tf_static" else default_qos
        )
        for topic, cls in topics.items()
    }
    clock_pub = node.create_publisher(Clock, "/clock", 10) if args.clock else None
    time.sleep(args.start_delay)
    t_wall0 = t_bag0 = None
    count = 0
    try:
        waiting = {t: (clock_pub if t == "/clock" else pubs[t], n) for t, n in wanted.items()}
        if not wait_for_subscribers(waiting, args.wait_timeout):
            return 1
        last_ns, wall_stamp = None, None
        for stamp_ns, topic, msg in items():
            if last_ns is not None and stamp_ns < last_ns:  # next loop: keep the playback clock running
                t_wall0, t_bag0 = time.monotonic(), stamp_ns
            if t_wall0 is None:
                t_wall0, t_bag0 = time.monotonic(), stamp_ns
            if args.rate > 0:
                delay = (stamp_ns - t_bag0) * 1e-9 / args.rate - (time.monotonic() - t_wall0)
                if delay > 0:
                    time.sleep(delay)
            if args.restamp:  # one wall-clock stamp per source instant, shared by its cloud, fix and TFs
                if stamp_ns != last_ns:
                    wall_stamp = node.get_clock().now().to_msg()
                _restamp(msg, wall_stamp)
            last_ns = stamp_ns
            if clock_pub is not None:
                clock_pub.publish(Clock(clock=sec_to_stamp(stamp_ns * 1e-9)))
            pubs[topic].publish(msg)
            count += 1
        # reliable subscribers get every message before the publishers go (a loaded machine repairs losses late)
        for pub in pubs.values():
            pub.wait_for_all_acked(Duration(seconds=5.0))
        time.sleep(0.5)
        print(f"[replay] published {count} messages on {len(pubs)} topics from {source}")
    except KeyboardInterrupt:
        pass
    finally:
        node.destroy_node()
        cloud_node.destroy_node()
        rclpy.try_shutdown()
        cloud_ctx.try_shutdown()
    return 0
