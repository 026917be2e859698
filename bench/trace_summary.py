#!/usr/bin/env python3
"""Summarise a bench_step_time --profile trace: time per event name in FP32 and quantized steps.

    bench_step_time --profile /tmp/t.json --profile-steps 5
    python3 bench/trace_summary.py /tmp/t.json [name-regex]

Each step is a `fp32_step` / `quantized_step` event; events inside it are summed by name per step, and the
median over the steps of each kind is printed (medians, because one step disturbed by another process would
skew a mean). Nested events are counted in every enclosing name, as the profiler reports them.
"""
import collections
import json
import re
import statistics
import sys

KINDS = ("fp32_step", "quantized_step")


def main():
    trace = json.load(open(sys.argv[1]))
    pattern = re.compile(sys.argv[2] if len(sys.argv) > 2 else "")
    events = [e for e in (trace["traceEvents"] if isinstance(trace, dict) else trace) if e.get("ph") == "X"]
    steps = [e for e in events if e["name"] in KINDS]
    if not steps:
        sys.exit("no fp32_step/quantized_step events: record the trace with this version of bench_step_time")
    per_kind = {k: [] for k in KINDS}
    for step in steps:
        totals = collections.defaultdict(float, {"(whole step)": step["dur"] / 1e3})
        end = step["ts"] + step["dur"]
        for e in events:
            if e["name"] not in KINDS and step["ts"] <= e["ts"] <= end:
                totals[e["name"]] += e["dur"] / 1e3
        per_kind[step["name"]].append(totals)
    names = set().union(*(t.keys() for runs in per_kind.values() for t in runs))
    median = {k: {n: statistics.median([t.get(n, 0.0) for t in runs]) if runs else 0.0 for n in names}
              for k, runs in per_kind.items()}
    print(f"{'event (ms per step, median)':62s} {'fp32':>8s} {'quant':>8s} {'diff':>8s}")
    for n in sorted(names, key=lambda n: -max(median[k][n] for k in KINDS)):
        fp32, quant = median["fp32_step"][n], median["quantized_step"][n]
        if pattern.search(n) and max(fp32, quant) >= 0.1:
            print(f"{n[:62]:62s} {fp32:8.1f} {quant:8.1f} {quant - fp32:+8.1f}")


if __name__ == "__main__":
    main()
