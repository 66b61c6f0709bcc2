#!/usr/bin/env bash
# Installs what is missing, builds, and runs the main job: `vigil train` on Fashion-MNIST
# (early stopping on val_loss with restore of the best weights, rotating checkpoints), or with
# --model gpt the language model on Debian's fortunes.
# Each call starts a fresh run in runs/fashion-mnist (runs/gpt-fortunes); the previous one is
# moved aside, never deleted. Extra arguments go to `vigil train` (e.g. --model cnn, --epochs 5).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
# The tool only: `vigil` and `vigil-torch`, which runs its train/eval/generate (scripts/test.sh
# builds the rest).
dir=$(TARGETS="vigil vigil_torch_cli" bash "$root/scripts/build.sh" | tail -n 1)
run=$root/runs/fashion-mnist
case " $* " in *" --model gpt "*) run=$root/runs/gpt-fortunes ;; esac
"$dir/vigil" train --run-dir "${VIGIL_RUN_DIR:-$run}" --fresh "$@"
