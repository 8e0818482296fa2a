"""Test-session isolation for ROS 2: DDS stays on loopback in a domain of its own, logs in a temp dir.

Set before any test imports rclpy, so every context and every child process inherits it.
"""

import importlib
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config):
    os.environ["ROS_DOMAIN_ID"] = str(
        random.Random(os.getpid() ^ int.from_bytes(os.urandom(4))).randint(1, 101)
    )
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    if os.environ.get("ROS_DISTRO") == "humble":
        os.environ["ROS_LOCALHOST_ONLY"] = "1"
    os.environ["ROS_LOG_DIR"] = tempfile.mkdtemp(prefix="translocnet-roslog-")
    os.environ.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")


def require_ros(module: str = "rclpy"):
    """A ROS 2 Python module, or a skip where no ROS 2 can exist. The project's test command sets
    TRANSLOCNET_REQUIRE_ROS=1, so there a broken environment fails instead of skipping."""
    if os.environ.get("TRANSLOCNET_REQUIRE_ROS") == "1":
        return importlib.import_module(module)
    return pytest.importorskip(module, reason=f"{module} not importable (source scripts/env.sh)")


@pytest.fixture
def ros_context():
    """A private rclpy context, shut down after the test."""
    rclpy = require_ros()
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    ctx.try_shutdown()


@pytest.fixture
def python_exe():
    return sys.executable


@pytest.fixture(scope="session")
def small_town(tmp_path_factory):
    """A small synthetic town with one 12-frame drive, generated once per test session. Plumbing tests need a
    town every method localizes in: little relief displacement and the plain HDL-64E (realistic towns with a
    strong lean, a low sun or another sensor are the benchmarks' job). Seed 9 draws a high summer sun."""
    from translocnet_ros.synth.town import TownSpec, generate_town

    out = tmp_path_factory.mktemp("town") / "downtown_9"
    spec = TownSpec(
        seed=9,
        style="downtown",
        size_m=300.0,
        n_frames=12,
        n_moving_cars=4,
        max_lean=0.1,
        sensor_variety=False,
    )
    generate_town(spec, out, progress=False)
    return out


HELSINKI = SHARED_DATA / "helsinki-dev"
