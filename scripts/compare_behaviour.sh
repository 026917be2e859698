#!/usr/bin/env bash
# Behaviour check for refactorings (issue 14): runs a fixed set of short training recipes, on one thread, with an
# old and a new `fractrain` binary and compares what they wrote (scripts/compare_runs.py): the final checkpoints
# bit for bit (tensors; meta JSON without wall-clock fields), metrics.jsonl (and cp_trace.jsonl) identical
# without train_seconds / images_per_second, and summary.json without those and output_dir. Prints a table
# recipe / checkpoint / metrics / summary and exits 1 on any difference (2 on a usage or run error).
#
#   scripts/compare_behaviour.sh [options] OLD NEW [WORK_DIR]
#
# OLD and NEW are each a fractrain binary or a git commit (anything `git rev-parse` takes: HEAD~1, a tag, a hash);
# a commit is built in a temporary worktree (cmake -G Ninja, Release, tests and benchmarks off, target
# fractrain_cli; FRACTRAIN_BUILD_JOBS jobs, default 2) and the build is kept under WORK_DIR/build-HASH for
# the next call. Example, before merging a refactoring of the trainer:
#   scripts/compare_behaviour.sh HEAD~1 build/fractrain
# WORK_DIR (default /tmp/fractrain-behaviour) gets old/RECIPE and new/RECIPE (the run folders), logs/ (each
# run's output) and data/wordnet-lm (the Transformer corpus, made once with scripts/make_wordnet_corpus.py).
# Run folders from an earlier call are deleted first. Both binaries run from this checkout's root and read its
# configs/ (and configs/hardware/), so a commit's binary gets the same recipes as the new one.
#
# Options:
#   --only R1,R2     run only these recipes (adaptation needs static-fw8bw8; it is added when missing)
#   --new-set K=V    add --set K=V to the NEW binary's runs only (repeatable): a self-test of the comparison,
#                    e.g. --new-set train.seed=2 must be reported as a difference
#   --jobs 2         run the OLD and the NEW binary's recipes at the same time (each on one thread)
#   --list           print the recipes and exit
# The recipes take about 1.5 minutes per binary on one core, 3 minutes in all (the table's time column says how
# long each took).
#
# Why the payloads are not compared as raw bytes: LibTorch's archive keys the optimizer state (and lists each
# parameter group's parameters) by the address of the parameter's TensorImpl, and writes the state in hash-map order
# of those addresses; with ASLR they change from process to process, so two identical runs give different zip bytes.
# compare_runs.py therefore reads the archive's data.pkl (plain pickle, no torch) and compares every tensor's
# storage bytes, dtype, size, stride and offset by attribute path, each address replaced by its place in the
# parameter groups. One binary run twice on one thread gives identical results by that comparison.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "compare_behaviour: $*" >&2; exit 2; }

# ---- the recipes ------------------------------------------------------------------------------------------------
# name | config | overrides (space-separated KEY=VALUE; @ROOT@ = this binary's run root, @DATA@ = WORK_DIR/data).
# Every run also gets train.threads=1, output.dir and this checkout's hardware table (cost.hardware: a binary's
# default is the file in the source folder it was built from, which summary.json names). Keep them short: each
# takes seconds to a minute.
RECIPES=(
  "static-fw8bw8|configs/fashion_mnist_fw8bw8.toml|data.split=classes-a train.iterations=30 train.eval_every=15 train.batch_size=32 data.train_subset=2048 data.test_subset=256 train.log_every=10"
  "pfq-auto|configs/fashion_mnist_pfq_auto_4stage.toml|train.iterations=40 train.eval_every=20 train.batch_size=32 data.train_subset=2048 data.test_subset=256 precision.pfq_window_iterations=4 precision.pfq_eps=10 train.log_every=10"
  "dfq-mixed|configs/fashion_mnist_dfq.toml|train.iterations=30 train.eval_every=15 train.batch_size=32 data.train_subset=2048 data.test_subset=256 train.log_every=10"
  "dfq-candidates|configs/fashion_mnist_dfq.toml|dfq.execution=candidates train.iterations=10 train.eval_every=5 train.batch_size=32 data.train_subset=1024 data.test_subset=128 train.log_every=5"
  "fractrain|configs/fashion_mnist_fractrain.toml|train.iterations=40 train.eval_every=20 train.batch_size=32 data.train_subset=2048 data.test_subset=256 precision.pfq_window_iterations=4 precision.pfq_eps=10 train.log_every=10"
  "mobilenetv2-dfq|configs/fashion_mnist_mobilenetv2_dfq.toml|train.iterations=8 train.eval_every=4 train.batch_size=16 data.train_subset=512 data.test_subset=64 train.log_every=2"
  "transformer-pfq|configs/wordnet_transformer_pfq.toml|data.path=@DATA@/wordnet-lm model.layers=1 model.width=64 model.heads=2 model.ffn_width=128 data.sequence_length=32 train.batch_size=8 train.iterations=18 train.eval_every=9 data.train_subset=200000 data.test_subset=4096 train.log_every=9"
  "adaptation|configs/fashion_mnist_fractrain.toml|train.init_from=@ROOT@/static-fw8bw8 data.split=classes-b train.iterations=24 train.eval_every=12 train.batch_size=32 data.train_subset=1024 data.test_subset=256 precision.pfq_window_iterations=4 precision.pfq_eps=10 train.log_every=6"
)
recipe_names() { for r in "${RECIPES[@]}"; do echo "${r%%|*}"; done; }

