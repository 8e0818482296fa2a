"""PointCloud2 <-> numpy on layouts real drivers produce: padding, big-endian, row padding, NaNs, odd names."""

from types import SimpleNamespace as NS

import numpy as np
import pytest
from conftest import require_ros

from translocnet_ros.ros.pointcloud2 import (
    FLOAT32,
    FLOAT64,
    UINT16,
    CloudFormatError,
    cloud_to_array,
    cloud_to_xyzi,
    fields_to_dtype,
)


def field(name, offset, datatype, count=1):
    return NS(name=name, offset=offset, datatype=datatype, count=count)


def make_msg(arr: np.ndarray, fields, height=1, row_pad=0, bigendian=False, dense=True):
    """A duck-typed PointCloud2 holding arr (structured, itemsize = point_step) in `height` rows."""
    width = arr.size // height
    rows = arr.reshape(height, width).view(np.uint8).reshape(height, -1)
    padded = np.concatenate([rows, np.full((height, row_pad), 0xAB, np.uint8)], axis=1)
    return NS(
        height=height,
        width=width,
        fields=fields,
        is_bigendian=bigendian,
        point_step=arr.dtype.itemsize,
        row_step=padded.shape[1],
        is_dense=dense,
        data=padded.tobytes(),
    )


def velodyne_like(n, order="<"):
    # x y z (f4) + 4 pad bytes + intensity f4 + ring u2 + 2 pad bytes: point_step 24, like velodyne_pointcloud.
    dt = np.dtype(
        {
            "names": ["x", "y", "z", "intensity", "ring"],
            "formats": [order + "f4"] * 4 + [order + "u2"],
            "offsets": [0, 4, 8, 16, 20],
            "itemsize": 24,
        }
    )
    arr = np.zeros(n, dtype=dt)
    rng = np.random.default_rng(0)
    for k in ("x", "y", "z"):
        arr[k] = rng.normal(size=n)
    arr["intensity"] = rng.integers(0, 256, n)  # the Velodyne driver's 0..255 reflectivity
    arr["ring"] = np.arange(n) % 64
    fields = [
        field("x", 0, FLOAT32),
        field("y", 4, FLOAT32),
        field("z", 8, FLOAT32),
        field("intensity", 16, FLOAT32),
        field("ring", 20, UINT16),
    ]
    return arr, fields


def test_dtype_keeps_offsets_and_point_step():
    _, fields = velodyne_like(1)
    dt = fields_to_dtype(fields, 24, False)
    assert dt.itemsize == 24
    assert dt.fields["intensity"][1] == 16 and dt.fields["ring"][1] == 20
    assert dt.fields["ring"][0] == np.dtype("<u2")


@pytest.mark.parametrize("order,big", [("<", False), (">", True)])
def test_padded_layout_and_endianness(order, big):
    arr, fields = velodyne_like(50, order)
    msg = make_msg(arr, fields, bigendian=big)
    out = cloud_to_array(msg)
    np.testing.assert_array_equal(out["x"], arr["x"])
    np.testing.assert_array_equal(out["ring"], arr["ring"])
    xyzi = cloud_to_xyzi(msg)
    assert xyzi.points.dtype == np.float32 and xyzi.points.shape == (50, 4)
    assert xyzi.intensity_field == "intensity" and xyzi.intensity_divisor == 255  # onto 0..1 reflectance
    np.testing.assert_allclose(xyzi.points[:, 3], arr["intensity"] / 255.0, rtol=1e-6)


def test_organized_cloud_with_row_padding():
    arr, fields = velodyne_like(4 * 16)
    msg = make_msg(arr, fields, height=4, row_pad=12)
    assert msg.row_step == 16 * 24 + 12
    out = cloud_to_array(msg)
    assert out.shape == (64,)
    np.testing.assert_array_equal(out["y"], arr["y"])


def test_nan_points_dropped_and_counted():
    arr, fields = velodyne_like(10)
    arr["x"][[1, 4]] = np.nan
    arr["z"][7] = np.inf
    arr["intensity"][0] = np.nan
    xyzi = cloud_to_xyzi(make_msg(arr, fields, dense=False))
    assert xyzi.dropped_nonfinite == 3
    assert xyzi.points.shape == (7, 4)
    assert np.isfinite(xyzi.points).all()
    assert xyzi.points[0, 3] == 0.0  # non-finite intensity becomes 0, the point stays


