"""The package installs the ROS 2 way: ament index marker, share/ files, executables where `ros2 run` looks."""

import os
import subprocess
from pathlib import Path

from conftest import ROOT

INSTALL = ROOT / "install" / "translocnet_ros"


def test_package_xml_is_valid_format3():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(ROOT / "package.xml"))
    pkg.validate()
    assert pkg.package_format == 3 and pkg.name == "translocnet_ros"
    assert pkg.get_build_type() == "ament_python"
    deps = {d.name for d in pkg.exec_depends}
    assert {"rclpy", "sensor_msgs", "geometry_msgs", "tf2_msgs", "diagnostic_msgs", "std_srvs"} <= deps


def test_colcon_install_tree():
    share = INSTALL / "share" / "translocnet_ros"
    assert (INSTALL / "share/ament_index/resource_index/packages/translocnet_ros").is_file()
    assert (share / "package.xml").is_file()
    for d in ("config", "launch", "models"):
        src = sorted(
            p.name for p in (ROOT / d).glob("*") if p.suffix in {".py", ".yaml", ".xml", ".pt", ".json"}
        )
        inst = sorted(p.name for p in (share / d).glob("*")) if (share / d).exists() else []
        assert src == inst, f"share/{d} does not mirror {d}/"
    exe = INSTALL / "lib" / "translocnet_ros" / "translocnet"
    assert os.access(exe, os.X_OK)
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "eval" in out.stdout


def test_ament_index_finds_package():
    from ament_index_python.packages import get_package_share_directory

    assert Path(get_package_share_directory("translocnet_ros"), "package.xml").is_file()