ONLY="" JOBS=1 NEW_SETS=() POSITIONAL=()
while (($#)); do
  case "$1" in
    -h|--help) usage ;;
    --only) ONLY="${2:?--only needs a list}"; shift 2 ;;
    --only=*) ONLY="${1#*=}"; shift ;;
    --new-set) NEW_SETS+=("${2:?--new-set needs KEY=VALUE}"); shift 2 ;;
    --new-set=*) NEW_SETS+=("${1#*=}"); shift ;;
    --jobs) JOBS="${2:?--jobs needs 1 or 2}"; shift 2 ;;
    --jobs=*) JOBS="${1#*=}"; shift ;;
    --list) for r in "${RECIPES[@]}"; do IFS='|' read -r n c s <<<"$r"; printf '%-16s %s\n%16s   %s\n' "$n" "$c" "" "$s"; done; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) POSITIONAL+=("$1"); shift ;;
  esac
done
((${#POSITIONAL[@]} >= 2 && ${#POSITIONAL[@]} <= 3)) || usage
OLD_SPEC="${POSITIONAL[0]}" NEW_SPEC="${POSITIONAL[1]}"
WORK="${POSITIONAL[2]:-/tmp/fractrain-behaviour}"
[[ "$JOBS" == 1 || "$JOBS" == 2 ]] || die "--jobs takes 1 or 2, not '$JOBS'"
case "$(realpath -m "$WORK")/" in "$REPO"/*) die "WORK_DIR $WORK is inside the repository; choose a folder outside it (default /tmp/fractrain-behaviour)" ;; esac

SELECTED=()
if [[ -n "$ONLY" ]]; then
  IFS=',' read -r -a wanted <<<"$ONLY"
  for w in "${wanted[@]}"; do recipe_names | grep -qx "$w" || die "no recipe '$w'; recipes: $(recipe_names | tr '\n' ' ')"; done
  for r in "${RECIPES[@]}"; do
    n="${r%%|*}"
    for w in "${wanted[@]}" $([[ ",$ONLY," == *,adaptation,* ]] && echo static-fw8bw8); do
      [[ "$n" == "$w" ]] && { SELECTED+=("$r"); break; }
    done
  done
else
  SELECTED=("${RECIPES[@]}")
fi

mkdir -p "$WORK"
WORK="$(cd "$WORK" && pwd)"

# ---- the binaries -----------------------------------------------------------------------------------------------
# Prints the path of a fractrain binary for SPEC: SPEC itself when it is an executable file, else the build of the
# commit SPEC names (made here once, in WORK/build-HASH).
resolve_binary() {
  local spec="$1" commit src build
  if [[ -f "$spec" ]]; then
    [[ -x "$spec" ]] || die "$spec is not executable"
    realpath "$spec"; return
  fi
  commit="$(git -C "$REPO" rev-parse --verify --quiet "$spec^{commit}")" ||
    die "'$spec' is neither a fractrain binary nor a git commit of $REPO"
  build="$WORK/build-${commit:0:12}"
  if [[ ! -x "$build/fractrain" ]]; then
    src="$(mktemp -d "${TMPDIR:-/tmp}/fractrain-src-${commit:0:12}.XXXXXX")"
    echo "building $spec (${commit:0:12}) in $build (source in a temporary worktree $src) ..." >&2
    git -C "$REPO" worktree add --detach --quiet "$src" "$commit" >&2
    local ok=0
    if cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DFRACTRAIN_BUILD_TESTS=OFF \
         -DFRACTRAIN_BUILD_BENCH=OFF >"$build.log" 2>&1 &&
       cmake --build "$build" --target fractrain_cli -j "${FRACTRAIN_BUILD_JOBS:-2}" >>"$build.log" 2>&1; then
      ok=1
    fi
    git -C "$REPO" worktree remove --force "$src" >&2 || true
    ((ok)) || die "building $spec failed; see $build.log"
  fi
  echo "$build/fractrain"
}
OLD_BIN="$(resolve_binary "$OLD_SPEC")"
NEW_BIN="$(resolve_binary "$NEW_SPEC")"
echo "old: $OLD_BIN ($OLD_SPEC)"
echo "new: $NEW_BIN ($NEW_SPEC)${NEW_SETS[*]:+  with --set ${NEW_SETS[*]}}"
echo "work dir: $WORK"

# ---- data -------------------------------------------------------------------------------------------------------
mkdir -p "$WORK/data" "$WORK/logs"
if printf '%s\n' "${SELECTED[@]}" | grep -q '@DATA@/wordnet-lm' && [[ ! -f "$WORK/data/wordnet-lm/wiki.train.tokens" ]]; then
  echo "making the WordNet corpus in $WORK/data/wordnet-lm ..."
  python3 "$REPO/scripts/make_wordnet_corpus.py" "$WORK/data/wordnet-lm" >"$WORK/logs/make_wordnet_corpus.log" 2>&1 ||
    die "scripts/make_wordnet_corpus.py failed; see $WORK/logs/make_wordnet_corpus.log"
fi

# ---- runs -------------------------------------------------------------------------------------------------------
# run_side SIDE BINARY [extra KEY=VALUE...]: every selected recipe with one binary into WORK/SIDE; writes each
# recipe's wall time to WORK/logs/SIDE.times. Runs from the repository root (configs/ paths, hardware tables).
run_side() {
  local side="$1" bin="$2"; shift 2
  local root="$WORK/$side" name config sets start status
  rm -rf "$root"; mkdir -p "$root"; : >"$WORK/logs/$side.times"
  for r in "${SELECTED[@]}"; do
    IFS='|' read -r name config sets <<<"$r"
    sets="${sets//@ROOT@/$root}"; sets="${sets//@DATA@/$WORK/data}"
    local args=(train --quiet --config "$config")
    for s in $sets "train.threads=1" "output.dir=$root/$name" "cost.hardware=$REPO/configs/hardware/bitfusion.toml" "$@"; do
      args+=(--set "$s")
    done
    start=$(date +%s.%N)
    status=0
    (cd "$REPO" && OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 "$bin" "${args[@]}") >"$WORK/logs/$side-$name.log" 2>&1 || status=$?
    awk -v n="$name" -v a="$start" -v b="$(date +%s.%N)" -v s="$status" 'BEGIN { printf "%s %.1f %s\n", n, b - a, s }' \
      >>"$WORK/logs/$side.times"
    if ((status)); then
      echo "$side: $name FAILED (exit $status); see $WORK/logs/$side-$name.log" >&2
    else
      echo "$side: $name done ($(tail -n1 "$WORK/logs/$side.times" | cut -d' ' -f2) s)"
    fi
  done
}

started=$(date +%s)
if ((JOBS == 2)); then
  run_side old "$OLD_BIN" & old_pid=$!
  run_side new "$NEW_BIN" "${NEW_SETS[@]}" & new_pid=$!
  wait "$old_pid"; wait "$new_pid"
else
  run_side old "$OLD_BIN"
  run_side new "$NEW_BIN" "${NEW_SETS[@]}"
fi
echo "runs took $(($(date +%s) - started)) s"

failed=$(awk '$3 != 0 {print FILENAME ": " $1}' "$WORK/logs/old.times" "$WORK/logs/new.times")
[[ -z "$failed" ]] || die "some runs failed (logs in $WORK/logs):
$failed"

# ---- comparison -------------------------------------------------------------------------------------------------
echo
names=(); for r in "${SELECTED[@]}"; do names+=("${r%%|*}"); done
echo "run times in seconds (old / new):"
for n in "${names[@]}"; do
  printf '  %-16s %7s / %s\n' "$n" "$(awk -v n="$n" '$1 == n { print $2 }' "$WORK/logs/old.times")" \
    "$(awk -v n="$n" '$1 == n { print $2 }' "$WORK/logs/new.times")"
done
printf '  %-16s %7s / %s\n' "total" "$(awk '{ t += $2 } END { printf "%.1f", t }' "$WORK/logs/old.times")" \
  "$(awk '{ t += $2 } END { printf "%.1f", t }' "$WORK/logs/new.times")"
echo
python3 "$REPO/scripts/compare_runs.py" "$WORK/old" "$WORK/new" "${names[@]}"
