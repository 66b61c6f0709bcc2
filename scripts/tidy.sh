#!/usr/bin/env bash
# Runs clang-tidy (.clang-tidy) on the C++ files changed since REV (default: main's merge base
# with HEAD, plus uncommitted changes), using a build folder's compile_commands.json.
# Usage: scripts/tidy.sh [REV] ; BUILD_DIR=build/release by default.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${BUILD_DIR:-build/release}
[ -f "$build/compile_commands.json" ] || { echo "tidy: no $build/compile_commands.json; run scripts/build.sh first" >&2; exit 2; }
base=${1:-$(git merge-base HEAD main 2>/dev/null || git rev-list --max-parents=0 HEAD)}
mapfile -t files < <({ git diff --name-only --diff-filter=AM "$base" -- '*.cpp'; git ls-files --others --exclude-standard -- '*.cpp'; } \
  | sort -u | grep -E '^(src|apps)/' || true)
if [ ${#files[@]} -eq 0 ]; then
  echo "tidy: no changed source files since $base" >&2
  exit 0
fi
echo "tidy: ${#files[@]} files changed since $base" >&2
clang-tidy -p "$build" --quiet "${files[@]}"
