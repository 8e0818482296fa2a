"""XYZ tile source: tile math against pyproj, a real TiTiler server on loopback, and faulty servers."""

import http.server
import threading
import time

import cv2
import numpy as np
import pytest
from affine import Affine
from pyproj import Transformer

from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.tile_server import serve_cog
from translocnet_ros.imagery.webmercator import (
    mercator_scale_factor,
    tile_bounds,
    tile_resolution,
    tiles_covering,
    tms_y,
    zoom_for_resolution,
)
from translocnet_ros.imagery.xyz import XyzTileSource
from translocnet_ros.synth.town import write_geotiff

CRS = "EPSG:32632"
X0, Y0 = 456_000.0, 5_430_300.0  # NW corner, Karlsruhe area


def test_tile_math_against_pyproj():
    to3857 = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    # the tile containing Karlsruhe palace at z 16 (lon 8.4044, lat 49.0135), by the slippy-map formula
    lon, lat, z = 8.4044, 49.0135, 16
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - np.arcsinh(np.tan(np.radians(lat))) / np.pi) / 2 * n)
    mx, my = to3857.transform(lon, lat)
    left, bottom, right, top = tile_bounds(z, x, y)
    assert left <= mx < right and bottom < my <= top
    assert tiles_covering((mx - 1, my - 1, mx + 1, my + 1), z)[::2] == (x, y)
    assert tile_resolution(0) == pytest.approx(156543.03392804097)
    assert tms_y(z, y) == n - 1 - y
    assert mercator_scale_factor(60.0) == pytest.approx(2.0)
    from pyproj import Proj

    for lon_, lat_ in (
        (24.9, 60.17),
        (8.4, 49.0),
        (-122.4, 37.8),
    ):  # vs PROJ's own scale factors of EPSG:3857
        assert mercator_scale_factor(lat_) == pytest.approx(
            Proj("EPSG:3857").get_factors(lon_, lat_).parallel_scale, rel=5e-3
        )
    assert zoom_for_resolution(tile_resolution(17)) == 17
    assert (
        zoom_for_resolution(tile_resolution(17) * 1.01) == 17
        and zoom_for_resolution(tile_resolution(17) * 0.99) == 18
    )


@pytest.fixture(scope="module")
def cog(tmp_path_factory):
    """A 300 x 300 m, 0.25 m/px COG with blobs and lines, so alignment errors show."""
    rng = np.random.default_rng(0)
    img = cv2.GaussianBlur(rng.integers(0, 255, (1200, 1200, 3)).astype(np.uint8), (0, 0), 6)
    img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX)
    for _ in range(60):
        p, q = rng.integers(0, 1200, 2), rng.integers(0, 1200, 2)
        cv2.line(
            img,
            tuple(int(v) for v in p),
            tuple(int(v) for v in q),
            tuple(int(v) for v in rng.integers(0, 255, 3)),
            6,
        )
    path = tmp_path_factory.mktemp("cog") / "ortho.tif"
    write_geotiff(path, img, Affine(0.25, 0, X0, 0, -0.25, Y0), CRS)
    return path


@pytest.fixture(scope="module")
def titiler(cog):
    with serve_cog(cog) as url:
        yield url


def test_titiler_patch_matches_direct_read(cog, titiler):
    src = XyzTileSource(titiler, CRS, timeout_s=10.0)
    direct = GeoTiffSource(cog)
    cx, cy = X0 + 140.0, Y0 - 160.0
    a = src.patch(cx, cy, 100.0, 0.5)
    b = direct.patch(cx, cy, 100.0, 0.5)
    assert a.reason == "" and a.valid.all()
    ga, gb = (cv2.cvtColor(p.image, cv2.COLOR_RGB2GRAY).astype(np.float32) for p in (a, b))
    (dx, dy), _ = cv2.phaseCorrelate(ga, gb)
    assert abs(dx) < 0.25 and abs(dy) < 0.25  # sub-pixel alignment (0.5 m pixels)
    assert np.abs(ga - gb).mean() < 8.0  # small photometric error: two resamplings, PNG vs JPEG tiles
    again = src.patch(cx, cy, 100.0, 0.5)  # second read comes from the in-memory cache
    assert np.array_equal(again.image, a.image) and src._memory.hits > 0
    src.close()


def test_prefetch_fills_the_cache(titiler):
    src = XyzTileSource(titiler, CRS, timeout_s=10.0)
    n = src.prefetch(X0 + 150.0, Y0 - 150.0, 60.0, 0.5)
    assert n > 0
    for fut in list(src._inflight.values()):
        fut.result(timeout=20)
    misses = src._memory.misses
    p = src.patch(X0 + 150.0, Y0 - 150.0, 60.0, 0.5)
    assert p.valid.all() and src._memory.misses == misses  # every tile came from the cache
    src.close()


def test_patch_outside_the_cog_is_masked(titiler):
    src = XyzTileSource(titiler, CRS, timeout_s=10.0)
    p = src.patch(X0, Y0, 60.0, 0.5)  # centred on the NW corner: about 3/4 outside
    assert 0.15 < p.valid.mean() < 0.35
    assert "no imagery" in p.reason or "HTTP 404" in p.reason
    src.close()


class FaultyHandler(http.server.BaseHTTPRequestHandler):
    mode = "404"

    def do_GET(self):
        if self.mode == "slow":
            time.sleep(1.0)
        if self.mode == "404":
            self.send_error(404)
            return
        body = b"\x89PNG this is not an image"
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(
    "mode,expect", [("404", "HTTP 404"), ("slow", "timeout"), ("garbage", "undecodable")]
)
def test_faulty_server_gives_masked_patch_and_reason(mode, expect):
    handler = type("H", (FaultyHandler,), {"mode": mode})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        src = XyzTileSource(
            f"http://127.0.0.1:{server.server_port}/{{z}}/{{x}}/{{y}}.png", CRS, timeout_s=0.2, retries=1
        )
        p = src.patch(X0 + 50, Y0 - 50, 40.0, 0.5)
        assert p.image.shape == (80, 80, 3) and not p.valid.any()
        assert expect in p.reason.lower() or expect in p.reason
        src.close()
    finally:
        server.shutdown()


def test_file_url_tms_and_disk_cache(tmp_path):
    """file:// tiles in a TMS layout: one green tile where the patch is; the rest missing."""
    to3857 = Transformer.from_crs(CRS, "EPSG:3857", always_xy=True)
    z = 18
    cx, cy = X0 + 50, Y0 - 50
    x0, _, y0, _ = tiles_covering((*to3857.transform(cx, cy),) * 2, z)
    tile_dir = tmp_path / "tiles" / str(z) / str(x0)
    tile_dir.mkdir(parents=True)
    green = np.zeros((256, 256, 3), np.uint8)
    green[..., 1] = 200
    cv2.imwrite(str(tile_dir / f"{tms_y(z, y0)}.png"), green)
    cache = tmp_path / "cache"
    src = XyzTileSource(
        f"file://{tmp_path}/tiles/{{z}}/{{x}}/{{y}}.png", CRS, tms=True, max_zoom=z, disk_cache=cache
    )
    p = src.patch(cx, cy, 2.0, 0.5)  # small enough to sit inside the one tile
    assert p.valid.all() and (p.image[..., 1] > 190).all() and (p.image[..., 0] < 10).all()
    assert (cache / str(z) / str(x0) / str(y0)).is_file()
    src.close()
