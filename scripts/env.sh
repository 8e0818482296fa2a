# Source this file (bash) to enter the environment made by scripts/bootstrap.sh:
#   source scripts/env.sh
# It activates .venv, overlays the generated tf2_msgs and this package's colcon install, and keeps DDS on
# this machine unless the caller already chose otherwise.
_TL_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
source "$_TL_ROOT/.venv/bin/activate"
export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export CMAKE_PREFIX_PATH="$VIRTUAL_ENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
for _tl_setup in "$_TL_ROOT/.ros_overlay/install/local_setup.bash" "$_TL_ROOT/install/local_setup.bash"; do
    # shellcheck disable=SC1090
    [ -f "$_tl_setup" ] && source "$_tl_setup"
done
# The source tree wins over colcon's copies in build/, so edits take effect without a rebuild.
export PYTHONPATH="$_TL_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
unset _TL_ROOT _tl_setup
# `translocnet` on PATH here; on a ROS 2 install it is `ros2 run translocnet_ros translocnet`.
[ -d "$(dirname "${BASH_SOURCE[0]}")/../install/translocnet_ros/lib/translocnet_ros" ] &&
    export PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/install/translocnet_ros/lib/translocnet_ros:$PATH"
