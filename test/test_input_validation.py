"""Every garbage input of issue 9, through the node's own processing path (in-process, no DDS timing): no
pose is published and the reason is what diagnostics show. The same node then localizes a real scan, so the
checks do not simply refuse everything."""

import numpy as np
import pytest
from conftest import require_ros
from ros_helpers.garbage import CLOUD_KINDS, cloud, garbage_cloud

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource

pytestmark = pytest.mark.ros


@pytest.fixture(scope="module")
def scene(small_town):
    src = GeoTiffSource(small_town / "ortho.tif")
    drive = KittiDrive(small_town / "drive_00")
    gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
    return small_town, drive.scan_base(0), gt


@pytest.fixture
def node(scene, ros_context):
    from rclpy.parameter import Parameter

    from translocnet_ros.ros.localizer_node import LocalizerNode

    town, _, gt = scene
    overrides = {
        "imagery": str(town / "ortho.tif"),
        "method": "ncc",
        "odom_frame": "",
        "initial_pose": [gt.x, gt.y, gt.yaw],
    }
    n = LocalizerNode(
        context=ros_context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()]
    )
    yield n
    n.destroy_node()


def test_garbage_clouds_publish_nothing_and_say_why(node, scene):
    _, scan, _ = scene
    rng = np.random.default_rng(0)
    for kind, expected in CLOUD_KINDS.items():
        reason = node._process(garbage_cloud(kind, scan, rng, node.get_clock().now().to_msg()))
        assert reason and expected in reason, (kind, reason)
    assert node.stats["poses published"] == 0
    # the checks refuse garbage, not scans: the same node localizes the real scan; the filter publishes
    # once a few scans have made it converge (the first one only replaces the prior's window)
    reasons = [node._process(cloud(scan, node.get_clock().now().to_msg())) for _ in range(8)]
    # without odometry (odom_frame '') the prediction is a 2 m random walk per scan: the confidence hovers above
    # the 0.5 of convergence and may dip below it for a scan
    assert "filter searching" in reasons[0] and reasons[1:].count(None) >= 5, reasons
    assert node.stats["poses published"] == reasons.count(None) >= 1


def test_long_frame_ids_are_clipped(node, scene):
    msg = cloud(scene[1], node.get_clock().now().to_msg())
    msg.header.frame_id = "x" * 10_000
    reason = node._process(msg)
    assert "no transform" in reason and len(reason) < 400


def _initial_pose(node, x, y, q=(0.0, 0.0, 0.0, 1.0)):
    from geometry_msgs.msg import PoseWithCovarianceStamped

    msg = PoseWithCovarianceStamped()
    msg.header.frame_id = "map"
    msg.pose.pose.position.x, msg.pose.pose.position.y = x, y
    o = msg.pose.pose.orientation
    o.x, o.y, o.z, o.w = q
    return msg


@pytest.mark.parametrize(
    "x,y,q,expected",
    [
        (np.nan, 0.0, (0, 0, 0, 1), "not finite or out of range"),
        (np.inf, 0.0, (0, 0, 0, 1), "not finite or out of range"),
        (1e30, 0.0, (0, 0, 0, 1), "not finite or out of range"),
        (0.0, 0.0, (0, 0, 0, 0), "zero or non-finite quaternion"),
        (0.0, 0.0, (0, 0, np.nan, 1), "zero or non-finite quaternion"),
    ],
)
def test_bad_initial_poses_are_refused_and_the_prior_kept(node, scene, x, y, q, expected):
    _, _, gt = scene
    node._on_initial_pose(_initial_pose(node, gt.x + x, gt.y + y, q))
    assert expected in node.last_rejected_prior and node.stats["priors rejected"] == 1
    prior = node.engine.prior()
    assert (prior.pose.x, prior.pose.y) == (gt.x, gt.y)


@pytest.mark.parametrize("lat,lon", [(91.0, 24.9), (60.2, 181.0), (1e308, 24.9), (np.nan, 24.9)])
def test_bad_navsatfix_is_refused_and_the_prior_kept(node, scene, lat, lon):
    from sensor_msgs.msg import NavSatFix

    _, _, gt = scene
    fix = NavSatFix()
    fix.latitude, fix.longitude = lat, lon
    fix.status.status = fix.status.STATUS_FIX
    node._on_fix(fix)
    assert "latitude/longitude" in node.last_rejected_prior and node.stats["priors rejected"] == 1
    prior = node.engine.prior()
    assert (prior.pose.x, prior.pose.y) == (gt.x, gt.y)


def test_ncc_fallback_is_a_degraded_mode(scene, ros_context, tmp_path):
    require_ros()
    from rclpy.parameter import Parameter

    from translocnet_ros.ros.localizer_node import WARN, LocalizerNode

    town, _, _ = scene
    n = LocalizerNode(
        context=ros_context,
        parameter_overrides=[
            Parameter("imagery", value=str(town / "ortho.tif")),
            Parameter("model_path", value=str(tmp_path / "missing.pt")),
        ],
    )
    try:
        assert n.localizer.name == "ncc"
        sent = []
        n.diag_pub.publish = sent.append
        n._publish_diagnostics()
        status = sent[0].status[0]
        assert status.level[0] == WARN and "NCC baseline" in status.message
    finally:
        n.destroy_node()


