#!/usr/bin/env bash
# Regenerates data/curves/: a corpus of real learning curves on which stopping rules are scored
# (`vigil replay --evaluate data/curves`: epochs saved against test loss given up).
#
# Every run is a `vigil train` that cannot stop early (--patience 1000, above any run's length)
# and records the test set's metrics in every row (--eval-test-every-epoch):
#   - 104 Fashion-MNIST classifiers (Debian's dataset-fashion-mnist, the train job's default
#     data), 30 epochs each, 90 small MLPs and 14 small CNNs, varied over model size (--hidden,
#     --channels, --batch-norm), optimizer (adam, adamw, sgd with and without momentum, rmsprop,
#     adagrad), learning rate, weight decay, batch size, dropout, training-subset size
#     (--limit-train 2000 to 10000), validation split and seed; tested on 2000 test images;
#   - 4 byte-level language models (--model gpt, 1-2 layers, 32-64 wide) on a licence text and a
#     fortune file, validated every 50 steps (30 to 40 validations).
# The plan is drawn by a fixed linear congruential generator from PLAN_SEED, so it is the same on
# every machine (`scripts/make-curves.sh --plan` prints it); with --threads 1 each run is
# bit-reproducible too, except for the seconds column and run.json's run_id.
#
# Each run trains in a temporary folder; data/curves/fashion-mnist/NAME/ (data/curves/lm/NAME/
# for the language models) keeps only its metrics.csv and run.json. data/curves/index.csv lists
# the runs with their settings, rows and training time.
#
# Usage: scripts/make-curves.sh [--plan]
#   VIGIL=path/to/vigil (default build/vigil), JOBS=2 (trainings at once, 1 libtorch thread each),
#   OUT=data/curves. Run it niced on a shared machine: nice -n 10 scripts/make-curves.sh
# Time: 26 minutes for the 108 runs with JOBS=2 on a 2-core machine shared with other jobs (load
# average about 7.6 during the run); details in data/curves/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VIGIL=${VIGIL:-$ROOT/build/vigil}
OUT=${OUT:-$ROOT/data/curves}
JOBS=${JOBS:-2}
PLAN_SEED=20261202
EPOCHS=30
LIMIT_TEST=2000

# --- the plan ---------------------------------------------------------------------------------

# A 31-bit LCG (glibc's constants): bash arithmetic, so no awk or $RANDOM implementation decides.
rng=$PLAN_SEED
# pick WORD...: sets REPLY to one of the words.
pick() {
  local -a words=("$@")
  rng=$(((rng * 1103515245 + 12345) % 2147483648))
  REPLY=${words[$(((rng >> 8) % ${#words[@]}))]}
}

NAMES=()
ARGS=()

# An optimizer with a learning rate from its own usable range; sets OPT (flags).
pick_optimizer() {
  pick adam adam adam adamw sgd sgd rmsprop adagrad
  local opt=$REPLY
  case $opt in
    adam) pick 0.0001 0.0003 0.001 0.003 && OPT="--optimizer adam --lr $REPLY" ;;
    adamw)
      pick 0.0003 0.001 0.003 && OPT="--optimizer adamw --lr $REPLY"
      pick 0.01 0.1 && OPT+=" --weight-decay $REPLY"
      ;;
    sgd)
      pick 0 0.9
      if [[ $REPLY == 0 ]]; then
        pick 0.01 0.03 0.1 && OPT="--optimizer sgd --lr $REPLY"
      else
        pick 0.003 0.01 0.03 && OPT="--optimizer sgd --momentum 0.9 --lr $REPLY"
      fi
      ;;
    rmsprop) pick 0.0001 0.0003 0.001 && OPT="--optimizer rmsprop --lr $REPLY" ;;
    adagrad) pick 0.003 0.01 0.03 && OPT="--optimizer adagrad --lr $REPLY" ;;
  esac
}

add_classifier() {
  local name=$1 model=$2 a
  pick_optimizer
  a="--model $model $OPT --epochs $EPOCHS --limit-test $LIMIT_TEST"
  if [[ $model == mlp ]]; then
    pick 32 64 128 256 512 32,32 64,64 128,128 256,128 256,256 && a+=" --hidden $REPLY"
    pick 32 64 128 256 && a+=" --batch-size $REPLY"
    pick 2000 3000 5000 8000 10000 && a+=" --limit-train $REPLY"
  else
    pick 4,8 8,8 8,16 && a+=" --channels $REPLY"
    pick 32 64 && a+=" --hidden $REPLY"
    pick 64 128 && a+=" --batch-size $REPLY"
    pick 2000 3000 && a+=" --limit-train $REPLY"
    pick no yes
    if [[ $REPLY == yes ]]; then a+=" --batch-norm"; fi
  fi
  pick 0 0 0.1 0.2 0.3 0.5 && a+=" --dropout $REPLY"
  pick 0.1 0.2 && a+=" --validation-split $REPLY"
  rng=$(((rng * 1103515245 + 12345) % 2147483648))
  a+=" --seed $((rng % 100000))"
  NAMES+=("$name")
  ARGS+=("$a")
}

