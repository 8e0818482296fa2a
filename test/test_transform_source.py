"""The node's TF listener (issue 10.4): the demo's odom -> base_link lookups failed for runs of scans because a
reliable /tf reader holds back every sample after one lost in transport until the writer repairs it, seconds
later. The listener is best effort now: a lost sample costs only itself (the lookup interpolates between its
neighbours), and best-effort /tf publishers are heard at all."""

import contextlib
import threading
import time

import numpy as np
import pytest
from conftest import require_ros

pytestmark = pytest.mark.ros


def _tf(parent, child, x, stamp_s):
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.geo.pose import Pose2D
    from translocnet_ros.ros.convert import pose2d_to_matrix, sec_to_stamp, transform_msg

    m = pose2d_to_matrix(Pose2D(x, 0.0, 0.0))
    return TFMessage(transforms=[transform_msg(parent, child, m, sec_to_stamp(stamp_s))])


def test_a_lookup_between_samples_waits_for_the_next_one(ros_context):
    """Sample 0.2 s lost: the lookup at its stamp succeeds once 0.3 s arrives, interpolated."""
    require_ros()
    import rclpy

    from translocnet_ros.ros.transforms import TransformSource

    node = rclpy.create_node("tf_gap", context=ros_context)
    try:
        tf = TransformSource(node, tolerance_s=0.0, force_fallback=True)
        for k in (0, 1):
            tf._ingest(_tf("odom", "base_link", float(k), 100.0 + 0.1 * k), False)
        late = threading.Timer(0.05, lambda: tf._ingest(_tf("odom", "base_link", 3.0, 100.3), False))
        late.start()
        m = tf.lookup("odom", "base_link", 100.2, timeout_s=0.5)
        late.join()
        assert m[0, 3] == pytest.approx(2.0)
    finally:
        node.destroy_node()


def test_the_listener_is_best_effort_and_hears_best_effort_publishers(ros_context):
    """Over DDS: odom -> base_link from a best-effort /tf publisher (a reliable reader never matches one)."""
    require_ros()
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.geo.tf_tree import TransformError
    from translocnet_ros.ros.transforms import TransformSource

    listener = rclpy.create_node("tf_listener", context=ros_context)
    sender = rclpy.create_node("tf_sender", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(listener)
    executor.add_node(sender)
    try:
        tf = TransformSource(listener, tolerance_s=0.0, force_fallback=True)
        pub = sender.create_publisher(
            TFMessage, "/tf", QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        )
        got, deadline, k = None, time.monotonic() + 20.0, 0
        while got is None and time.monotonic() < deadline:
            pub.publish(_tf("odom", "base_link", 0.5 * k, 50.0 + 0.1 * k))
            k += 1
            executor.spin_once(timeout_sec=0.05)
            with contextlib.suppress(TransformError):
                got = tf.lookup("odom", "base_link", 0.0)
        assert got is not None, "no odom -> base_link from a best-effort publisher"
        assert np.isfinite(got).all() and tf.parent_of("base_link") == "odom"
        subs = [s for s in listener.subscriptions if s.topic_name == "/tf"]
        assert [s.qos_profile.reliability for s in subs] == [ReliabilityPolicy.BEST_EFFORT]
    finally:
        executor.shutdown()
        sender.destroy_node()
        listener.destroy_node()


def test_replay_sends_clouds_apart_from_tf_and_every_odometry_sample_arrives(small_town, ros_context):
    """The root cause on the sender's side: `translocnet replay` published 2 MB clouds and /tf through one DDS
    participant, whose shared-memory segment the clouds filled on a loaded machine, so odom -> base_link samples
    were dropped and repaired seconds late. Clouds now leave through a participant of their own (as a LiDAR
    driver's would), and the replay waits for reliable subscribers before it exits."""
    require_ros()
    import subprocess
    import sys

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.ros.replay import LIDAR_TOPIC
    from translocnet_ros.ros.transforms import TF_QOS

    node = rclpy.create_node("replay_probe", context=ros_context)
    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    odom, clouds = [], []
    node.create_subscription(
        TFMessage,
        "/tf",
        lambda m: odom.extend(t for t in m.transforms if t.child_frame_id == "base_link"),
        TF_QOS,
    )
    reliable = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)
    node.create_subscription(PointCloud2, LIDAR_TOPIC, lambda m: clouds.append(m.header.stamp), reliable)
    args = ["replay", str(small_town / "drive_00"), "--odom", "--rate", "2", "--start-delay", "0"]
    args += ["--wait-for-subscriber", "/tf", "--wait-for-subscriber", LIDAR_TOPIC]  # discovery: up to ~3 s
    proc = subprocess.Popen([sys.executable, "-m", "translocnet_ros.cli", *args])
    try:
        writers = {}
        deadline = time.monotonic() + 30.0
        while proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
            for topic in ("/tf", LIDAR_TOPIC):  # names arrive after the endpoints: keep the latest
                names = {i.node_name for i in node.get_publishers_info_by_topic(topic)}
                if names and "_NODE_NAME_UNKNOWN_" not in names:
                    writers[topic] = names
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        executor.shutdown()
        node.destroy_node()
    assert writers["/tf"] == {"translocnet_replay"}, writers
    assert writers[LIDAR_TOPIC] == {"translocnet_replay_points"}, writers
    assert len(odom) == len(clouds) == 12, (len(odom), len(clouds))
