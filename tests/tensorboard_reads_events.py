#!/usr/bin/env python3
"""TensorBoard's own reader loads a fractrain event file and finds metrics.jsonl's numbers.

Runs the CLI on a tiny FracTrain (DFQ with stages) run on Fashion-MNIST, then loads the run directory with
tensorboard.backend.event_processing.event_accumulator.EventAccumulator, the reader behind TensorBoard's
scalar dashboard (it checks the TFRecord CRCs), and compares every scalar with metrics.jsonl: the same tags
(a record's numeric fields but "step", nested ones by their path joined with "/"), at the same steps, with
the values equal as float32. Fails (never skips) when anything it needs is missing.

usage: tensorboard_reads_events.py FRACTRAIN_CLI [WORK_DIR]
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

try:
    from tensorboard.backend.event_processing import event_accumulator
except ImportError as e:
    sys.exit(f"error: {e}: run scripts/python_env.sh to create the venv with tensorboard (build/python), "
             "and run this test with its python")


def as_float32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def scalars_of(record, prefix=""):
    """(tag, value) for every number in a metrics record, nested fields tagged by their path."""
    out = []
    for key, value in record.items():
        if not prefix and key == "step":
            continue
        tag = prefix + key
        out.extend(leaf_scalars(value, tag))
    return out


def leaf_scalars(value, tag):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []  # not numbers TensorBoard can plot
    if isinstance(value, (int, float)):
        return [(tag, float(value))]
    if isinstance(value, dict):
        return scalars_of(value, tag + "/")
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in leaf_scalars(v, f"{tag}/{i}")]
    raise TypeError(f"{tag}: unexpected {type(value).__name__}")


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    if len(sys.argv) == 3:
        check(sys.argv[1], sys.argv[2])
    else:
        with tempfile.TemporaryDirectory(prefix="fractrain_tensorboard_") as work:
            check(sys.argv[1], work)


def check(cli, work):
    run_dir = os.path.join(work, "run")
    args = [cli, "train", "--config", os.path.join(os.path.dirname(__file__), "..", "configs",
                                                   "fashion_mnist_fractrain.toml"),
            "--set", "model.name=resnet8", "--set", "data.train_subset=256", "--set", "data.test_subset=64",
            "--set", "train.batch_size=32", "--set", "train.iterations=8", "--set", "train.eval_every=4",
            "--set", "train.threads=2", "--set", "precision.pfq_window_iterations=1",
            "--set", "output.dir=" + run_dir]
    result = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        sys.exit(f"error: {' '.join(args)} exited with {result.returncode}:\n{result.stdout}")

    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f if line.strip()]
    expected = {}  # tag -> [(step, float32 value)]
    for r in records:
        for tag, value in scalars_of(r):
            expected.setdefault(tag, []).append((r["step"], as_float32(value)))
    if not records or not any(t.startswith("gate_selection/") for t in expected):
        sys.exit(f"error: {run_dir}/metrics.jsonl has no records with gate_selection: the run is not the one "
                 "this test needs")

    files = [f for f in os.listdir(run_dir) if "tfevents" in f]
    if len(files) != 1:
        sys.exit(f"error: expected one event file in {run_dir}, found {files}")
    acc = event_accumulator.EventAccumulator(run_dir, size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    if acc.file_version != 2.0:
        sys.exit(f"error: file_version {acc.file_version}, expected 2 (brain.Event:2)")
    found = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}

    problems = []
    for tag in sorted(set(expected) | set(found)):
        want, got = expected.get(tag), found.get(tag)
        if want is None:
            problems.append(f"{tag}: in the event file, not in metrics.jsonl: {got}")
        elif got is None:
            problems.append(f"{tag}: in metrics.jsonl, not in the event file")
        elif len(want) != len(got) or not all(s == t and v == u for (s, v), (t, u) in zip(want, got)):
            problems.append(f"{tag}: metrics.jsonl {want}, event file {got}")
    if problems:
        sys.exit("error: TensorBoard's reader and metrics.jsonl differ:\n  " + "\n  ".join(problems))
    print(f"TensorBoard read {len(found)} scalar tags at steps {[r['step'] for r in records]} from "
          f"{files[0]}, all equal to metrics.jsonl")


if __name__ == "__main__":
    main()
