#!/usr/bin/env bash
# Builds the API reference from the public headers with Doxygen: scripts/docs.sh [OUT]
# writes OUT/html/index.html (default: build/docs). Fails on any Doxygen warning.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$(realpath -m "${1:-$root/build/docs}")
command -v doxygen >/dev/null || { echo "docs: doxygen is not installed (apt-get install doxygen)" >&2; exit 127; }
mkdir -p "$out"
cd "$root"
# Later settings win: keep docs/Doxyfile as is, send the output where asked.
{ cat docs/Doxyfile; echo "OUTPUT_DIRECTORY = $out"; echo "WARN_LOGFILE = $out/warnings.log"; } | doxygen -
if [ -s "$out/warnings.log" ]; then
  cat "$out/warnings.log" >&2
  echo "docs: doxygen warned (see above)" >&2
  exit 1
fi
echo "$out/html/index.html"
