"""The localizer's parameters: defaults, descriptions, ranges, and which of them may change at run time.

Tunables (thresholds, windows, tolerances) are live: `ros2 param set` takes effect on the next scan, within
the descriptor's range. Everything that is wired at start-up (model, imagery, frames, QoS, the prior) is
read-only, so setting it is refused with a reason instead of silently doing nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

from translocnet_ros.localization.filter import FilterConfig, MotionNoise
from translocnet_ros.localization.tracker import TrackerConfig
from translocnet_ros.localization.types import MIN_SCAN_POINTS

_F = FilterConfig()  # the filter's defaults are the engine's: eval --protocol sequence runs the same ones


@dataclass(frozen=True)
class Param:
    default: object
    description: str
    live: bool = False  # settable at run time
    low: float | None = None  # inclusive range, checked by rclpy through the descriptor
    high: float | None = None

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=not self.live)
        if self.low is not None and isinstance(self.default, int) and not isinstance(self.default, bool):
            d.integer_range = [IntegerRange(from_value=int(self.low), to_value=int(self.high), step=1)]
        elif self.low is not None:
            d.floating_point_range = [FloatingPointRange(from_value=self.low, to_value=self.high, step=0.0)]
        return d


PARAMETERS: dict[str, Param] = {
    "method": Param(
        "auto", "translocnet (learned), ncc (classic baseline) or auto (translocnet when its model exists)"
    ),
    "model_path": Param("", "TorchScript model; empty = models/translocnet.pt of this package"),
    "device": Param("auto", "inference device: auto (CUDA when present), cpu or cuda"),
    "views": Param(
        0,
        "translocnet: test-time views averaged per scan (1, 2, 4 or 8; each costs one more network pass); "
        "0 = the setting the model was calibrated at (its metadata)",
        False,
        0,
        8,
    ),
    "ncc_weight": Param(
        -1.0,
        "translocnet: weight of the classic NCC matcher's log-likelihood added to the model's logits (0 = none, "
        "one NCC search less per scan); -1 = the setting the model was calibrated at (its metadata)",
        False,
        -1.0,
        100.0,
    ),
    "imagery": Param(
        "", "orthophoto: GeoTIFF/COG path, or XYZ tile URL template with {z}/{x}/{y} (tms:// for TMS)"
    ),
    "map_crs": Param("", "projected CRS of the map frame (e.g. EPSG:32632); empty = the GeoTIFF's own CRS"),
    "map_origin": Param(
        [0.0, 0.0], "map-frame origin in map_crs coordinates (published poses are relative to it)"
    ),
    "tile_timeout_s": Param(2.0, "tile server: per-request timeout"),
    "tile_cache_dir": Param("", "tile server: optional on-disk tile cache folder"),
    "search_radius_m": Param(
        20.0,
        "wide search: half-size of the position window around a prior (initial pose, GNSS, relocalize)",
        True,
        2.0,
        100.0,
    ),
    "search_yaw_deg": Param(
        10.0, "wide search: half-range of yaw when the prior's heading is known", True, 1.0, 180.0
    ),
    "tracking_radius_m": Param(
        6.0,
        "tracking: half-size of the position window once the belief fits in it (filter off: around the "
        "odometry-moved fix)",
        True,
        1.0,
        100.0,
    ),
    "tracking_yaw_deg": Param(6.0, "tracking: half-range of yaw", True, 1.0, 180.0),
    "confidence_tracking": Param(
        0.5,
        "filter off: confidence from which the node tracks with a small window (>= confidence_publish)",
        True,
        0.0,
        1.0,
    ),
    "confidence_publish": Param(
        0.2,
        "a pose is published from this confidence up (filter on: the posterior's, a probability always below 1, "
        "so 1 publishes nothing)",
        True,
        0.0,
        1.0,
    ),
    "filter.enabled": Param(
        True,
        "temporal filter: fuse every scan's likelihood with odometry and publish the posterior once it has "
        "converged (as eval --protocol sequence); false: every scan localized alone",
    ),
    "filter.particles": Param(
        _F.particles, "filter: particle count (applies from the next seed)", True, 100, 100_000
    ),
    "filter.tempering": Param(
        _F.tempering,
        "filter: exponent on each scan's likelihood (< 1: consecutive scans of one street are correlated)",
        True,
        0.01,
        1.0,
    ),
    "filter.uniform_floor": Param(
        _F.uniform_floor,
        "filter: share of each scan's likelihood spread uniformly, so one bad scan cannot kill the true pose",
        True,
        0.001,
        0.9,
    ),
    "filter.readable_confidence": Param(
        _F.readable_confidence,
        "filter: the posterior's confidence is trusted fully while the median single-scan confidence of the last "
        "filter.readable_window scans, and their median mass near the belief, reach this; in proportion below "
        "(imagery the model reads poorly, scans that single out another place: not published; 0: always trusted)",
        True,
        0.0,
        1.0,
    ),
    "filter.readable_window": Param(
        _F.readable_window,
        "filter: scans whose median confidence sets the readability and backing",
        False,
        1,
        1000,
    ),
    "filter.motion_trans_per_m": Param(
        _F.motion.trans_per_m, "filter: odometry position noise sd per metre travelled", True, 0.0, 1.0
    ),
    "filter.motion_trans_m": Param(
        _F.motion.trans_m, "filter: odometry position noise sd per scan [m]", True, 0.0, 5.0
    ),
    "filter.motion_yaw_deg_per_m": Param(
        _F.motion.yaw_deg_per_m, "filter: odometry yaw noise sd per metre travelled [deg]", True, 0.0, 10.0
    ),
    "filter.motion_yaw_deg": Param(
        _F.motion.yaw_deg, "filter: odometry yaw noise sd per scan [deg]", True, 0.0, 30.0
    ),
    "filter.motion_scale_sd": Param(
        _F.motion.scale_sd,
        "filter: prior sd of the odometry's translation scale error, learned as the vehicle drives (0: not learned)",
        True,
        0.0,
        0.2,
    ),
    "filter.motion_drift_deg_per_m_sd": Param(
        _F.motion.drift_deg_per_m_sd,
        "filter: prior sd of the odometry's heading drift per metre, learned as the vehicle drives (0: not learned)",
        True,
        0.0,
        5.0,
    ),
    "filter.motion_calibration_walk_per_m": Param(
        _F.motion.calibration_walk_per_m,
        "filter: random walk of the learned scale and drift, as a share of their prior sd per sqrt(metre)",
        True,
        0.0,
        1.0,
    ),
    "filter.unknown_motion_m": Param(
        _F.unknown_motion_m,
        "filter: position random walk sd per scan when there is no odometry (odom_frame '' or no TF)",
        True,
        0.0,
        20.0,
    ),
    "filter.unknown_motion_deg": Param(
        _F.unknown_motion_deg, "filter: yaw random walk sd per scan without odometry", True, 0.0, 90.0
    ),
    "filter.converged_confidence": Param(
        _F.converged_confidence,
        "filter: posterior mass within 1 m and 2 deg of the mode from which it is converged (and publishes)",
        True,
        0.05,
        1.0,
    ),
    "filter.lost_radius_m": Param(
        _F.lost_radius_m,
        "filter: half-size of the wide search after a divergence (>= search_radius_m)",
        True,
        2.0,
        200.0,
    ),
    "filter.lost_yaw_deg": Param(
        _F.lost_yaw_deg, "filter: half-range of yaw after a divergence", True, 1.0, 180.0
    ),
    "filter.anchor_growth_per_m": Param(
        _F.anchor_growth_per_m,
        "filter: the last prior's window (initial pose, GNSS fix) moved by the odometry grows by this share of "
        "the distance driven; a young belief relocates and searches only inside it",
        True,
        0.0,
        1.0,
    ),
    "filter.anchor_release_scans": Param(
        _F.anchor_release_scans,
        "filter: scans in a row the belief must hold converged on readable scans (readability 1) before it may "
        "leave that region (a kidnapping); 0 = no region",
        True,
        0,
        1000,
    ),
    "filter.gnss_disagree_fixes": Param(
        _F.gnss_disagree_fixes,
        "filter: GNSS fixes in a row farther than search_radius_m from a converged belief that re-seed it at "
        "the fix; 0 = a converged filter ignores GNSS",
        True,
        0,
        1000,
    ),
    "map_frame": Param("map", "global frame of the published pose"),
    "odom_frame": Param(
        "odom",
        "odometry frame; the node publishes map -> odom once odom -> base_frame arrives on TF (and warns "
        "while it does not); empty = no odometry: publish map -> base_frame",
    ),
    "base_frame": Param(
        "base_link", "vehicle frame: the root of the robot's TF tree (it must have no other parent)"
    ),
    "publish_tf": Param(True, "publish the map -> odom (or map -> base_frame) transform", True),
    "transform_tolerance": Param(
        0.5, "post-date published transforms by this much [s] (as AMCL does)", True, 0.0, 10.0
    ),
    "points_reliable": Param(
        False,
        "subscribe to points with reliable QoS instead of SensorDataQoS (large clouds over "
        "a UDP-only DDS transport lose fragments when best effort)",
    ),
    "max_scan_age_s": Param(
        2.0, "scans older than this when processing starts are dropped", True, 0.0, 3600.0
    ),
    "max_scan_future_s": Param(
        0.5, "scans stamped further ahead of the node's clock than this are refused", True, 0.0, 60.0
    ),
    "min_points": Param(
        MIN_SCAN_POINTS,
        f"scans with fewer finite points are rejected (the methods need at least {MIN_SCAN_POINTS})",
        True,
        MIN_SCAN_POINTS,
        10_000_000,
    ),
    "max_points": Param(
        300_000,
        "larger clouds are evenly subsampled to this many points before anything else",
        True,
        1000,
        10_000_000,
    ),
    "max_range_m": Param(
        250.0,
        "points farther than this are dropped; a cloud with more than 1% of them is refused as corrupt",
        True,
        10.0,
        10_000.0,
    ),
    "intensity_full_scale": Param(
        0.0,
        "the LiDAR driver's intensity maximum, divided out onto the 0..1 reflectance the model knows (255 for "
        "8-bit drivers such as Velodyne's or Livox's); 0 = detect per scan (0..1 kept, <= 255 divided by 255, "
        "else by the scan's 99th percentile)",
        True,
        0.0,
        1e6,
    ),
    "scan_timeout_s": Param(
        5.0,
        "diagnostics warn 'no scans for N s' (and GNSS stale) after this long without input",
        True,
        0.5,
        3600.0,
    ),
    "initial_pose": Param([0.0], "optional [x, y, yaw] in the map frame to start from; [0.0] = none"),
}


def cross_check(values: dict) -> str:
    """Constraints between parameters that a single range cannot express; "" when they hold."""
    if values["confidence_publish"] > values["confidence_tracking"]:
        return (
            f"confidence_publish {values['confidence_publish']} must not exceed "
            f"confidence_tracking {values['confidence_tracking']}"
        )
    if values["filter.lost_radius_m"] < values["search_radius_m"]:
        return (
            f"filter.lost_radius_m {values['filter.lost_radius_m']} must not be below "
            f"search_radius_m {values['search_radius_m']}"
        )
    return ""


def filter_config(values: dict) -> FilterConfig:
    """The engine's filter configuration from the node's parameters (windows shared with the tracker)."""
    return FilterConfig(
        particles=values["filter.particles"],
        tempering=values["filter.tempering"],
        uniform_floor=values["filter.uniform_floor"],
        readable_confidence=values["filter.readable_confidence"],
        readable_window=values["filter.readable_window"],
        motion=MotionNoise(
            values["filter.motion_trans_per_m"],
            values["filter.motion_trans_m"],
            values["filter.motion_yaw_deg_per_m"],
            values["filter.motion_yaw_deg"],
            values["filter.motion_scale_sd"],
            values["filter.motion_drift_deg_per_m_sd"],
            values["filter.motion_calibration_walk_per_m"],
        ),
        tracking_radius_m=values["tracking_radius_m"],
        tracking_yaw_deg=values["tracking_yaw_deg"],
        search_radius_m=values["search_radius_m"],
        search_yaw_deg=values["search_yaw_deg"],
        lost_radius_m=values["filter.lost_radius_m"],
        lost_yaw_deg=values["filter.lost_yaw_deg"],
        unknown_motion_m=values["filter.unknown_motion_m"],
        unknown_motion_deg=values["filter.unknown_motion_deg"],
        converged_confidence=values["filter.converged_confidence"],
        anchor_growth_per_m=values["filter.anchor_growth_per_m"],
        anchor_release_scans=values["filter.anchor_release_scans"],
        gnss_disagree_fixes=values["filter.gnss_disagree_fixes"],
    )


def tracker_config(values: dict) -> TrackerConfig:
    """The single-scan tracker's configuration (filter.enabled false)."""
    return TrackerConfig(
        values["search_radius_m"],
        values["search_yaw_deg"],
        values["tracking_radius_m"],
        values["tracking_yaw_deg"],
        values["confidence_tracking"],
        values["confidence_publish"],
    )
