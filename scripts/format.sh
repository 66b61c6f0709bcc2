#!/usr/bin/env bash
# Checks (default) or applies (--fix) clang-format on vigil's C++ sources, as .clang-format says.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v clang-format >/dev/null || { echo "format: clang-format is not installed (apt-get install clang-format)" >&2; exit 2; }
mapfile -t files < <(git ls-files '*.cpp' '*.hpp' '*.h' | grep -v '^tests/consumer/fixtures/')
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run -Werror "${files[@]}"; then
  echo "format: the files above are not formatted; run: bash scripts/format.sh --fix" >&2
  exit 1
fi
echo "format: ${#files[@]} files formatted" >&2