def test_wrong_size_tiles_are_counted_and_make_diagnostics_warn(node):
    import cv2

    from translocnet_ros.imagery.xyz import XyzTileSource
    from translocnet_ros.ros.localizer_node import WARN

    tiles = XyzTileSource("http://127.0.0.1:9/{z}/{x}/{y}.png", "EPSG:3857")
    try:
        ok, png = cv2.imencode(".png", np.full((128, 128, 3), 90, np.uint8))  # a 256 px source serving 128
        assert ok and tiles._decode(png.tobytes()).rgb.shape == (256, 256, 3)
        assert tiles.resized_tiles == 1
        node.imagery = tiles
        sent = []
        node.diag_pub.publish = sent.append
        node._publish_diagnostics()
        status = sent[0].status[0]
        assert status.level[0] == WARN and "1 imagery tiles had the wrong size" in status.message
    finally:
        tiles.close()


def test_likelihood_image_from_nan_is_black_and_warning_free():
    import warnings

    from builtin_interfaces.msg import Time

    from translocnet_ros.ros.convert import likelihood_image

    lik = np.full((4, 5), np.nan)
    lik[1, 2] = 3.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        img = likelihood_image(lik, "map", Time())
    assert list(img.data) == [255 if k == 7 else 0 for k in range(20)]


def test_subsampling_is_a_degraded_mode_while_it_lasts(node, scene):
    from rclpy.parameter import Parameter

    scan = scene[1]
    assert node.set_parameters([Parameter("max_points", value=20_000)])[0].successful
    node._process(cloud(scan, node.get_clock().now().to_msg()))
    assert f"clouds of {len(scan)} points subsampled to max_points 20000" in node.notes["subsampled"]
    assert node.set_parameters([Parameter("max_points", value=1_000_000)])[0].successful
    node._process(cloud(scan, node.get_clock().now().to_msg()))
    assert "subsampled" not in node.notes


def test_scans_superseded_faster_than_processed_is_a_degraded_mode(node):
    from translocnet_ros.ros.localizer_node import WARN

    sent = []
    node.diag_pub.publish = sent.append
    node._last_scan = float("inf")  # scans are arriving: only the throttling is under test
    node._publish_diagnostics()
    node.stats["scans received"] += 20
    node.stats["scans superseded"] += 14  # the worker took only 6 of 20
    node._publish_diagnostics()
    status = sent[-1].status[0]
    assert status.level[0] == WARN and "14 of 20 scans superseded" in status.message
    node.stats["scans received"] += 200  # keeping up again: the window forgets the burst
    for _ in range(11):
        node._publish_diagnostics()
    assert "superseded" not in sent[-1].status[0].message


def test_filter_parameters_posterior_image_and_diagnostics(node, scene):
    """The filter's tunables are live and validated, filter.enabled is wiring; ~/likelihood shows the posterior
    and /diagnostics the filter's state and why."""
    from rclpy.parameter import Parameter

    from translocnet_ros.ros.localizer_node import OK

    ok = node.set_parameters([Parameter("filter.tempering", value=0.3)])[0]
    assert ok.successful and node.engine.filter.cfg.tempering == 0.3
    low = node.set_parameters([Parameter("filter.lost_radius_m", value=10.0)])[0]
    assert not low.successful and "must not be below search_radius_m" in low.reason
    assert not node.set_parameters([Parameter("filter.uniform_floor", value=0.0)])[
        0
    ].successful  # out of range
    assert not node.set_parameters([Parameter("filter.enabled", value=False)])[0].successful  # read-only
    assert node.set_parameters([Parameter("filter.tempering", value=0.5)])[0].successful
    images, sent = [], []
    node.lik_pub.publish = images.append
    node.diag_pub.publish = sent.append
    node._last_scan = float("inf")  # scans are arriving: no stale-input warning
    node._publish_diagnostics()
    assert sent[-1].status[0].level[0] == OK and sent[-1].status[0].message == "searching"
    # no odometry here (odom_frame ''): a 2 m random walk per scan, so the confidence may dip below 0.5 for a
    # scan; the diagnostics are read right after a published one
    reasons = []
    while len(reasons) < 8 and (not reasons or reasons[-1] is not None):
        reasons.append(node._process(cloud(scene[1], node.get_clock().now().to_msg())))
    assert reasons[-1] is None and reasons.count(None) == 1, reasons
    node._publish_diagnostics()
    status = sent[-1].status[0]
    values = {kv.key: kv.value for kv in status.values}
    assert status.message == "converged" and values["filter state"] == "converged"
    assert values["filter reason"].startswith("confidence") and float(values["filter confidence"]) >= 0.5
    assert float(values["odometry scale"]) == pytest.approx(1.0, abs=0.05)  # nothing driven, nothing learned
    assert images and images[-1].encoding == "mono8" and max(images[-1].data) == 255
    # the image is the posterior: concentrated where the particles are, not a whole likelihood volume
    lit = np.frombuffer(bytes(images[-1].data), np.uint8) > 25
    assert 0 < lit.sum() < 0.2 * lit.size