def test_kitti2bag_field_names_and_float64():
    dt = np.dtype(
        {
            "names": ["x", "y", "z", "i"],
            "formats": ["<f8"] * 3 + ["<f4"],
            "offsets": [0, 8, 16, 24],
            "itemsize": 32,
        }
    )
    arr = np.zeros(3, dt)
    arr["x"], arr["i"] = [1.5, 2.5, 3.5], [0.1, 0.2, 0.3]
    fields = [
        field("x", 0, FLOAT64),
        field("y", 8, FLOAT64),
        field("z", 16, FLOAT64),
        field("i", 24, FLOAT32),
    ]
    xyzi = cloud_to_xyzi(make_msg(arr, fields))
    assert xyzi.intensity_field == "i"
    np.testing.assert_allclose(xyzi.points[:, 0], [1.5, 2.5, 3.5])
    np.testing.assert_allclose(xyzi.points[:, 3], [0.1, 0.2, 0.3], rtol=1e-6)


def test_no_intensity_field_gives_zero():
    arr, fields = velodyne_like(5)
    xyzi = cloud_to_xyzi(make_msg(arr, fields[:3] + fields[4:]))
    assert xyzi.intensity_field is None and (xyzi.points[:, 3] == 0).all()


def test_empty_cloud():
    arr, fields = velodyne_like(0)
    msg = make_msg(arr, fields)
    assert cloud_to_xyzi(msg).points.shape == (0, 4)


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda m: setattr(m, "fields", m.fields[1:]), "lacks field"),
        (lambda m: setattr(m, "data", m.data[:-30]), "bytes"),
        (lambda m: setattr(m, "row_step", 10), "row_step"),
        (lambda m: setattr(m, "point_step", 8), "point_step"),
        (lambda m: m.fields.__setitem__(0, field("x", 0, 99)), "datatype"),
    ],
)
def test_bad_layouts_raise_clear_errors(mutate, match):
    arr, fields = velodyne_like(8)
    msg = make_msg(arr, list(fields))
    mutate(msg)
    with pytest.raises(CloudFormatError, match=match):
        cloud_to_xyzi(msg)


def test_roundtrip_through_real_message():
    require_ros("sensor_msgs.msg")
    from translocnet_ros.ros.pointcloud2 import array_to_cloud

    pts = np.random.default_rng(3).normal(size=(100, 4)).astype(np.float32)
    pts[:, 3] = np.abs(pts[:, 3]) / np.abs(pts[:, 3]).max()  # reflectance 0..1 (KITTI's scale) stays as it is
    pts[5, 0] = np.nan
    msg = array_to_cloud(pts, "velo_link")
    assert msg.is_dense is False and msg.point_step == 16
    xyzi = cloud_to_xyzi(msg)
    np.testing.assert_array_equal(xyzi.points, np.delete(pts, 5, axis=0))


def lidar_like(n, seed=0):
    """float32 x, y, z, intensity of a plausible sweep: ranges 2-60 m, heights -2..8 m."""
    rng = np.random.default_rng(seed)
    a, r = rng.uniform(-np.pi, np.pi, n), rng.uniform(2.0, 60.0, n)
    pts = np.column_stack([r * np.cos(a), r * np.sin(a), rng.uniform(-2.0, 8.0, n), rng.uniform(0, 1, n)])
    arr = np.zeros(n, np.dtype({"names": list("xyzi"), "formats": ["<f4"] * 4, "offsets": [0, 4, 8, 12]}))
    for k, name in enumerate("xyzi"):
        arr[name] = pts[:, k]
    return arr, [field(name, 4 * k, FLOAT32) for k, name in enumerate("xyzi")]


def test_xyz_with_count_above_one_is_refused():
    arr, fields = lidar_like(100)
    fields[0] = field("x", 0, FLOAT32, count=3)  # x, y, z packed as one field of three
    msg = make_msg(arr, [fields[0], field("y", 16, FLOAT32), field("z", 20, FLOAT32)])
    msg.point_step, msg.row_step = 24, 2400
    msg.data = np.zeros(2400, np.uint8).tobytes()
    with pytest.raises(CloudFormatError, match=r"\['x'\] have PointField count \[3\]"):
        cloud_to_xyzi(msg)


def test_float64_declared_over_float32_data_is_refused():
    arr, _ = lidar_like(100)
    overlapping = [field(name, 4 * k, FLOAT64) for k, name in enumerate("xyz")]  # same offsets, 8 bytes each
    with pytest.raises(CloudFormatError, match="overlap"):
        cloud_to_xyzi(make_msg(arr, overlapping))
    spread = [field(name, 8 * k, FLOAT64) for k, name in enumerate("xyz")]  # honest offsets, data too short
    msg = make_msg(arr, spread)
    msg.point_step, msg.row_step = 24, 2400
    with pytest.raises(CloudFormatError, match="does not fit the data"):
        cloud_to_xyzi(msg)


@pytest.mark.parametrize("seed", range(3))
def test_wrong_endianness_decodes_to_points_no_sensor_produces(seed):
    arr, fields = lidar_like(5000, seed)
    assert len(cloud_to_xyzi(make_msg(arr, fields), max_range_m=250.0).points) == 5000
    with pytest.raises(CloudFormatError, match="beyond max_range_m"):
        cloud_to_xyzi(make_msg(arr, fields, bigendian=True), max_range_m=250.0)


