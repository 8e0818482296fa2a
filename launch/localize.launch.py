"""ros2 launch translocnet_ros localize.launch.py imagery:=/data/ortho.tif [params_file:=...] [use_sim_time:=true]
[points:=/kitti/velo/pointcloud] [gnss:=/kitti/oxts/gps/fix] [base_frame:=... odom_frame:=... ...]

`--show-args` lists every argument. Node-parameter arguments left at 'params_file' keep the params_file's
value; any other node parameter can be given as NAME:=VALUE too; unknown names are reported."""

import launch.logging
from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node

from launch import LaunchDescription
from translocnet_ros.ros.launch_args import dds_environment, dds_opt_out, launch_arguments, node_overrides


def _localizer(context):
    configs = dict(context.launch_configurations)
    params, unknown = node_overrides(configs)
    actions = []
    if unknown:
        # a WARNING-level log line (LogInfo would log at INFO); launch itself ignores undeclared arguments.
        # Launch configurations are inherited, so an including launch file's own arguments show up here too.
        launch.logging.get_logger("localize.launch.py").warning(
            f"launch argument(s) {unknown} match no argument of localize.launch.py and no node parameter: "
            "they have no effect on the localizer (misspelt, or an including launch file's own argument)"
        )
    use_sim_time = configs["use_sim_time"].lower() in ("true", "1")
    dynamic = configs["dds_dynamic_memory"].lower() in ("true", "1")
    share = get_package_share_directory("translocnet_ros")
    actions.append(
        Node(
            package="translocnet_ros",
            executable="localizer",
            name="localizer",
            namespace=configs["namespace"],
            output="screen",
            parameters=[configs["params_file"], {"use_sim_time": use_sim_time, **params}],
            remappings=[("points", configs["points"]), ("gnss/fix", configs["gnss"])],
            additional_env=dds_environment(share) if dynamic else dds_opt_out(),
        )
    )
    return actions


def generate_launch_description():
    share = get_package_share_directory("translocnet_ros")
    args = [
        DeclareLaunchArgument(name, default_value=default, description=text)
        for name, (default, text) in launch_arguments(share).items()
    ]
    return LaunchDescription([*args, OpaqueFunction(function=_localizer)])
