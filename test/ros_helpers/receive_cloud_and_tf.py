"""Process B of the cross-process test: receive one PointCloud2 and one TFMessage, print them as JSON."""

import argparse
import json
import sys
import time

import rclpy
from rclpy.qos import QoSDurabilityPolicy, QoSProfile, QoSReliabilityPolicy
from sensor_msgs.msg import PointCloud2
from tf2_msgs.msg import TFMessage


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    rclpy.init()
    node = rclpy.create_node("receiver")
    qos = QoSProfile(
        depth=5, reliability=QoSReliabilityPolicy.RELIABLE, durability=QoSDurabilityPolicy.TRANSIENT_LOCAL
    )
    got = {}

    def on_cloud(msg):
        got["cloud"] = {
            "frame_id": msg.header.frame_id,
            "stamp": [msg.header.stamp.sec, msg.header.stamp.nanosec],
            "height": msg.height,
            "width": msg.width,
            "fields": [[f.name, f.offset, f.datatype, f.count] for f in msg.fields],
            "is_bigendian": msg.is_bigendian,
            "point_step": msg.point_step,
            "row_step": msg.row_step,
            "is_dense": msg.is_dense,
            "data_hex": bytes(msg.data).hex(),
        }

    def on_tf(msg):
        got["tf"] = [
            {
                "parent": t.header.frame_id,
                "child": t.child_frame_id,
                "stamp": [t.header.stamp.sec, t.header.stamp.nanosec],
                "t": [t.transform.translation.x, t.transform.translation.y, t.transform.translation.z],
                "q": [
                    t.transform.rotation.x,
                    t.transform.rotation.y,
                    t.transform.rotation.z,
                    t.transform.rotation.w,
                ],
            }
            for t in msg.transforms
        ]

    node.create_subscription(PointCloud2, "points", on_cloud, qos)
    node.create_subscription(TFMessage, "/tf", on_tf, qos)
    print("READY", flush=True)
    deadline = time.monotonic() + args.timeout
    while len(got) < 2 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps(got), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if len(got) == 2 else 1


if __name__ == "__main__":
    sys.exit(main())
