#!/usr/bin/env bash
# The project's test command: builds the environment if needed, lints, and runs the whole test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k pointcloud).
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
# shellcheck disable=SC1091
source scripts/env.sh
echo "[test] ruff check"
ruff check .
ruff format --check .
export TRANSLOCNET_REQUIRE_ROS=1
echo "[test] pytest"
python -m pytest "$@"
