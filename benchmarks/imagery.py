"""Patch latency: local GeoTIFF (baseline) vs. XYZ tiles from a real TiTiler on loopback, cold and warm cache.

    python benchmarks/imagery.py

Writes the `imagery` section of BENCHMARKS.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.report import machine, write_section  # noqa: E402
from translocnet_ros.dataset.kitti import KittiDrive  # noqa: E402
from translocnet_ros.geo.crs import MapFrame  # noqa: E402
from translocnet_ros.imagery.geotiff import GeoTiffSource  # noqa: E402
from translocnet_ros.imagery.tile_server import serve_cog  # noqa: E402
from translocnet_ros.imagery.xyz import XyzTileSource  # noqa: E402
from translocnet_ros.synth.cli import build  # noqa: E402
from translocnet_ros.synth.splits import split_towns  # noqa: E402

SIZE_M, RES = 104.0, 0.5  # the patch TransLocNet asks for (known protocol)


def timed(make_source, poses) -> np.ndarray:
    """Latency of each patch; make_source() is called per patch (a fresh source = an empty cache) or once."""
    out = []
    for p in poses:
        source = make_source()
        t0 = time.perf_counter()
        source.patch(p.x, p.y, SIZE_M, RES)
        out.append(1e3 * (time.perf_counter() - t0))
    return np.array(out)


def main() -> int:
    name, spec = split_towns("test", 1)[0]
    town = ROOT / "data" / "synth" / name
    build([(town, spec)], force=False)
    ortho = town / "ortho.tif"
    local = GeoTiffSource(ortho)
    poses = KittiDrive(town / "drive_00").ground_truth(MapFrame.from_any(local.crs)).poses
    with serve_cog(ortho) as url:
        tiles = XyzTileSource(url, local.crs, timeout_s=5.0)
        timed(lambda: tiles, poses)  # fill the cache
        rows = [
            ("GeoTIFF, direct windowed read (baseline)", timed(lambda: local, poses)),
            (
                "XYZ via TiTiler, cold (empty cache, every tile fetched)",
                timed(lambda: XyzTileSource(url, local.crs, timeout_s=5.0), poses),
            ),
            ("XYZ via TiTiler, warm (all tiles in the memory cache)", timed(lambda: tiles, poses)),
        ]
        tiles.close()
    lines = [
        "## Imagery patch latency",
        "",
        f"Command: `python benchmarks/imagery.py`. {len(poses)} patches of {SIZE_M:.0f} m at {RES} m/px along "
        f"`{name}`'s drive, TiTiler on 127.0.0.1 serving the town's COG (PNG tiles), 8 fetch threads. "
        f"Machine: {machine()}. Date: {time.strftime('%Y-%m-%d')}.",
        "",
        "| source | p50 [ms] | p95 [ms] | max [ms] |",
        "|---|---|---|---|",
    ]
    for label, t in rows:
        lines.append(f"| {label} | {np.percentile(t, 50):.1f} | {np.percentile(t, 95):.1f} | {t.max():.1f} |")
        print(f"{label:52s} p50 {np.percentile(t, 50):6.1f} ms  p95 {np.percentile(t, 95):6.1f} ms")
    write_section("imagery", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
