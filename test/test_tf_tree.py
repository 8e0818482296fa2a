"""The fallback transform tree: chains, inversion, interpolation, statics, and lookup failures."""

import numpy as np
import pytest

from translocnet_ros.geo.pose import yaw_to_quaternion
from translocnet_ros.geo.tf_tree import TransformError, TransformTree, matrix_to_quat, quat_to_matrix


def test_chain_through_static_and_dynamic_edges():
    tf = TransformTree()
    tf.set_transform("odom", "base_link", 10.0, [0, 0, 0], yaw_to_quaternion(0.0), static=False)
    tf.set_transform("odom", "base_link", 11.0, [2, 0, 0], yaw_to_quaternion(np.pi / 2), static=False)
    tf.set_transform("base_link", "velo_link", 0.0, [0.8, 0, 1.7], [0, 0, 0, 1], static=True)
    m = tf.lookup("odom", "velo_link", 10.5)  # halfway: x = 1, yaw = 45 deg
    expected_xy = np.array([1.0, 0.0]) + 0.8 * np.array([np.cos(np.pi / 4), np.sin(np.pi / 4)])
    np.testing.assert_allclose(m[:2, 3], expected_xy, atol=1e-9)
    assert m[2, 3] == pytest.approx(1.7)
    inv = tf.lookup("velo_link", "odom", 10.5)
    np.testing.assert_allclose(inv @ m, np.eye(4), atol=1e-9)
    latest = tf.lookup("odom", "base_link")  # time 0 = latest common time
    np.testing.assert_allclose(latest[:2, 3], [2.0, 0.0])


def test_siblings_meet_at_the_common_parent():
    tf = TransformTree()
    tf.set_transform("map", "odom", 0.0, [100, 50, 0], yaw_to_quaternion(0.3), static=True)
    tf.set_transform("map", "gps", 0.0, [90, 40, 0], [0, 0, 0, 1], static=True)
    m = tf.lookup("gps", "odom")
    np.testing.assert_allclose(m[:2, 3], [10, 10])


def test_out_of_range_and_unconnected_lookups_fail_clearly():
    tf = TransformTree(tolerance_s=0.05)
    tf.set_transform("odom", "base_link", 5.0, [0, 0, 0], [0, 0, 0, 1], static=False)
    tf.set_transform("odom", "base_link", 6.0, [1, 0, 0], [0, 0, 0, 1], static=False)
    assert tf.lookup("odom", "base_link", 6.04)[0, 3] == pytest.approx(1.0)  # within tolerance
    with pytest.raises(TransformError, match="outside the buffered"):
        tf.lookup("odom", "base_link", 7.0)
    with pytest.raises(TransformError, match="no transform"):
        tf.lookup("map", "base_link", 5.5)


def test_history_is_bounded_and_out_of_order_samples_are_sorted():
    tf = TransformTree(cache_time_s=2.0)
    for t in [0.0, 1.0, 3.0, 2.0, 4.0]:
        tf.set_transform("odom", "base_link", t, [t, 0, 0], [0, 0, 0, 1], static=False)
    assert tf.lookup("odom", "base_link", 2.5)[0, 3] == pytest.approx(2.5)
    with pytest.raises(TransformError):
        tf.lookup("odom", "base_link", 0.5)


def test_quaternion_roundtrip():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q2 = matrix_to_quat(quat_to_matrix(q))
        assert min(np.abs(q - q2).max(), np.abs(q + q2).max()) < 1e-9
