"""launch_testing check of launch/localize.launch.py: the node starts and reports on /diagnostics.

Runs wherever ROS 2's launch_testing is installed (a real Humble/Jazzy/Kilted install); the PyPI-wheel
environment of this repository has no `launch`/`launch_testing` (the PyPI package named `launch` is an
unrelated project), so there it is skipped with that reason.
"""

import os
import time
import unittest

import pytest

pytest.importorskip(
    "launch_testing",
    reason="launch_testing is not installed: it comes only with a ROS 2 install, not from PyPI",
)
pytest.importorskip("launch.launch_description_sources", reason="ROS 2 launch is not installed")

import launch_testing.actions
import rclpy
from ament_index_python.packages import get_package_share_directory
from diagnostic_msgs.msg import DiagnosticArray
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource

from launch import LaunchDescription


@pytest.mark.launch_test
def generate_test_description():
    share = get_package_share_directory("translocnet_ros")
    include = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", "localize.launch.py")),
        launch_arguments={"imagery": "/nonexistent/ortho.tif"}.items(),
    )
    return LaunchDescription([include, launch_testing.actions.ReadyToTest()])


class TestLocalizerLaunch(unittest.TestCase):
    def test_node_reports_diagnostics(self):
        rclpy.init()
        node = rclpy.create_node("launch_test_listener")
        got = []
        node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: got.extend(m.status), 10)
        deadline = time.monotonic() + 30
        while not got and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.2)
        node.destroy_node()
        rclpy.shutdown()
        self.assertTrue(any("translocnet" in s.name for s in got))
        # the imagery does not exist: the node must stay up and say so
        self.assertTrue(any("set-up failed" in s.message for s in got))
