"""CPU and CUDA give the same estimates (runs where a GPU is present; the CI machine has none)."""

import numpy as np
import pytest
import torch

from translocnet_ros.dataset.kitti import KittiDrive
from translocnet_ros.geo.crs import MapFrame
from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.localization.translocnet import TransLocNetLocalizer
from translocnet_ros.localization.types import SearchWindow

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")


@pytest.mark.parametrize("yaw_range", [np.radians(10.0), np.pi])
def test_cpu_and_cuda_estimates_agree(small_town, yaw_range):
    drive = KittiDrive(sorted(small_town.glob("drive_*"))[0])
    src = GeoTiffSource(small_town / "ortho.tif")
    gts = drive.ground_truth(MapFrame.from_any(src.crs)).poses
    cpu, cuda = TransLocNetLocalizer(device="cpu"), TransLocNetLocalizer(device="cuda")
    assert cuda.yaw_chunk >= len(cuda.yaw_offsets(SearchWindow(20.0, np.pi)))  # one batch for all yaws
    for k in range(0, len(drive.frames), 4):
        scan, prior = drive.scan_base(drive.frames[k]), gts[k].offset(4.0, -3.0, 0.05)
        window = SearchWindow(20.0, yaw_range)
        a, b = cpu.score_volume(scan, src, prior, window), cuda.score_volume(scan, src, prior, window)
        np.testing.assert_allclose(a.logits, b.logits, atol=0.05)
        ea, eb = cpu.localize(scan, src, prior, window), cuda.localize(scan, src, prior, window)
        assert np.hypot(ea.pose.x - eb.pose.x, ea.pose.y - eb.pose.y) < 0.01
        assert abs(ea.confidence - eb.confidence) < 0.02
