#!/usr/bin/env bash
# Builds the safetensors reader fuzzer with clang's libFuzzer (+ ASan, UBSan) straight from the
# core sources it needs, then runs it for SECONDS (default 60) on the seed corpus.
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
# New inputs go to build/fuzz/corpus (the seeds in fuzz/corpus stay small); crashes, if any, to
# build/fuzz/crash-*. Set JOBS to fuzz with several workers (default 1: the machine is shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
out=$root/build/fuzz
mkdir -p "$out/corpus"
cxx=${CXX:-$(command -v clang++-14 || command -v clang++)}
"$cxx" -std=c++20 -g -O1 -fno-omit-frame-pointer \
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/include" $(pkg-config --cflags libxxhash) \
  "$root/fuzz/fuzz_safetensors.cpp" "$root/src/core/safetensors.cpp" "$root/src/core/io.cpp" \
  "$root/src/core/xxhash.cpp" \
  -lfmt $(pkg-config --libs libxxhash) -o "$out/fuzz_safetensors"
cd "$out"
# rss_limit: a hostile header must never make the reader allocate more than this.
exec ./fuzz_safetensors corpus "$root/fuzz/corpus" -max_total_time="$secs" -max_len=65536 \
  -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 -jobs="${JOBS:-1}" \
  -workers="${JOBS:-1}" "$@"
