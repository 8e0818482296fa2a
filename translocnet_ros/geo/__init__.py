"""Coordinate frames: geodetic <-> projected map CRS, headings, SE(2) poses."""
