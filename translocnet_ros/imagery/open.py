"""One string picks the imagery source: a GeoTIFF/COG path, or an XYZ/TMS URL template."""

from __future__ import annotations

from pathlib import Path

from translocnet_ros.imagery.geotiff import GeoTiffSource
from translocnet_ros.imagery.xyz import XyzTileSource


def open_imagery(spec: str, map_crs=None, **tile_options):
    """'path/to/ortho.tif' -> GeoTiffSource; 'http(s)://.../{z}/{x}/{y}.png' or 'file://...' -> XyzTileSource
    ('tms://...' for bottom-up row numbering). map_crs is required for tile servers."""
    if "{z}" in spec:
        tms = spec.startswith("tms://")
        url = "http://" + spec[len("tms://") :] if tms else spec
        if map_crs is None:
            raise ValueError("a tile server needs the map CRS (e.g. EPSG:32632)")
        return XyzTileSource(url, map_crs, tms=tms, **tile_options)
    if not Path(spec).is_file():
        raise FileNotFoundError(f"imagery '{spec}' is neither a GeoTIFF file nor a tile URL template")
    return GeoTiffSource(spec, map_crs=map_crs)
