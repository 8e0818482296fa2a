"""localize.launch.py's arguments, checked without ROS 2 launch: every argument a user needs is declared and
reaches a real node parameter with its type; the params_file's values stay in force unless an argument is
given; unknown names are reported, not dropped silently."""

import ast

import pytest
import yaml
from conftest import ROOT

from translocnet_ros.ros.launch_args import KEEP, launch_arguments, node_overrides
from translocnet_ros.ros.parameters import PARAMETERS

NEEDED = {
    "params_file",
    "namespace",
    "use_sim_time",
    "model",
    "imagery",
    "points",
    "gnss",
    "base_frame",
    "odom_frame",
    "map_frame",
    "points_reliable",
    "publish_tf",
    "device",
    "method",
    "map_origin",
    "initial_pose",
}


def test_needed_arguments_are_declared_with_descriptions():
    args = launch_arguments("/share")
    assert set(args) >= NEEDED
    assert all(text for _, text in args.values())
    assert args["params_file"][0] == "/share/config/localizer.yaml"


def test_defaults_keep_the_params_file_values():
    args = launch_arguments("/share")
    params, unknown = node_overrides({name: default for name, (default, _) in args.items()})
    assert params == {} and unknown == []


def test_given_arguments_reach_the_node_with_their_types():
    params, unknown = node_overrides(
        {
            "base_frame": "imu_link",
            "odom_frame": "",
            "points_reliable": "true",
            "publish_tf": "false",
            "map_origin": "[385000, 6672000.5]",
            "initial_pose": "[1.0, 2.0, 0.5]",
            "model": "/models/m.pt",
            "max_points": "100000",  # not declared, but a node parameter: passed on too
            "confidence_publish": "0.3",
            "imagery": "http://tiles/{z}/{x}/{y}.png",
        }
    )
    assert unknown == []
    assert params == {
        "base_frame": "imu_link",
        "odom_frame": "",
        "points_reliable": True,
        "publish_tf": False,
        "map_origin": [385000.0, 6672000.5],
        "initial_pose": [1.0, 2.0, 0.5],
        "model_path": "/models/m.pt",
        "max_points": 100000,
        "confidence_publish": 0.3,
        "imagery": "http://tiles/{z}/{x}/{y}.png",
    }
    for name, value in params.items():
        assert type(value) is type(PARAMETERS[name].default), name


def test_unknown_and_malformed_arguments_are_not_silent():
    _, unknown = node_overrides({"base_fram": "imu_link", "imagery": KEEP})
    assert unknown == ["base_fram"]
    with pytest.raises(ValueError, match="not true/false"):
        node_overrides({"points_reliable": "maybe"})


@pytest.mark.parametrize(
    "name, text, reason",
    [
        ("max_points", "abc", "not an integer"),
        ("max_points", "1.5", "not an integer"),  # int() alone would truncate it
        ("max_points", "true", "not an integer"),
        ("confidence_publish", "high", "not a number"),
        ("map_origin", "385000", "not a list of numbers"),
        ("initial_pose", "[1.0, 2.0", "not valid YAML"),
    ],
)
def test_malformed_values_name_the_argument(name, text, reason):
    # what `ros2 launch` prints: "Caught exception in launch ...: <this message>"
    with pytest.raises(ValueError, match=rf"launch argument {name}:=.*{reason}"):
        node_overrides({name: text})


def test_the_launch_file_uses_these_arguments():
    tree = ast.parse((ROOT / "launch" / "localize.launch.py").read_text())
    called = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"launch_arguments", "node_overrides", "DeclareLaunchArgument"} <= called


def _flat(values: dict, prefix: str = "") -> dict:
    """Nested YAML sections as ROS 2 reads them: `filter: {enabled: ...}` is the parameter filter.enabled."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.mark.parametrize("name", ["localizer.yaml", "kitti.yaml"])
def test_params_files_name_only_real_parameters(name):
    values = _flat(yaml.safe_load((ROOT / "config" / name).read_text())["/**"]["ros__parameters"])
    assert set(values) <= set(PARAMETERS), set(values) - set(PARAMETERS)
    for key, value in values.items():
        assert type(value) is type(PARAMETERS[key].default), key


def test_localizer_yaml_lists_every_parameter():
    values = _flat(yaml.safe_load((ROOT / "config" / "localizer.yaml").read_text())["/**"]["ros__parameters"])
    assert set(values) == set(PARAMETERS)
    for name, value in values.items():  # the file's values are the defaults
        assert value == PARAMETERS[name].default, name


def test_dds_dynamic_memory_profile_exists_and_frees_reader_buffers():
    import xml.etree.ElementTree as ET

    from translocnet_ros.ros.launch_args import dds_environment

    env = dds_environment(str(ROOT))
    assert env["RMW_FASTRTPS_USE_QOS_FROM_XML"] == "1"
    root = ET.parse(env["FASTDDS_DEFAULT_PROFILES_FILE"]).getroot()
    policies = {
        el.tag.split("}")[1]: el.find("{*}historyMemoryPolicy").text
        for el in root
        if el.get("is_default_profile")
    }
    assert policies == {"data_reader": "DYNAMIC", "data_writer": "DYNAMIC"}
