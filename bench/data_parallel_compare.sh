#!/usr/bin/env bash
# Data-parallel throughput on this machine, side by side in one run: ResNet-20 training steps as 1 process x 1
# thread, 1 process x 2 threads and 2 ranks x 1 thread (fractrain train --nproc 2, Gloo on 127.0.0.1; "2x1" with
# synchronised BatchNorm and quantizer ranges, the defaults, "2x1block" the same with ranks that block instead of
# polling while they wait for a collective (train.comm_wait), "2x1local" with each rank's own statistics and
# ranges), for FP32 and
# FW-8/BW-8, several rounds in alternating order. Reports images/s (median of the rounds), the speedup of
# each against 1 process x 1 thread, and the share of a 2-rank step that rank 0 spends in collectives (gradient
# buckets, BatchNorm statistics, quantizer ranges, step totals; waiting for the slower rank included).
#
#   bench/data_parallel_compare.sh [--build DIR] [--out DIR] [--rounds 3] [--steps 60] [--batch 128]
# Writes OUT/data_parallel_runs.csv (every run), OUT/data_parallel.csv and .json (median images/s, median of the
# rounds' speedups against that round's 1x1) and, with
# gnuplot, OUT/data_parallel.png. Defaults: --build build, --out build/data_parallel_compare. Stop other work on
# the machine first: the ratios are only as good as the quiet they are measured in.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build out="" rounds=3 steps=60 batch=128
while (($#)); do
  case "$1" in
    --build) build=$2 ;;
    --out) out=$2 ;;
    --rounds) rounds=$2 ;;
    --steps) steps=$2 ;;
    --batch) batch=$2 ;;
    *) echo "data_parallel_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
out=${out:-$build/data_parallel_compare}
cli="$build/fractrain"
[[ -x "$cli" ]] || { echo "data_parallel_compare.sh: $cli not built (ninja -C $build fractrain_cli)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# One epoch of `steps` batches (the rate counts from the end of the first step, so start-up is left out).
samples=$((steps * batch))
runs="$out/data_parallel_runs.csv"
echo "round,precision,layout,images_per_second,train_seconds,communication_seconds" > "$runs"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
for ((round = 0; round < rounds; ++round)); do
  layouts="1x1 1x2 2x1 2x1block 2x1local"
  ((round % 2)) && layouts="2x1local 2x1block 2x1 1x2 1x1"
  for precision in fp32 fw8bw8; do
    bits=0
    [[ $precision == fw8bw8 ]] && bits=8
    for layout in $layouts; do
      ranks=${layout%%x*} threads=${layout#*x}
      threads=${threads%local}
      threads=${threads%block}
      dir="$work/$precision-$layout-$round"
      launch=()
      ((ranks > 1)) && launch=(--nproc "$ranks")
      [[ $layout == *local ]] && launch+=(--set train.sync_batchnorm=false --set precision.sync_ranges=false)
      [[ $layout == *block ]] && launch+=(--set train.comm_wait=block)
      "$cli" train -q --set model.name=resnet20 --set data.dataset=fashion-mnist --set data.train_subset=$samples \
        --set data.test_subset=256 --set train.batch_size=$batch --set train.iterations=$steps \
        --set train.eval_every=$steps --set train.log_every=0 --set precision.fw=$bits \
        --set precision.bw=$bits --set train.threads=$((ranks * threads)) --set output.dir="$dir" \
        --set output.tensorboard=false "${launch[@]}" > "$dir.log" 2>&1 ||
        { cat "$dir.log" >&2; exit 1; }
      python3 - "$dir/summary.json" "$round,$precision,$layout" >> "$runs" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
comm = s["cost"].get("data_parallel", {}).get("communication_seconds", 0.0)
print(f'{sys.argv[2]},{s["images_per_second"]},{s["train_seconds"]},{comm}')
PY
      echo "round $round, $precision, $layout (ranks x threads): $(tail -1 "$runs" | cut -d, -f4) images/s"
    done
  done
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

python3 - "$runs" "$out" <<'PY'
import csv, json, statistics, sys
runs_path, out = sys.argv[1], sys.argv[2]
by = {}
for row in csv.DictReader(open(runs_path)):
    by.setdefault((row["precision"], row["layout"]), []).append(row)
rows = []
# The speedup is the median over rounds of each round's ratio to that round's 1x1 run: runs of one round are
# minutes apart, so a slow phase of the machine moves both sides of a ratio alike.
for precision in ("fp32", "fw8bw8"):
    base = {r["round"]: float(r["images_per_second"]) for r in by[(precision, "1x1")]}
    for layout in ("1x1", "1x2", "2x1", "2x1block", "2x1local"):
        rs = by[(precision, layout)]
        rate = statistics.median(float(r["images_per_second"]) for r in rs)
        speedup = statistics.median(float(r["images_per_second"]) / base[r["round"]] for r in rs)
        share = statistics.median(float(r["communication_seconds"]) / float(r["train_seconds"]) for r in rs)
        rows.append(dict(precision=precision, layout=layout, images_per_second=rate, speedup=speedup,
                         communication_share=share))
with open(f"{out}/data_parallel.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
json.dump(rows, open(f"{out}/data_parallel.json", "w"), indent=1)
print(f"\n{'precision':9} {'ranks x threads':>15} {'images/s':>9} {'vs 1x1':>7} {'in collectives':>15}")
for r in rows:
    print(f"{r['precision']:9} {r['layout']:>15} {r['images_per_second']:>9.1f} {r['speedup']:>6.2f}x "
          f"{100 * r['communication_share']:>14.1f}%")
with open(f"{out}/data_parallel.dat", "w") as f:
    for r in rows:
        f.write(f"{r['precision']}-{r['layout']} {r['speedup']}\n")
PY

if command -v gnuplot > /dev/null; then
  gnuplot <<GP
set terminal pngcairo size 900,500
set output "$out/data_parallel.png"
set title "ResNet-20 training throughput against 1 process x 1 thread (median of the rounds' ratios)"
set ylabel "speedup"
set yrange [0:*]
set xtics rotate by -35
set bmargin 7
set style data histograms
set style fill solid 0.8
set boxwidth 0.7
set key top left
plot "$out/data_parallel.dat" using 2:xtic(1) title "speedup", 1.7 with lines dashtype 2 title "target 1.7x"
GP
fi
echo "wrote $out/data_parallel.csv, $out/data_parallel.json, $runs$([[ -f $out/data_parallel.png ]] && echo ", $out/data_parallel.png")"
