"""Geodetic <-> map CRS conversion, meridian convergence and SE(2) poses, checked against pyproj."""

import numpy as np
import pytest
from pyproj import Proj

from translocnet_ros.geo.crs import MapFrame, wrap_angle
from translocnet_ros.geo.pose import Pose2D, quaternion_to_yaw, yaw_to_quaternion

POINTS = [
    ("EPSG:32632", 49.015003823272, 8.4342971002335),  # KITTI 2011_09_26 drive 0001, first OXTS fix
    ("EPSG:3067", 60.167783868996, 24.873514111750),  # Helsinki
    ("EPSG:2056", 46.95, 7.45),  # Swiss LV95 (oblique Mercator)
    ("EPSG:32610", 37.77, -122.42),  # west of a UTM central meridian
]


@pytest.mark.parametrize("crs,lat,lon", POINTS)
def test_convergence_matches_pyproj_factors(crs, lat, lon):
    frame = MapFrame.from_any(crs)
    expected = Proj(crs).get_factors(lon, lat).meridian_convergence
    assert np.degrees(frame.convergence(lat, lon)) == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("crs,lat,lon", POINTS)
def test_latlon_roundtrip(crs, lat, lon):
    frame = MapFrame.from_any(crs)
    x, y = frame.to_map(lat, lon)
    lat2, lon2 = frame.to_latlon(x, y)
    assert (lat2, lon2) == pytest.approx((lat, lon), abs=1e-9)


def test_heading_conversion_roundtrip_and_sign():
    frame = MapFrame.from_any("EPSG:3067")  # central meridian 27 E: Helsinki (24.9 E) is west of it
    lat, lon = 60.17, 24.87
    grid = frame.true_to_grid_yaw(0.3, lat, lon)
    assert grid < 0.3  # west of the central meridian, grid north is east of true north
    assert frame.grid_to_true_yaw(grid, lat, lon) == pytest.approx(0.3)


def test_geographic_crs_is_rejected():
    with pytest.raises(ValueError, match="projected"):
        MapFrame.from_any("EPSG:4326")


def test_pose_algebra():
    a, b = Pose2D(10.0, -3.0, 0.7), Pose2D(1.5, 2.0, -2.0)
    ab = a.compose(b)
    back = a.inverse().compose(ab)
    assert (back.x, back.y, back.yaw) == pytest.approx((b.x, b.y, b.yaw))
    pts = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(a.transform_points(pts)[0], [10 + np.cos(0.7), -3 + np.sin(0.7)])
    assert quaternion_to_yaw(*yaw_to_quaternion(-2.5)) == pytest.approx(-2.5)
    assert wrap_angle(np.pi) == pytest.approx(-np.pi)
