"""Real DDS between two processes: what process A publishes arrives byte-exactly in process B."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import require_ros

pytestmark = pytest.mark.ros

HELPER = Path(__file__).parent / "ros_helpers" / "receive_cloud_and_tf.py"


def test_pointcloud2_and_tf_cross_process(ros_context):
    rclpy = require_ros()
    from builtin_interfaces.msg import Time
    from geometry_msgs.msg import TransformStamped
    from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import PointCloud2
    from tf2_msgs.msg import TFMessage

    from translocnet_ros.ros.pointcloud2 import array_to_cloud

    rng = np.random.default_rng(7)
    pts = rng.normal(scale=20.0, size=(1000, 4)).astype(np.float32)
    cloud = array_to_cloud(pts, "velo_link", Time(sec=1317000000, nanosec=123456789))
    tf = TransformStamped()
    tf.header.frame_id, tf.child_frame_id = "map", "base_link"
    tf.header.stamp = Time(sec=1317000000, nanosec=5)
    tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (
        385123.25,
        6672456.5,
        1.5,
    )
    tf.transform.rotation.z, tf.transform.rotation.w = 0.38268343236, 0.92387953251

    receiver = subprocess.Popen(
        [sys.executable, str(HELPER), "--timeout", "40"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    node = rclpy.create_node("sender", context=ros_context)
    qos = QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
    )
    cloud_pub = node.create_publisher(PointCloud2, "points", qos)
    tf_pub = node.create_publisher(TFMessage, "/tf", qos)
    try:
        deadline = time.monotonic() + 45
        while receiver.poll() is None and time.monotonic() < deadline:
            cloud_pub.publish(cloud)
            tf_pub.publish(TFMessage(transforms=[tf]))
            time.sleep(0.2)
        out, err = receiver.communicate(timeout=10)
    finally:
        if receiver.poll() is None:
            receiver.kill()
        node.destroy_node()
    assert receiver.returncode == 0, f"receiver got nothing in time:\n{out}\n{err}"
    got = json.loads(out.strip().splitlines()[-1])

    c = got["cloud"]
    assert c["frame_id"] == "velo_link"
    assert c["stamp"] == [1317000000, 123456789]
    assert (c["height"], c["width"], c["point_step"], c["row_step"]) == (1, 1000, 16, 16000)
    assert c["fields"] == [["x", 0, 7, 1], ["y", 4, 7, 1], ["z", 8, 7, 1], ["intensity", 12, 7, 1]]
    assert c["is_bigendian"] is False and c["is_dense"] is True
    assert bytes.fromhex(c["data_hex"]) == pts.astype("<f4").tobytes()

    (t,) = got["tf"]
    assert (t["parent"], t["child"], t["stamp"]) == ("map", "base_link", [1317000000, 5])
    assert t["t"] == [385123.25, 6672456.5, 1.5]
    assert t["q"] == [0.0, 0.0, 0.38268343236, 0.92387953251]