def test_few_far_points_are_dropped_many_refuse_the_cloud():
    arr, fields = lidar_like(1000)
    arr["x"][:5] = 1e30  # 0.5%: dropped and counted
    out = cloud_to_xyzi(make_msg(arr, fields), max_range_m=250.0)
    assert out.beyond_range == 5 and len(out.points) == 995
    arr["y"][100:600] = 3.4e38  # half of the cloud
    with pytest.raises(CloudFormatError, match="505 of 1000 finite points"):
        cloud_to_xyzi(make_msg(arr, fields), max_range_m=250.0)


def test_huge_cloud_is_subsampled_evenly_without_full_size_copies():
    import tracemalloc

    arr, fields = lidar_like(2_000_000)
    arr["x"] = np.arange(arr.size)  # exactly representable below 2**24: tells which points were kept
    msg = make_msg(arr, fields)
    tracemalloc.start()
    out = cloud_to_xyzi(msg, max_points=50_000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert out.total_points == 2_000_000 and len(out.points) == 50_000
    kept = out.points[:, 0].astype(np.int64)
    assert kept[0] == 0 and kept[-1] == 1_999_999 and np.ptp(np.diff(kept)) <= 1  # evenly spread
    assert peak < 0.25 * len(msg.data)  # never a full-size copy of the 32 MB cloud (peak ~ 3 MB here)


@pytest.mark.parametrize(
    "intensity,full_scale,divisor",
    [
        (np.linspace(0.0, 1.0, 500), 0.0, 1.0),  # KITTI / kitti2bag: already reflectance
        (np.r_[np.linspace(0.0, 1.0, 499), 3.0], 0.0, 1.0),  # a few glints above 1: still reflectance
        (np.linspace(0.0, 255.0, 500), 0.0, 255.0),  # 8-bit drivers (Velodyne, Livox, Hesai)
        (np.linspace(0.0, 4000.0, 500), 0.0, np.quantile(np.linspace(0.0, 4000.0, 500), 0.99)),  # counts
        (np.linspace(0.0, 100.0, 500), 100.0, 100.0),  # the driver's maximum, given
    ],
)
def test_intensities_of_every_driver_end_on_the_reflectance_scale(intensity, full_scale, divisor):
    from translocnet_ros.dataset.reflectance import to_reflectance

    pts = np.column_stack([np.ones((len(intensity), 3)), intensity]).astype(np.float32)
    out, used = to_reflectance(pts, full_scale)
    assert used == pytest.approx(divisor)
    np.testing.assert_allclose(out[:, 3], np.clip(intensity / divisor, 0, 1), rtol=1e-6)
    np.testing.assert_array_equal(out[:, :3], pts[:, :3])
    if intensity.max() <= 1.0:
        assert out is pts  # nothing copied on the common path


def test_a_velodyne_driver_scan_localizes_like_the_same_scan_in_kitti_scale(small_town, tmp_path):
    """The same sweep with the driver's 0..255 intensities (a KITTI-layout drive written from a Velodyne ROS
    driver's clouds) reads back on KITTI's 0..1 and gives the same likelihood."""
    import shutil

    from translocnet_ros.dataset.kitti import KittiDrive
    from translocnet_ros.geo.crs import MapFrame
    from translocnet_ros.imagery.geotiff import GeoTiffSource
    from translocnet_ros.localization.methods import make_method
    from translocnet_ros.localization.types import SearchWindow

    src_dir = sorted(small_town.glob("drive_*"))[0]
    town = tmp_path / "town"
    shutil.copytree(src_dir, town / src_dir.name)
    shutil.copy(small_town / "calib_imu_to_velo.txt", town)
    for scan in (town / src_dir.name / "velodyne_points" / "data").glob("*.bin"):
        raw = np.fromfile(scan, "<f4").reshape(-1, 4)
        raw[:, 3] = np.round(raw[:, 3] * 255.0)
        raw.tofile(scan)
    kitti, velodyne = KittiDrive(src_dir), KittiDrive(town / src_dir.name)
    np.testing.assert_allclose(velodyne.scan_base(0)[:, 3], kitti.scan_base(0)[:, 3], atol=0.5 / 255)
    ortho = GeoTiffSource(small_town / "ortho.tif")
    prior = kitti.ground_truth(MapFrame.from_any(ortho.crs)).poses[0]
    method = make_method("translocnet", views=1, ncc_weight=0.0)
    a = method.score_volume(kitti.scan_base(0), ortho, prior, SearchWindow(4.0, 0.05)).logits
    b = method.score_volume(velodyne.scan_base(0), ortho, prior, SearchWindow(4.0, 0.05)).logits
    assert np.unravel_index(a.argmax(), a.shape) == np.unravel_index(b.argmax(), b.shape)
    assert np.abs(a - b).max() < 0.05 * np.ptp(a)
