#!/usr/bin/env bash
# The reference BLAS against OpenBLAS, side by side: runs bench_blas (Linear layers forward + backward, and a
# Transformer-LM training step) alternately under each library, several rounds, and reports the median of each
# case both ways and their ratio. LibTorch calls libblas.so.3, which the dynamic loader resolves, so each run
# gets a temporary directory on LD_LIBRARY_PATH whose libblas.so.3 and liblapack.so.3 point at one library; the
# benchmark prints the library it actually loaded, and a run that loaded the wrong one stops the script.
#
#   bench/blas_compare.sh [--build DIR] [--out DIR] [--threads "1 2"] [--rounds 3] [--repeats 3]
# Writes OUT/blas_compare_runs.csv (every run), OUT/blas_compare.csv and .json (medians and ratios) and, with
# gnuplot, OUT/blas_compare.png. Defaults: --build build, --out build/blas_compare.
# FRACTRAIN_REFERENCE_BLAS_DIR and FRACTRAIN_OPENBLAS_DIR override where the two libraries are looked for.
set -euo pipefail
cd "$(dirname "$0")/.."

build=build out="" threads="1 2" rounds=3 repeats=3
while (($#)); do
  case "$1" in
    --build) build=$2 ;;
    --out) out=$2 ;;
    --threads) threads=$2 ;;
    --rounds) rounds=$2 ;;
    --repeats) repeats=$2 ;;
    *) echo "blas_compare.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
out=${out:-$build/blas_compare}
bench="$build/bench/bench_blas"
[[ -x "$bench" ]] || { echo "blas_compare.sh: $bench not built (ninja -C $build bench_blas)" >&2; exit 1; }

# Debian's layout: the reference BLAS and LAPACK (libblas3, liblapack3) and OpenBLAS's OpenMP flavour
# (libopenblas0-openmp) each in their own directory under /usr/lib/<triplet>.
libdir="/usr/lib/$(gcc -print-multiarch)"
reference_dir=${FRACTRAIN_REFERENCE_BLAS_DIR:-$libdir}
openblas_dir=${FRACTRAIN_OPENBLAS_DIR:-$libdir/openblas-openmp}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/reference" "$work/openblas" "$out"
ln -s "$reference_dir/blas/libblas.so.3" "$work/reference/libblas.so.3"
ln -s "$reference_dir/lapack/liblapack.so.3" "$work/reference/liblapack.so.3"
ln -s "$openblas_dir/libblas.so.3" "$work/openblas/libblas.so.3"
ln -s "$openblas_dir/liblapack.so.3" "$work/openblas/liblapack.so.3"
for link in "$work"/*/*; do
  [[ -e "$link" ]] || { echo "blas_compare.sh: $(readlink "$link") is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

runs="$out/blas_compare_runs.csv"
echo "round,blas,case,threads,metric,value" > "$runs"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at the start"
for ((round = 0; round < rounds; ++round)); do
  # Alternate which library goes first, so that a slow spell of the machine does not always hit the same one.
  order="reference openblas"
  ((round % 2)) && order="openblas reference"
  for t in $threads; do
    for blas in $order; do
      expected=$([[ $blas == reference ]] && echo reference || echo OpenBLAS)
      result=$(LD_LIBRARY_PATH="$work/$blas" OMP_NUM_THREADS=$t "$bench" --threads "$t" --repeats "$repeats")
      loaded=$(sed -n 's/^blas,//p' <<< "$result")
      if [[ "${loaded%%,*}" != "$expected" ]]; then
        echo "blas_compare.sh: asked for $blas, but bench_blas loaded '$loaded'" >&2
        exit 1
      fi
      echo "round $round, $t thread(s), $blas: ${loaded#*,}"
      grep -Ev '^(blas,|case,)' <<< "$result" | sed "s/^/$round,$blas,/" >> "$runs"
    done
  done
done
echo "machine: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"

python3 - "$runs" "$out" <<'PY'
import csv, json, statistics, sys
runs_path, out = sys.argv[1], sys.argv[2]
values = {}
for row in csv.DictReader(open(runs_path)):
    key = (row["case"], int(row["threads"]), row["metric"])
    values.setdefault(key, {}).setdefault(row["blas"], []).append(float(row["value"]))
rows = []
for (case, threads, metric), by_blas in sorted(values.items()):
    ref, obl = statistics.median(by_blas["reference"]), statistics.median(by_blas["openblas"])
    # The speedup of OpenBLAS: more GFLOP/s, or fewer milliseconds.
    speedup = obl / ref if metric == "gflops" else ref / obl
    rows.append(dict(case=case, threads=threads, metric=metric, reference=ref, openblas=obl, speedup=speedup))
with open(f"{out}/blas_compare.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0]))
    w.writeheader()
    w.writerows(rows)
json.dump(rows, open(f"{out}/blas_compare.json", "w"), indent=1)
print(f"\n{'case':40} {'thr':>3} {'metric':>6} {'reference':>10} {'OpenBLAS':>10} {'speedup':>8}")
for r in rows:
    print(f"{r['case']:40} {r['threads']:>3} {r['metric']:>6} {r['reference']:>10.3f} {r['openblas']:>10.3f} {r['speedup']:>7.2f}x")
# Data for the plot: GFLOP/s of each Linear shape, both libraries, one block per thread count.
with open(f"{out}/blas_compare_gflops.dat", "w") as f:
    for r in rows:
        if r["metric"] == "gflops":
            f.write(f"{r['case'].removeprefix('linear_')}@{r['threads']}t {r['reference']} {r['openblas']}\n")
PY

if command -v gnuplot > /dev/null; then
  gnuplot <<GP
set terminal pngcairo size 1200,600
set output "$out/blas_compare.png"
set title "Linear forward + backward: reference BLAS vs OpenBLAS"
set ylabel "GFLOP/s"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8
set xtics rotate by -35 font ",8"
set key top left
plot "$out/blas_compare_gflops.dat" using 2:xtic(1) title "reference", "" using 3 title "OpenBLAS"
GP
fi
echo "wrote $out/blas_compare.csv, $out/blas_compare.json, $out/blas_compare_runs.csv$([[ -f $out/blas_compare.png ]] && echo ", $out/blas_compare.png")"
