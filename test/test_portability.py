"""The model file loads where users are (older torch), and the engine runs with no ROS installed.

The operator allow-list in translocnet_ros/model/compat.py was checked by hand by loading the committed model in
torch 2.4.1 (CPU, its own venv) with `benchmarks/torch_compat.py check` (logits within 1e-4 of torch 2.13);
a real old-torch load stays out of CI because those wheels are multi-GB CUDA builds.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from translocnet_ros.model.compat import (
    ALLOWED_OPS,
    MAX_FORMAT_VERSION,
    format_version,
    graph_ops,
    portability_problems,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "translocnet.pt"


def test_committed_model_uses_only_checked_operators_and_format():
    assert portability_problems(MODEL) == []
    meta = json.loads(MODEL.with_suffix(".json").read_text())
    assert meta["format_version"] == format_version(MODEL) <= MAX_FORMAT_VERSION
    assert meta["loads_on_torch"].startswith(">=2.4")


class _Interpolating(nn.Module):
    """What the old network did: a scripted F.interpolate compiles every mode, new ops included."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear")

    @torch.jit.export
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def score(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_scripted_interpolate_is_caught(tmp_path):
    path = tmp_path / "m.pt"
    torch.jit.script(_Interpolating()).save(str(path))
    ops = graph_ops(torch.jit.load(str(path)))
    assert not ops <= ALLOWED_OPS
    problems = portability_problems(path)
    assert problems and "operators not checked" in problems[0]


def test_portable_network_matches_the_functional_ops():
    """The compat network's attention and resize are numerically what nn.MultiheadAttention and
    F.interpolate compute, so weights trained with either give the same model."""
    from translocnet_ros.model.network import Attention, resize_bilinear

    g = torch.Generator().manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, batch_first=True).eval()
    ours = Attention(16, 4).eval()
    ours.load_state_dict(mha.state_dict())
    q, k = torch.randn(2, 7, 16, generator=g), torch.randn(2, 9, 16, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(ours(q, k, k), mha(q, k, k, need_weights=False)[0], atol=1e-5, rtol=1e-5)
    x = torch.randn(1, 3, 5, 6, generator=g)
    torch.testing.assert_close(
        resize_bilinear(x, [9, 13]), F.interpolate(x, size=(9, 13), mode="bilinear", align_corners=False)
    )


HIDE_ROS = textwrap.dedent(
    """
    import importlib.abc, sys
    ROS = ("rclpy", "ament_index_python", "rosidl_runtime_py", "rcl_interfaces", "sensor_msgs",
           "geometry_msgs", "std_msgs", "tf2_msgs", "tf2_ros", "builtin_interfaces")
    class HideRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ROS:
                raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)")
    sys.meta_path.insert(0, HideRos())
    """
)


@pytest.mark.parametrize("method", ["translocnet", "ncc"])
def test_engine_runs_without_ros(method, small_town):
    """Import the engine and localize one scan with every ROS package hidden from the import path."""
    town = small_town
    drive_dir = sorted(town.glob("drive_*"))[0]
    code = HIDE_ROS + textwrap.dedent(
        f"""
        import numpy as np
        from translocnet_ros.dataset.kitti import KittiDrive
        from translocnet_ros.geo.crs import MapFrame
        from translocnet_ros.geo.pose import Pose2D
        from translocnet_ros.imagery.geotiff import GeoTiffSource
        from translocnet_ros.localization.methods import make_method
        from translocnet_ros.localization.translocnet import DEFAULT_MODEL
        from translocnet_ros.localization.types import SearchWindow
        try:
            import rclpy
            raise SystemExit("rclpy still importable")
        except ModuleNotFoundError:
            pass
        src = GeoTiffSource({str(town / "ortho.tif")!r})
        drive = KittiDrive({str(drive_dir)!r})
        gt = drive.ground_truth(MapFrame.from_any(src.crs)).poses[0]
        loc = make_method({method!r})
        est = loc.localize(drive.scan_base(drive.frames[0]), src, Pose2D(gt.x + 3, gt.y - 2, gt.yaw),
                           SearchWindow(8.0))
        assert np.isfinite(est.pose.x) and 0 <= est.confidence <= 1
        print("model", DEFAULT_MODEL.name, "error", round(float(np.hypot(est.pose.x - gt.x, est.pose.y - gt.y)), 2))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("AMENT_PREFIX_PATH", "PYTHONPATH")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "error" in out.stdout
