#!/usr/bin/env bash
# The README's demo: builds the environment if needed, builds (once, cached in data/synth) a small synthetic
# town with a LiDAR drive, localizes every scan against the town's orthophoto from priors up to 20 m / 10 deg
# off, prints the error statistics and writes a picture of ground truth vs. estimates over the orthophoto.
set -eo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash scripts/bootstrap.sh
# shellcheck disable=SC1091
source scripts/env.sh
# a domain of its own, so the demo never talks to (or moves) a ROS 2 system already running on this machine
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 90 + 10))}"  # 10-99: safe on Linux
METHOD="${METHOD:-translocnet}"  # or ncc: the classic baseline
translocnet generate --split demo --out data/synth
TOWN="$(ls -d data/synth/demo_* | head -n 1)"
translocnet eval --drive "$TOWN/drive_00" --ortho "$TOWN/ortho.tif" --protocol known --method "$METHOD" \
    --out "runs/demo/${METHOD}_known.json"
echo "[demo] results: runs/demo/${METHOD}_known.json, per-frame CSV and picture beside it:"
ls -1 runs/demo/"${METHOD}"_known.*
translocnet demo --method "$METHOD"
