#!/usr/bin/env bash
# Configures and builds vigil. BUILD_TYPE=Release|RelWithDebInfo|Debug|ASan|TSan (default Release).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
type=${BUILD_TYPE:-Release}
dir=${BUILD_DIR:-$root/build/$(echo "$type" | tr '[:upper:]' '[:lower:]')}
cmake -S "$root" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" ${CMAKE_ARGS:-} >&2
cmake --build "$dir" -j"${JOBS:-$(nproc)}" >&2
echo "$dir"
