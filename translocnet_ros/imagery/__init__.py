"""Aerial imagery sources (GeoTIFF/COG, XYZ tile servers) behind one patch() interface."""
