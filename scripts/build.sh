#!/usr/bin/env bash
# Configures and builds vigil. BUILD_TYPE=Release|RelWithDebInfo|Debug|ASan|TSan (default Release).
# TARGETS="vigil vigil_torch_cli" builds only those targets (scripts/run.sh: the tool alone);
# unset, everything is built (the tests, benchmarks and examples too).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
type=${BUILD_TYPE:-Release}
dir=${BUILD_DIR:-$root/build/$(echo "$type" | tr '[:upper:]' '[:lower:]')}
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" ${CMAKE_ARGS:-} >&2
targets=()
for t in ${TARGETS:-}; do targets+=(--target "$t"); done
cmake --build "$dir" -j"${JOBS:-$(nproc)}" "${targets[@]}" >&2
echo "$dir"
