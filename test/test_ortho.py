"""GeoTIFF patches: georeference round-trip, reprojection between CRSs, pixel conventions, outside areas."""

import numpy as np
import pytest
import rasterio
from affine import Affine
from pyproj import Transformer

from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.patch import patch_transform
from translocnet_ros.synth.town import write_geotiff

X0, Y0, RES = 456_000.0, 5_430_000.0, 0.2  # UTM 32N, north-west corner


@pytest.fixture
def marker_tif(tmp_path):
    """400x400 px black image with a bright 5x5 px square centred on a known map point."""
    img = np.zeros((400, 400, 3), np.uint8)
    img[200:205, 300:305] = 255  # pixel centres (300.5..304.5, 200.5..204.5) -> centre (302.5, 202.5)
    path = tmp_path / "m.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=400,
        height=400,
        count=3,
        dtype="uint8",
        crs="EPSG:32632",
        transform=Affine(RES, 0, X0, 0, -RES, Y0),
    ) as ds:
        ds.write(img.transpose(2, 0, 1))
    return path, (X0 + 302.5 * RES, Y0 - 202.5 * RES)


def centroid(patch):
    w = patch.image[..., 0].astype(float)
    rows, cols = np.indices(w.shape)
    c, r = (cols + 0.5) * w, (rows + 0.5) * w  # continuous coordinates of pixel centres
    return patch.transform @ (c.sum() / w.sum(), r.sum() / w.sum())


def test_patch_transform_centre_convention():
    t = patch_transform(100.0, 200.0, 10, 0.5)
    assert t @ (5, 5) == pytest.approx((100.0, 200.0))  # even size: centre on the shared corner
    assert t.a == 0.5 and t.e == -0.5


@pytest.mark.parametrize("res", [0.2, 0.5])
def test_marker_lands_where_georeferenced(marker_tif, res):
    path, (mx, my) = marker_tif
    src = GeoTiffSource(path)
    patch = src.patch(mx + 3.3, my - 1.7, 30.0, res)  # off-centre request
    assert patch.valid.all() and patch.reason == ""
    assert centroid(patch) == pytest.approx((mx, my), abs=0.25 * res)


def test_reprojected_patch_in_another_crs(marker_tif):
    path, (mx, my) = marker_tif
    to_3857 = Transformer.from_crs("EPSG:32632", "EPSG:3857", always_xy=True)
    wx, wy = to_3857.transform(mx, my)
    patch = GeoTiffSource(path, map_crs="EPSG:3857").patch(wx, wy, 40.0, 0.3)  # Web Mercator metres
    assert centroid(patch) == pytest.approx((wx, wy), abs=0.15)


def test_outside_pixels_are_masked_with_reason(marker_tif):
    path, _ = marker_tif
    src = GeoTiffSource(path)
    patch = src.patch(X0, Y0, 20.0, 0.5)  # centred on the NW corner: 3/4 outside
    assert patch.valid.mean() == pytest.approx(0.25, abs=0.03)
    assert not patch.image[~patch.valid].any()
    assert "outside" in patch.reason


def test_written_geotiff_roundtrip(tmp_path):
    rows, cols = np.indices((1024, 768))
    img = np.stack([rows % 256, cols % 256, (rows + cols) % 256], -1).astype(np.uint8)
    t = Affine(0.25, 0, 385_000.0, 0, -0.25, 6_672_000.0)
    write_geotiff(tmp_path / "o.tif", img, t, "EPSG:3067")
    with rasterio.open(tmp_path / "o.tif") as ds:
        assert ds.crs.to_epsg() == 3067 and ds.transform == t and ds.overviews(1) == [2, 4, 8, 16]
        back = ds.read().transpose(1, 2, 0)
    assert np.abs(back.astype(int) - img).mean() < 8  # JPEG-compressed pixels, exact georeference
