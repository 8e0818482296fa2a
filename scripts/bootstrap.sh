#!/usr/bin/env bash
# Builds the whole development environment inside the repository, idempotently:
#   .venv/          Python venv with the pinned ROS 2 Kilted wheels, colcon, torch (CPU) and project deps
#   .ros_overlay/   tf2_msgs generated from its definition (only when no tf2_msgs is importable)
#   build/ install/ this package built by `colcon build`, exactly as on a real ROS 2 install
# Nothing outside the repository is written. On a machine with a real ROS 2 install, use plain
# `colcon build` in your workspace instead (see README).
set -eo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
OVERLAY="$ROOT/.ros_overlay"
say() { printf '[bootstrap] %s\n' "$*"; }

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
"$PYTHON" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
    say "Python 3.11 is required (the ROS 2 Kilted wheels are cp311); found: $("$PYTHON" --version 2>&1)"
    exit 1
}

# 1. Virtual environment and pinned packages (skipped when requirements.txt is unchanged).
if [ ! -x "$VENV/bin/python" ]; then
    say "creating virtual environment .venv with $PYTHON"
    "$PYTHON" -m venv "$VENV"
fi
# shellcheck disable=SC1091
source "$VENV/bin/activate"
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum requirements.txt | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    say "installing pinned packages from requirements.txt (torch 2.13.0 CPU, ROS 2 Kilted wheels, ...)"
    python -m pip install --quiet --disable-pip-version-check -r requirements.txt
    echo "$WANT" >"$STAMP"
else
    say "pinned packages already installed"
fi

# 2. The wheels' exported CMake files hard-code the build machine's Python; point them at ours.
PYINC="$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
NPINC="$(python -c 'import numpy; print(numpy.get_include())')"
mapfile -t BROKEN < <(grep -rl '/opt/python/cp311-cp311' --include='*.cmake' "$VENV/share" 2>/dev/null || true)
if [ "${#BROKEN[@]}" -gt 0 ]; then
    say "rewriting hard-coded include paths in ${#BROKEN[@]} CMake files of the ROS wheels"
    sed -i \
        -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g" \
        -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" "${BROKEN[@]}"
fi

export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST

# 3. tf2_msgs is not on any registry: generate it from its one-message definition.
if [ -f "$OVERLAY/install/local_setup.bash" ]; then
    # shellcheck disable=SC1091
    source "$OVERLAY/install/local_setup.bash"
fi
if python -c 'import tf2_msgs.msg' 2>/dev/null; then
    say "tf2_msgs is importable"
else
    say "generating the tf2_msgs interface package in .ros_overlay (rosidl)"
    PKG="$OVERLAY/src/tf2_msgs"
    mkdir -p "$PKG/msg"
    cat >"$PKG/package.xml" <<'EOF'
<?xml version="1.0"?>
<package format="3">
  <name>tf2_msgs</name>
  <version>0.0.0</version>
  <description>tf2_msgs/TFMessage, generated locally where no tf2_msgs package can be installed.</description>
  <maintainer email="maintainers@translocnet.dev">translocnet_ros maintainers</maintainer>
  <license>Apache-2.0</license>
  <buildtool_depend>ament_cmake</buildtool_depend>
  <buildtool_depend>rosidl_default_generators</buildtool_depend>
  <depend>geometry_msgs</depend>
  <exec_depend>rosidl_default_runtime</exec_depend>
  <member_of_group>rosidl_interface_packages</member_of_group>
  <export><build_type>ament_cmake</build_type></export>
</package>
EOF
    cat >"$PKG/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(tf2_msgs)
find_package(ament_cmake REQUIRED)
find_package(rosidl_default_generators REQUIRED)
find_package(geometry_msgs REQUIRED)
rosidl_generate_interfaces(${PROJECT_NAME} "msg/TFMessage.msg" DEPENDENCIES geometry_msgs)
ament_export_dependencies(rosidl_default_runtime)
ament_package()
EOF
    echo 'geometry_msgs/TransformStamped[] transforms' >"$PKG/msg/TFMessage.msg"
    (cd "$OVERLAY" && colcon --log-base log build --merge-install --event-handlers console_cohesion- \
        --cmake-args -DPython3_EXECUTABLE="$(command -v python)" -DBUILD_TESTING=OFF)
    # shellcheck disable=SC1091
    source "$OVERLAY/install/local_setup.bash"
    python -c 'import tf2_msgs.msg' || { say "tf2_msgs generation failed"; exit 1; }
fi

# 4. Build this package the ROS 2 way (share/translocnet_ros, lib/translocnet_ros/<executables>).
say "colcon build translocnet_ros -> install/"
env -u AMENT_PREFIX_PATH colcon --log-base log build --symlink-install --base-paths "$ROOT" --build-base build --install-base install \
    --event-handlers console_cohesion- >/dev/null || {
    say "colcon build failed; see log/latest_build"
    exit 1
}
say "done: source scripts/env.sh to use the environment"
