#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
dir=$(bash "$root/scripts/build.sh" | tail -n 1)
"$dir/vigil" replay --log "$root/examples/data/metrics.csv" --monitor val_loss --patience 3 "$@"
