"""ros2 launch translocnet_ros localize.launch.py [params_file:=...] [namespace:=...] [use_sim_time:=true]
[model:=...] [imagery:=...] [points:=/kitti/velo/pointcloud] [gnss:=/kitti/oxts/gps/fix]"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription


def generate_launch_description():
    share = get_package_share_directory("translocnet_ros")
    args = [
        DeclareLaunchArgument(
            "params_file",
            default_value=os.path.join(share, "config", "localizer.yaml"),
            description="YAML with the localizer's parameters",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="follow /clock (bag replay)"
        ),
        DeclareLaunchArgument(
            "model",
            default_value=os.path.join(share, "models", "translocnet.pt"),
            description="TorchScript model",
        ),
        DeclareLaunchArgument("imagery", default_value="", description="GeoTIFF path or tile URL template"),
        DeclareLaunchArgument("points", default_value="points", description="PointCloud2 topic"),
        DeclareLaunchArgument("gnss", default_value="gnss/fix", description="NavSatFix topic for priors"),
    ]
    node = Node(
        package="translocnet_ros",
        executable="localizer",
        name="localizer",
        namespace=LaunchConfiguration("namespace"),
        output="screen",
        parameters=[
            LaunchConfiguration("params_file"),
            {
                "use_sim_time": LaunchConfiguration("use_sim_time"),
                "model_path": LaunchConfiguration("model"),
                "imagery": LaunchConfiguration("imagery"),
            },
        ],
        remappings=[("points", LaunchConfiguration("points")), ("gnss/fix", LaunchConfiguration("gnss"))],
    )
    return LaunchDescription([*args, node])
