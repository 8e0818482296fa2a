"""Fuzz over DDS (issue 9): a seeded random mix of malformed PointCloud2s, bad /initialpose and bad NavSatFix
thrown at a running node in its own process. The node must stay up, keep reporting on /diagnostics, publish
no pose from any of it, and then localize real scans again within 10 scans of a new prior.

FUZZ_MESSAGES (default 300) sets the number of garbage messages, e.g. 1000 for the issue's long run."""

import os
import time

import numpy as np
import pytest
from conftest import require_ros
from ros_helpers.garbage import CLOUD_KINDS, bad_fix, bad_initial_pose, cloud, garbage_cloud

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource

pytestmark = pytest.mark.ros

SEED = 9


def _spin(node, seconds):
    import rclpy

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.01)


def test_fuzzed_inputs_never_give_a_pose(small_town):
    require_ros()
    from geometry_msgs.msg import PoseWithCovarianceStamped
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import NavSatFix, PointCloud2

    from translocnet_ros.ros.convert import pose_msg
    from translocnet_ros.ros.demo import run_live

    n_messages = int(os.environ.get("FUZZ_MESSAGES", "300"))
    src = GeoTiffSource(small_town / "ortho.tif")
    drive = KittiDrive(small_town / "drive_00")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    scan = drive.scan_base(0)
    rng = np.random.default_rng(SEED)
    small = scan[rng.choice(len(scan), 20000, replace=False)]  # garbage from a real scan, light on DDS
    kinds = list(CLOUD_KINDS)
    sent = {"clouds": 0, "initial poses": 0, "fixes": 0}
    during: dict = {}

    def fuzz(node, res):
        reliable = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
        clouds = node.create_publisher(PointCloud2, "/kitti/velo/pointcloud", reliable)
        priors = node.create_publisher(PoseWithCovarianceStamped, "/initialpose", 10)
        fixes = node.create_publisher(NavSatFix, "/kitti/oxts/gps/fix", 10)
        _spin(node, 1.0)  # let the publishers match
        t0, diags0 = time.monotonic(), len(res.diagnostics)
        for _ in range(n_messages):
            r = rng.random()
            if r < 0.8:
                kind = kinds[rng.integers(len(kinds))]
                clouds.publish(garbage_cloud(kind, small, rng, node.get_clock().now().to_msg()))
                sent["clouds"] += 1
            elif r < 0.9:
                priors.publish(bad_initial_pose(rng, gt.x, gt.y))
                sent["initial poses"] += 1
            else:
                fixes.publish(bad_fix(rng))
                sent["fixes"] += 1
            _spin(node, 0.03)
        _spin(node, 3.0)  # the node works off what is queued
        during.update(
            seconds=time.monotonic() - t0,
            diagnostics=len(res.diagnostics) - diags0,
            poses=len(res.poses),
            last=res.diagnostics[-1] if res.diagnostics else None,
        )
        # a new prior, then real scans: the node must localize again within 10 of them
        good = pose_msg(gt, np.diag([4.0, 4.0, 0.01]), "map", node.get_clock().now().to_msg())
        for _ in range(3):
            priors.publish(good)
            _spin(node, 0.2)
        for k in range(10):
            clouds.publish(cloud(scan, node.get_clock().now().to_msg()))
            _spin(node, 2.0)
            if len(res.poses) > during["poses"]:
                during["recovered after"] = k + 1
                break

    res = run_live(
        None,
        str(small_town / "ortho.tif"),
        # garbage never reaches a method (asserted below); the recovery needs one that is confident on this
        # town whatever the generator's version: NCC (the learned model's confidence follows its training data)
        "ncc",
        params={"odom_frame": "", "points_reliable": True, "initial_pose": f"[{gt.x}, {gt.y}, {gt.yaw}]"},
        publish=fuzz,
        timeout_s=240,
        settle_s=1.5,
    )
    assert res.node_alive, res.node_log[-3000:]
    assert during["poses"] == 0, f"{during['poses']} poses published from garbage: {res.poses[:5]}"
    # diagnostics kept flowing (1 Hz; a third of that is tolerated on a loaded CI machine) under fire
    assert during["diagnostics"] >= max(3, during["seconds"] / 3), during
    _, message, values = during["last"]
    stats = {k: int(values[k]) for k in values if k.startswith(("scans", "priors"))}
    # every garbage cloud arrived and none reached the model: each was refused or superseded
    assert stats["scans received"] == sent["clouds"], (stats, sent)
    assert stats["scans localized"] == 0, (stats, message)
    assert stats["scans rejected"] + stats["scans superseded"] == sent["clouds"], stats
    assert stats["priors rejected"] == sent["initial poses"] + sent["fixes"], (stats, sent)
    print(f"fuzz: sent {sent}; node {stats}; recovered after {during.get('recovered after')} real scans")
    assert "recovered after" in during, (
        f"no pose from 10 real scans after a new prior: {res.diagnostics[-3:]}"
    )
    err = min(np.hypot(x - gt.x, y - gt.y) for _, x, y, _, _ in res.poses)
    assert err < 2.0, res.poses
