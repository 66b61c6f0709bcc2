#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite under ctest.
# BUILD_TYPE=ASan (or TSan) runs it under sanitizers.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/setup.sh"
dir=$(bash "$root/scripts/build.sh" | tail -n 1)
cd "$dir"
ctest --output-on-failure -j"${JOBS:-$(nproc)}" ${CTEST_ARGS:-}
