"""Procedural towns: layout, 3-D scene, LiDAR simulation, orthophoto rendering, KITTI-layout output."""
