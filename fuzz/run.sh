#!/usr/bin/env bash
# Builds a fuzz target with clang's libFuzzer (+ ASan, UBSan) straight from the core sources it
# needs, then runs it for SECONDS (default 60) on its seed corpus.
#   fuzz/run.sh [SECONDS] [extra libFuzzer flags...]
#   TARGET=replay_scanner fuzz/run.sh [SECONDS] ...   (default TARGET=safetensors)
# New inputs go to build/fuzz/corpus (build/fuzz/corpus_TARGET for targets other than
# safetensors; the seeds in fuzz/ stay small); crashes, if any, to build/fuzz/crash-*. Set JOBS to
# fuzz with several workers (default 1: the machine is shared).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-60}
shift || true
target=${TARGET:-safetensors}
out=$root/build/fuzz
cxx=${CXX:-$(command -v clang++-14 || command -v clang++)}
flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
  -fno-sanitize-recover=undefined -I"$root/include")
case $target in
  safetensors)
    corpus=$out/corpus
    seeds=$root/fuzz/corpus
    # rss_limit: a hostile header must never make the reader allocate more than this.
    run_flags=(-max_len=65536 -rss_limit_mb=2048)
    mkdir -p "$corpus"
    "$cxx" "${flags[@]}" -I"$root/src/core" $(pkg-config --cflags libxxhash) \
      "$root/fuzz/fuzz_safetensors.cpp" "$root"/src/core/safetensors/*.cpp \
      "$root/src/core/io.cpp" "$root/src/core/xxhash.cpp" \
      -lfmt $(pkg-config --libs libxxhash) -o "$out/fuzz_safetensors"
    ;;
  replay_scanner)
    corpus=$out/corpus_replay_scanner
    seeds=$root/fuzz/corpus_replay_scanner
    # -dict: JSON's tokens and the batch keys; max_len: batch lines are short.
    run_flags=(-max_len=4096 -rss_limit_mb=2048 -dict="$root/fuzz/replay_scanner.dict")
    mkdir -p "$corpus"
    "$cxx" "${flags[@]}" -I"$root/src/core" \
      "$root/fuzz/fuzz_replay_scanner.cpp" "$root/src/core/json_scan.cpp" \
      "$root/src/core/monitor.cpp" -lfmt -o "$out/fuzz_replay_scanner"
    ;;
  *)
    echo "fuzz/run.sh: unknown TARGET '$target': use safetensors or replay_scanner" >&2
    exit 2
    ;;
esac
cd "$out"
exec "./fuzz_$target" "$corpus" "$seeds" -max_total_time="$secs" -timeout=10 \
  -print_final_stats=1 -jobs="${JOBS:-1}" -workers="${JOBS:-1}" "${run_flags[@]}" "$@"
