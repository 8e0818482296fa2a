"""Launch arguments of localize.launch.py, and how they become node parameters.

Kept out of the launch file so they can be checked without ROS 2's `launch` (not installable from PyPI).
Node-parameter arguments default to KEEP, which leaves the params_file's value in force; any launch
configuration named like a node parameter is passed to the node (so `max_points:=...` works too), and any
other unknown name is reported instead of being silently ignored.
"""

from __future__ import annotations

import yaml

from translocnet_ros.ros.memory import OPT_OUT
from translocnet_ros.ros.parameters import PARAMETERS

KEEP = "params_file"  # "use the value in params_file"

# launch-only arguments: name -> (default, description); the share path is filled in by the launch file
LAUNCH_ONLY = {
    "params_file": (
        "{share}/config/localizer.yaml",
        "YAML with the localizer's parameters (config/kitti.yaml: KITTI bags)",
    ),
    "namespace": ("", "namespace of the node"),
    "use_sim_time": ("false", "follow /clock (bag replay)"),
    "points": ("points", "PointCloud2 topic (kitti2bag: /kitti/velo/pointcloud)"),
    "gnss": ("gnss/fix", "NavSatFix topic for priors (kitti2bag: /kitti/oxts/gps/fix)"),
    "dds_dynamic_memory": (
        "true",
        "Fast DDS: free receive buffers after each message (config/fastdds_dynamic_memory.xml), so memory "
        "returns to its level after a huge cloud; false keeps rmw_fastrtps' preallocated buffers",
    ),
}


def dds_opt_out() -> dict[str, str]:
    """Environment that keeps the node on rmw_fastrtps' own history memory (dds_dynamic_memory:=false)."""
    return {OPT_OUT: "false"}


def dds_environment(share: str) -> dict[str, str]:
    """Environment that makes rmw_fastrtps use config/fastdds_dynamic_memory.xml for the node."""
    return {
        "FASTDDS_DEFAULT_PROFILES_FILE": f"{share}/config/fastdds_dynamic_memory.xml",
        "RMW_FASTRTPS_USE_QOS_FROM_XML": "1",
    }


# launch argument -> node parameter, for arguments whose name differs from the parameter's
RENAMED = {"model": "model_path"}
NODE_ARGUMENTS = (
    "imagery",
    "model",
    "method",
    "device",
    "map_crs",
    "map_origin",
    "map_frame",
    "odom_frame",
    "base_frame",
    "points_reliable",
    "publish_tf",
    "initial_pose",
)


def launch_arguments(share: str) -> dict[str, tuple[str, str]]:
    """Every declared argument: name -> (default, description shown by `ros2 launch ... --show-args`)."""
    out = {k: (d.format(share=share), text) for k, (d, text) in LAUNCH_ONLY.items()}
    for name in NODE_ARGUMENTS:
        param = PARAMETERS[RENAMED.get(name, name)]
        out[name] = (KEEP, f"{param.description} (default: the value in params_file)")
    return out


def parameter_value(name: str, text: str):
    """A launch configuration (always a string) as the node parameter's type."""
    default = PARAMETERS[name].default
    if isinstance(default, str):
        return text
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"launch argument {name}:={text!r} is not valid YAML") from e
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"launch argument {name}:={text!r} is not true/false")
        return value
    kind = {list: "a list of numbers", float: "a number", int: "an integer"}[type(default)]
    try:
        if isinstance(value, bool):  # float(True) and int(True) would pass
            raise ValueError
        if isinstance(default, float):
            return float(value)
        if isinstance(default, list):
            return [float(v) for v in value]
        if float(value) != int(value):  # int() alone would truncate 1.5
            raise ValueError
        return int(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"launch argument {name}:={text!r} is not {kind}") from e


def node_overrides(configurations: dict[str, str]) -> tuple[dict, list[str]]:
    """Parameters to pass to the node (every node-parameter configuration not left at KEEP) and the
    configurations that match neither a declared argument nor a node parameter."""
    params, unknown = {}, []
    for name, text in configurations.items():
        param = RENAMED.get(name, name)
        if param in PARAMETERS:
            if text != KEEP:
                params[param] = parameter_value(param, text)
        elif name not in LAUNCH_ONLY:
            unknown.append(name)
    return params, sorted(unknown)