# The language models: fixed settings (few enough to choose by hand), longest first.
LM_COMMON="--model gpt --val-every-n-steps 50 --clip-grad-norm 1.0"
NAMES+=(lm-0 lm-1 lm-2 lm-3)
ARGS+=(
  "$LM_COMMON --data text:/usr/share/games/fortunes/computers --context 64 --layers 2 --heads 4 --embed 64 --batch-size 32 --max-steps 2000 --lr 0.003 --dropout 0.1 --seed 1"
  "$LM_COMMON --data text:/usr/share/common-licenses/GPL-3 --context 64 --layers 2 --heads 4 --embed 64 --batch-size 16 --max-steps 1500 --lr 0.003 --seed 2"
  "$LM_COMMON --data text:/usr/share/games/fortunes/computers --context 32 --layers 1 --heads 2 --embed 48 --batch-size 32 --max-steps 1500 --lr 0.01 --lr-schedule constant --warmup-steps 0 --seed 3"
  "$LM_COMMON --data text:/usr/share/common-licenses/GPL-3 --context 32 --layers 1 --heads 2 --embed 32 --batch-size 16 --max-steps 1500 --lr 0.01 --seed 4"
)
# The CNNs before the MLPs, so that the slowest runs do not end up alone at the end.
for i in $(seq 0 13); do add_classifier "$(printf 'fmnist-cnn-%02d' "$i")" cnn; done
for i in $(seq 0 89); do add_classifier "$(printf 'fmnist-mlp-%02d' "$i")" mlp; done

if [[ ${1:-} == --plan ]]; then
  for i in "${!NAMES[@]}"; do printf '%s\t%s\n' "${NAMES[$i]}" "${ARGS[$i]}"; done
  exit 0
fi
[[ $# -eq 0 ]] || {
  echo "usage: $0 [--plan]" >&2
  exit 2
}

# --- the runs ---------------------------------------------------------------------------------

[[ -x $VIGIL ]] || {
  echo "make-curves: $VIGIL is not built (cmake --build build --target vigil vigil_torch_cli)" >&2
  exit 1
}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/make-curves.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
rm -rf "$OUT"/fashion-mnist "$OUT"/lm "$OUT"/index.csv

# Where a run's folder goes: one folder per task, so that `vigil replay --evaluate` can score the
# rules on runs of one kind (the median rule compares values across runs).
place() {
  if [[ $1 == lm-* ]]; then echo "lm/$1"; else echo "fashion-mnist/$1"; fi
}

# run_one NAME ARGS...: trains in $WORK, keeps metrics.csv and run.json, notes the time taken.
run_one() {
  local name=$1
  shift
  local dir=$WORK/$name
  mkdir -p "$dir"
  if ! "$VIGIL" train --run-dir "$dir/run" --progress lines --threads 1 --patience 1000 \
    --eval-test-every-epoch "$@" >"$dir.log" 2>&1; then
    echo "make-curves: $name failed:" >&2
    tail -n 5 "$dir.log" >&2
    echo "$name" >>"$WORK/failed"
    return 0
  fi
  mkdir -p "$OUT/$(place "$name")"
  cp "$dir/run/metrics.csv" "$dir/run/run.json" "$OUT/$(place "$name")/"
  jq -r '.fit_seconds' "$dir/run/result.json" >"$WORK/$name.seconds"
  rm -rf "$dir" "$dir.log"
  echo "make-curves: $name done ($(cut -d. -f1 "$WORK/$name.seconds") s)"
}

started=$(date +%s)
for i in "${!NAMES[@]}"; do
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n || true; done
  # shellcheck disable=SC2086  # the plan's flags are split into words on purpose
  run_one "${NAMES[$i]}" ${ARGS[$i]} &
done
wait
elapsed=$(($(date +%s) - started))

# --- checks and the index ---------------------------------------------------------------------

status=0
if [[ -s $WORK/failed ]]; then
  echo "make-curves: failed runs: $(tr '\n' ' ' <"$WORK/failed")" >&2
  status=1
fi
echo "run,model,size,optimizer,lr,momentum,weight_decay,batch_size,dropout,limit_train,validation_split,seed,rows,fit_seconds" >"$OUT/index.csv"
for name in "${NAMES[@]}"; do
  csv=$OUT/$(place "$name")/metrics.csv
  [[ -f $csv ]] || continue
  rows=$(($(wc -l <"$csv") - 1))
  need="loss val_loss test_loss"
  if [[ $name == lm-* ]]; then need+=" test_perplexity"; else need+=" test_accuracy"; fi
  for col in $need; do
    # Present, and a value in every row.
    if ! awk -F, -v col="$col" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
        c == 0 || $c == "" { bad = 1 } END { exit !(c > 0 && !bad) }' "$csv"; then
      echo "make-curves: $name: column $col missing or incomplete" >&2
      status=1
    fi
  done
  if ((rows < 30)); then
    echo "make-curves: $name has $rows rows, fewer than 30" >&2
    status=1
  fi
  jq -r --arg name "$name" --arg rows "$rows" --arg secs "$(cat "$WORK/$name.seconds")" '
    [$name, .model,
     (if .model == "gpt" then "\(.layers)x\(.embed) ctx \(.context)"
      elif .model == "cnn" then "c\(.channels | map(tostring) | join("-")) h\(.hidden | map(tostring) | join("-"))\(if .batch_norm then " bn" else "" end)"
      else "h\(.hidden | map(tostring) | join("-"))" end),
     .optimizer, .lr, .momentum, .weight_decay, .batch_size, .dropout, .limit_train,
     .validation_split, .seed, ($rows | tonumber), ($secs | tonumber | . * 10 | round / 10)]
    | @csv' "$OUT/$(place "$name")/run.json" >>"$OUT/index.csv"
done
runs=$(($(wc -l <"$OUT/index.csv") - 1))
echo "make-curves: $runs runs in $OUT, $((elapsed / 60)) min $((elapsed % 60)) s with JOBS=$JOBS"
exit $status
