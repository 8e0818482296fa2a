"""`translocnet replay` of a ROS 2 bag (converted from the real kitti2bag bag) over DDS: every cloud arrives
byte-exact, static TF and /clock are published, and the ground-truth pose is withheld."""

import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import HELSINKI, require_ros

pytestmark = pytest.mark.ros


def test_replay_ros2_bag(tmp_path, ros_context):
    bag = HELSINKI / "111140337709579" / "kitti.bag"
    if not bag.exists():
        pytest.skip("../shared/data/helsinki-dev is not beside this checkout")
    rclpy = require_ros()
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.convert import convert
    from rosbags.highlevel import AnyReader
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage

    dst = tmp_path / "kitti_ros2"
    convert([bag], dst, "sqlite3", 8, None, "file", None, None, [], [], [], [])
    with AnyReader([dst]) as reader:
        conns = [c for c in reader.connections if c.topic == "/kitti/velo/pointcloud"]
        expected = [bytes(reader.deserialize(raw, c.msgtype).data) for c, _, raw in reader.messages(conns)]

    node = rclpy.create_node("replay_probe", context=ros_context)
    rel = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
    static = QoSProfile(
        depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
    )
    clouds, tf, tf_static, clock = [], [], [], []
    node.create_subscription(
        PointCloud2, "/kitti/velo/pointcloud", lambda m: clouds.append(bytes(m.data)), rel
    )
    node.create_subscription(TFMessage, "/tf", lambda m: tf.extend(m.transforms), rel)
    node.create_subscription(TFMessage, "/tf_static", lambda m: tf_static.extend(m.transforms), static)
    node.create_subscription(Clock, "/clock", lambda m: clock.append(m.clock.sec), 10)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "translocnet_ros.cli",
            "replay",
            str(dst),
            "--clock",
            "--rate",
            "2",
            "--start-delay",
            "0",
            # DDS discovery between two processes takes from milliseconds to a 3 s announcement period or
            # more on a loaded machine: a fixed start delay let the replay publish before the probe matched
            *("--wait-for-subscriber", "/kitti/velo/pointcloud", "--wait-for-subscriber", "/tf"),
            *("--wait-for-subscriber", "/tf_static", "--wait-for-subscriber", "/clock"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    deadline = time.monotonic() + 60
    while (proc.poll() is None or len(clouds) < len(expected)) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    out = proc.communicate(timeout=10)[0]
    node.destroy_node()
    assert proc.returncode == 0, out
    assert len(expected) == 10 and clouds == expected
    assert {(t.header.frame_id, t.child_frame_id) for t in tf_static} >= {
        ("base_link", "imu_link"),
        ("imu_link", "velo_link"),
    }
    assert not any(t.child_frame_id == "base_link" for t in tf)  # ground truth withheld
    assert clock and np.all(np.diff(clock) >= 0)


def test_replay_publishes_nothing_until_its_subscribers_are_matched(small_town, ros_context):
    """--wait-for-subscriber TOPIC[:N]: no message before N subscribers matched TOPIC; after --wait-timeout
    the replay says which are missing and exits 1 having published nothing; a topic it does not publish or a
    malformed count is refused before anything starts."""
    rclpy = require_ros()
    from sensor_msgs.msg import PointCloud2

    from translocnet_ros.ros.replay import LIDAR_TOPIC

    def replay(*extra):
        cmd = [sys.executable, "-m", "translocnet_ros.cli", "replay", str(small_town / "drive_00")]
        return subprocess.Popen(
            [*cmd, "--rate", "0", "--start-delay", "0", *extra],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    out = replay("--wait-for-subscriber", "/nope").communicate(timeout=60)[0]
    assert "--wait-for-subscriber: /nope not published" in out and "/kitti/velo/pointcloud" in out, out
    out = replay("--wait-for-subscriber", "/tf_static:0").communicate(timeout=60)[0]
    assert "'/tf_static:0' is not TOPIC or TOPIC:N with N >= 1" in out, out

    node = rclpy.create_node("wait_probe", context=ros_context)
    clouds = []
    node.create_subscription(PointCloud2, LIDAR_TOPIC, clouds.append, 10)
    executor = rclpy.executors.SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    # the clouds have a subscriber (this probe, once discovered); /clock has none: nothing may be published
    proc = replay(
        *("--clock", "--wait-timeout", "5"),
        *("--wait-for-subscriber", LIDAR_TOPIC, "--wait-for-subscriber", "/clock"),
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    out = proc.communicate(timeout=10)[0]
    node.destroy_node()
    assert proc.returncode == 1, out
    assert "subscribers missing after 5 s: " in out and "/clock (0 of 1); published nothing" in out, out
    assert "[replay] published" not in out and clouds == []


def test_replayed_odometry_is_the_sequence_protocols(small_town):
    """`replay --odom` publishes dead reckoning from the wheel-odometry increments of DESIGN.md §6, drawn as
    `eval --protocol sequence --seed` draws them, so the live node and the protocol see the same odometry;
    --no-gnss leaves out the fixes and nothing else."""
    require_ros()
    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.evaluation.sequence import noisy_odometry
    from translocnet_ros.geo.crs import MapFrame
    from translocnet_ros.geo.pose import Pose2D
    from translocnet_ros.imagery.geotiff import GeoTiffSource
    from translocnet_ros.ros.convert import matrix_to_pose2d
    from translocnet_ros.ros.replay import GNSS_TOPIC, drive_messages

    def odom(messages):
        from translocnet_ros.geo.tf_tree import make_transform

        out = []
        for _, topic, msg in messages:
            for t in getattr(msg, "transforms", []) if topic == "/tf" else []:
                tr, r = t.transform.translation, t.transform.rotation
                out.append(matrix_to_pose2d(make_transform([tr.x, tr.y, tr.z], [r.x, r.y, r.z, r.w])))
        return out

    drive_dir = small_town / "drive_00"
    with_fix = list(drive_messages(drive_dir, False, 2.0, True, seed=3))
    no_fix = list(drive_messages(drive_dir, False, 2.0, True, seed=3, gnss=False))
    assert [m for m in with_fix if m[1] != GNSS_TOPIC] and not [m for m in no_fix if m[1] == GNSS_TOPIC]
    assert len(with_fix) - len(no_fix) == len(KittiDrive(drive_dir).frames)
    crs = GeoTiffSource(small_town / "ortho.tif").crs
    dead = Pose2D(0.0, 0.0, 0.0)
    gt = KittiDrive(drive_dir).ground_truth(MapFrame.from_any(crs)).poses
    published = odom(no_fix)
    assert len(published) == len(gt)
    for pose, inc in zip(published, noisy_odometry(gt, 3), strict=True):
        dead = dead.compose(inc)
        assert (pose.x, pose.y, pose.yaw) == pytest.approx((dead.x, dead.y, dead.yaw), abs=2e-3)
