"""Drives in the KITTI raw layout (DESIGN.md §5) and their ground truth."""
