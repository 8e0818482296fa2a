"""translocnet_ros: LiDAR-to-aerial-imagery localization (TransLocNet) with a ROS-free core."""

__version__ = "0.1.0"
