#!/usr/bin/env python3
"""Compares fractrain runs made by two binaries (or twice by one) and says whether they behaved identically.

For each run it compares
  checkpoint  every checkpoints/*.ckpt: the set of files, the envelope (magic, version, CRC-32), the meta JSON
              without wall-clock fields, and the payload (the LibTorch archive holding the model's and the
              optimizer's tensors): equal bytes, or else every tensor's storage bytes, dtype, size, stride and
              offset compared by attribute path (see archive_entries: LibTorch keys the optimizer state by memory
              address, so identical runs give different zip bytes), naming the first differing tensor and element;
  metrics     metrics.jsonl record by record (and cp_trace.jsonl where a run has one) without wall-clock fields;
  summary     summary.json without wall-clock fields and output_dir.
The wall-clock fields are train_seconds and images_per_second, wherever they appear. Paths are compared after
replacing each side's root folder with <ROOT> (the two sides' runs live in different folders; a config that names
a path under the root, e.g. train.init_from, then compares equal). Floats compare exactly (JSON text written by
nlohmann round-trips every double), and 1 is not 1.0.

    scripts/compare_runs.py OLD_ROOT NEW_ROOT RUN [RUN ...]   # compare OLD_ROOT/RUN with NEW_ROOT/RUN, as a table
    scripts/compare_runs.py OLD_RUN_DIR NEW_RUN_DIR            # compare two run folders

Prints one row per run: run / checkpoint / metrics / summary, each "identical" or "DIFFERENT", and under a
DIFFERENT row the first difference of each check (with -v, what each check compared, for every run).
Exit status: 0 when everything is identical, 1 on any difference, 2 on a usage error. Plain Python 3, no torch.
"""
import argparse
import binascii
import io
import json
import os
import pickle
import re
import struct
import sys
import zipfile

MAGIC = b"FRACTRAIN-CHECKPOINT\n"
WALL_CLOCK_KEYS = {"train_seconds", "images_per_second"}
SUMMARY_IGNORED_KEYS = {"output_dir"}  # top level of summary.json only
ROOT_PLACEHOLDER = "<ROOT>"


class Difference(Exception):
    """The first difference found, as a short human-readable sentence."""


# ---- JSON ------------------------------------------------------------------------------------------------------


def normalise(value, roots, ignored_keys, top_level_ignored=frozenset(), depth=0):
    """A copy of a parsed JSON value with ignored keys dropped and each root folder replaced by <ROOT>."""
    if isinstance(value, dict):
        return {k: normalise(v, roots, ignored_keys, top_level_ignored, depth + 1)
                for k, v in value.items()
                if k not in ignored_keys and not (depth == 0 and k in top_level_ignored)}
    if isinstance(value, list):
        return [normalise(v, roots, ignored_keys, top_level_ignored, depth + 1) for v in value]
    if isinstance(value, str):
        for root in roots:
            value = value.replace(root, ROOT_PLACEHOLDER)
        return value
    return value


def short(value, limit=80):
    text = json.dumps(value, sort_keys=True) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def string_difference(a, b):
    """Where two strings part, with a little context (a TOML text in a checkpoint's meta is long)."""
    i = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    line = a.count("\n", 0, i) + 1
    start = max(0, i - 30)
    return f"text differs at line {line}: {a[start:i + 40]!r} vs {b[start:i + 40]!r}"


def json_difference(a, b, path="$"):
    """None when a and b are the same JSON value (types included: 1 is not 1.0), else where and how they differ."""
    if type(a) is not type(b):
        return f"{path}: {short(a)} vs {short(b)} (types {type(a).__name__} vs {type(b).__name__})"
    if isinstance(a, dict):
        for key in a:
            if key not in b:
                return f"{path}.{key}: only in old ({short(a[key])})"
        for key in b:
            if key not in a:
                return f"{path}.{key}: only in new ({short(b[key])})"
        if list(a) != list(b):
            return f"{path}: same keys in another order: {list(a)} vs {list(b)}"
        for key in a:
            d = json_difference(a[key], b[key], f"{path}.{key}")
            if d:
                return d
        return None
    if isinstance(a, list):
        for i, (x, y) in enumerate(zip(a, b)):
            d = json_difference(x, y, f"{path}[{i}]")
            if d:
                return d
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} entries"
        return None
    if isinstance(a, float) and a != a and b != b:
        return None  # NaN (not valid JSON, but a NaN written by another tool should not look like a change)
    if a != b:
        if isinstance(a, str) and (len(a) > 80 or "\n" in a):
            return f"{path}: {string_difference(a, b)}"
        return f"{path}: {short(a)} vs {short(b)}"
    return None


def read_jsonl(path):
    records = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise Difference(f"{os.path.basename(path)} line {number} is not JSON ({e})")
    return records


def compare_jsonl(old_path, new_path, roots):
    name = os.path.basename(old_path)
    old = [normalise(r, roots, WALL_CLOCK_KEYS) for r in read_jsonl(old_path)]
    new = [normalise(r, roots, WALL_CLOCK_KEYS) for r in read_jsonl(new_path)]
    for i, (a, b) in enumerate(zip(old, new)):
        d = json_difference(a, b, "")
        if d:
            step = a.get("step") if isinstance(a, dict) else None
            where = f"record {i + 1}" + (f" (step {step})" if step is not None else "")
            raise Difference(f"{name} {where}: {d.lstrip('.')}")
    if len(old) != len(new):
        raise Difference(f"{name}: {len(old)} records (old) vs {len(new)} (new)")
    return len(old)


def compare_metrics(old_dir, new_dir, roots):
    counts = []
    for name in ("metrics.jsonl", "cp_trace.jsonl"):
        a, b = os.path.join(old_dir, name), os.path.join(new_dir, name)
        if not os.path.exists(a) and not os.path.exists(b):
            if name == "metrics.jsonl":
                raise Difference("no metrics.jsonl in either run")
            continue
        if not os.path.exists(a) or not os.path.exists(b):
            raise Difference(f"{name} only in the {'old' if os.path.exists(a) else 'new'} run")
        counts.append(f"{compare_jsonl(a, b, roots)} {name.split('.')[0]}")
    return "identical (" + ", ".join(counts) + ")"


def compare_summary(old_dir, new_dir, roots):
    values = []
    for d in (old_dir, new_dir):
        path = os.path.join(d, "summary.json")
        if not os.path.exists(path):
            raise Difference(f"no summary.json in {d}")
        with open(path, encoding="utf-8") as f:
            values.append(normalise(json.load(f), roots, WALL_CLOCK_KEYS, SUMMARY_IGNORED_KEYS))
    d = json_difference(values[0], values[1])
    if d:
        raise Difference("summary.json " + d)
    return "identical"


# ---- checkpoints -----------------------------------------------------------------------------------------------


def read_checkpoint(path):
    """(version, meta JSON, payload bytes) of a checkpoint file, checking its envelope as fractrain does."""
    with open(path, "rb") as f:
        data = f.read()
    name = os.path.basename(path)
    if not data.startswith(MAGIC):
        raise Difference(f"{name} is not a fractrain checkpoint (no magic line)")
    pos = len(MAGIC)
    try:
        (version,) = struct.unpack_from("<I", data, pos)
        (meta_size,) = struct.unpack_from("<Q", data, pos + 4)
        pos += 12
        meta_text = data[pos:pos + meta_size]
        pos += meta_size
        (payload_size,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        payload = data[pos:pos + payload_size]
        pos += payload_size
        (stored_crc,) = struct.unpack_from("<I", data, pos)
    except struct.error:
        raise Difference(f"{name} is truncated")
    if pos + 4 != len(data):
        raise Difference(f"{name}: {len(data) - pos - 4} unexpected bytes after the payload")
    if binascii.crc32(data[:pos]) & 0xFFFFFFFF != stored_crc:
        raise Difference(f"{name}: CRC-32 mismatch (the file is corrupt)")
    try:
        meta = json.loads(meta_text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Difference(f"{name}: meta is not JSON ({e})")
    return version, meta, payload


class _Stub:
    """Any class a TorchScript pickle names (the archive's modules): keeps its state, the attribute dict."""

    def __init__(self, *args):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _TensorRef:
    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)


def _rebuild_tensor(storage, offset, size, stride, *rest):
    return _TensorRef(storage, offset, size, stride)


class _ArchiveUnpickler(pickle.Unpickler):
    """Reads a LibTorch archive's data.pkl without torch: a tensor becomes its storage key, offset, size, stride."""

    def find_class(self, module, name):
        if name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if name == "_rebuild_parameter":
            return lambda tensor, *rest: tensor
        return type(name, (_Stub,), {})

    def persistent_load(self, pid):
        # ('storage', <class FloatStorage>, key, location, numel)
        return (getattr(pid[1], "__name__", str(pid[1])), str(pid[2]))


_ADDRESS = re.compile(r"0x[0-9a-f]+")


def archive_entries(payload):
    """The contents of a LibTorch archive (the model's and the optimizer's) as an ordered dict
    {attribute path: value}, a tensor as (storage type, size, stride, offset, storage bytes).

    The archive is not a stable byte string for equal tensors: LibTorch names each optimizer state entry, and lists
    each parameter group's parameters, by the address of the parameter's TensorImpl ("0x55e33cb1ef20"), and writes
    the state entries in the order of a hash map keyed by those addresses. Addresses change from process to process
    (ASLR), so the member numbering (archive/data/N) and the code files' attribute names change with them. Here
    each address becomes "<param G.I>", its place in the parameter groups, and the state entries are sorted by it.
    """
    with zipfile.ZipFile(io.BytesIO(payload)) as z:
        members = z.namelist()
        pkl = next((n for n in members if n.endswith("/data.pkl")), None)
        if pkl is None:
            raise Difference("the payload has no data.pkl (not a LibTorch archive?)")
        prefix = pkl[: -len("data.pkl")]
        root = _ArchiveUnpickler(io.BytesIO(z.read(pkl))).load()

        def attributes(v):
            return v.state if isinstance(v, _Stub) and isinstance(getattr(v, "state", None), dict) else None

        # Parameter addresses -> their place in the optimizer's parameter groups.
        names = {}

        def find_groups(v, depth=0):
            a = attributes(v)
            if a is None or depth > 20:
                return
            if "param_groups" in a and attributes(a["param_groups"]) is not None:
                for gkey, group in attributes(a["param_groups"]).items():
                    for pkey, address in (attributes(group) or {}).items():  # "params/0": "0x55e33cb0ba90"
                        if pkey.startswith("params/") and isinstance(address, str) and _ADDRESS.fullmatch(address):
                            names.setdefault(address, f"<param {gkey.split('/')[-1]}.{pkey.split('/')[-1]}>")
            for child in a.values():
                find_groups(child, depth + 1)

        find_groups(root)

        def canonical(key):
            return names.get(key, key) if isinstance(key, str) else key

        entries = {}

        def walk(v, path):
            if isinstance(v, _TensorRef):
                storage_type, key = v.storage
                entries[path] = ("tensor", storage_type, v.size, v.stride, v.offset, z.read(prefix + "data/" + key))
                return
            a = attributes(v)
            if a is not None:
                items = [(canonical(k), x) for k, x in a.items()]
                if any(k in names for k in a):  # the optimizer state: written in hash-map order
                    items.sort(key=lambda item: [int(n) if n.isdigit() else n for n in re.split(r"(\d+)", item[0])])
                for k, x in items:
                    walk(x, f"{path}.{k}" if path else k)
            elif isinstance(v, (list, tuple)):
                for i, x in enumerate(v):
                    walk(x, f"{path}[{i}]")
            elif isinstance(v, dict):
                for k, x in v.items():
                    walk(x, f"{path}[{canonical(k)!r}]")
            else:
                entries[path] = ("value", canonical(v))

        walk(root, "")
        return entries


_ELEMENT_FORMATS = {"FloatStorage": "f", "DoubleStorage": "d", "LongStorage": "q", "IntStorage": "i",
                    "ShortStorage": "h", "CharStorage": "b", "ByteStorage": "B", "BoolStorage": "?",
                    "HalfStorage": "e"}


def describe_tensor_difference(path, a, b):
    _, type_a, size_a, stride_a, offset_a, data_a = a
    _, type_b, size_b, stride_b, offset_b, data_b = b
    if (type_a, size_a, stride_a, offset_a) != (type_b, size_b, stride_b, offset_b):
        return f"tensor {path}: {type_a} {list(size_a)} vs {type_b} {list(size_b)} (or another stride/offset)"
    fmt = _ELEMENT_FORMATS.get(type_a)
    if fmt and len(data_a) == len(data_b):
        width = struct.calcsize(fmt)
        i = next(i for i in range(0, len(data_a), width) if data_a[i:i + width] != data_b[i:i + width])
        x, y = struct.unpack_from("<" + fmt, data_a, i)[0], struct.unpack_from("<" + fmt, data_b, i)[0]
        changed = sum(data_a[j:j + width] != data_b[j:j + width] for j in range(0, len(data_a), width))
        return (f"tensor {path} {list(size_a)}: storage element {i // width} is {x!r} vs {y!r} "
                f"({changed} of {len(data_a) // width} elements differ)")
    return f"tensor {path}: storage {len(data_a)} vs {len(data_b)} bytes"


def payload_difference(old_payload, new_payload):
    """None when two LibTorch archives hold the same tensors bit for bit (and the same other values), else the
    first difference, naming the tensor (e.g. model.stage1.0.conv1.weight) and the first differing element."""
    if old_payload == new_payload:
        return None
    try:
        a, b = archive_entries(old_payload), archive_entries(new_payload)
    except (zipfile.BadZipFile, pickle.UnpicklingError, KeyError, EOFError) as e:
        return f"payload bytes differ, and the archive cannot be read to compare its tensors ({e})"
    for path, x in a.items():
        if path not in b:
            return f"{path} only in old"
        y = b[path]
        if x == y:
            continue
        if x[0] == "tensor" and y[0] == "tensor":
            return describe_tensor_difference(path, x, y)
        return f"{path}: {short(x[-1] if x[0] == 'value' else '<tensor>')} vs {short(y[-1] if y[0] == 'value' else '<tensor>')}"
    extra = [p for p in b if p not in a]
    if extra:
        return f"{extra[0]} only in new"
    return None


def compare_checkpoints(old_dir, new_dir, roots):
    ckpt_a, ckpt_b = os.path.join(old_dir, "checkpoints"), os.path.join(new_dir, "checkpoints")
    files = []
    for d in (ckpt_a, ckpt_b):
        files.append(sorted(f for f in os.listdir(d) if f.endswith(".ckpt")) if os.path.isdir(d) else [])
    if files[0] != files[1]:
        raise Difference(f"checkpoint files differ: {files[0]} vs {files[1]}")
    if not files[0]:
        raise Difference("no checkpoints in either run")
    tensors = 0
    for name in files[0]:
        va, meta_a, payload_a = read_checkpoint(os.path.join(ckpt_a, name))
        vb, meta_b, payload_b = read_checkpoint(os.path.join(ckpt_b, name))
        if va != vb:
            raise Difference(f"{name}: format version {va} vs {vb}")
        tensors_d = payload_difference(payload_a, payload_b)
        meta_d = json_difference(normalise(meta_a, roots, WALL_CLOCK_KEYS), normalise(meta_b, roots, WALL_CLOCK_KEYS))
        if tensors_d or meta_d:
            raise Difference(f"{name}: " + "; ".join(
                [tensors_d or "tensors identical", f"meta {meta_d}" if meta_d else "meta identical"]))
        tensors += sum(1 for e in archive_entries(payload_a).values() if e[0] == "tensor")
    return f"identical ({', '.join(files[0])}: meta and {tensors} tensors)"


# ---- driver ----------------------------------------------------------------------------------------------------


def compare_run(old_dir, new_dir, roots):
    row = []
    for check in (compare_checkpoints, compare_metrics, compare_summary):
        try:
            row.append((True, check(old_dir, new_dir, roots)))
        except Difference as e:
            row.append((False, str(e)))
        except OSError as e:
            row.append((False, f"ERROR: {e}"))
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="OLD_ROOT (with RUNs) or OLD_RUN_DIR")
    parser.add_argument("new", help="NEW_ROOT (with RUNs) or NEW_RUN_DIR")
    parser.add_argument("runs", nargs="*", help="run folder names under both roots")
    parser.add_argument("-v", "--verbose", action="store_true", help="also say what was compared for identical runs")
    args = parser.parse_args()
    for d in (args.old, args.new):
        if not os.path.isdir(d):
            print(f"compare_runs: {d} is not a directory", file=sys.stderr)
            return 2
    old_root, new_root = os.path.abspath(args.old), os.path.abspath(args.new)
    pairs = [(r, os.path.join(old_root, r), os.path.join(new_root, r)) for r in args.runs] or \
            [(os.path.basename(old_root), old_root, new_root)]
    # Longest first, so that a root inside the other is replaced before its parent; relative spellings too.
    roots = sorted({old_root, new_root, args.old.rstrip("/"), args.new.rstrip("/")} - {""}, key=len, reverse=True)

    rows = [(name, compare_run(a, b, roots)) for name, a, b in pairs]
    headers = ("run", "checkpoint", "metrics", "summary")
    width = max(len(headers[0]), *(len(name) for name, _ in rows))
    print((f"{headers[0]:<{width}}  " + "".join(f"{h:<12}" for h in headers[1:])).rstrip())
    all_same = True
    for name, row in rows:
        all_same &= all(ok for ok, _ in row)
        print(f"{name:<{width}}  " + "".join(f"{'identical' if ok else 'DIFFERENT':<12}" for ok, _ in row).rstrip())
        for header, (ok, text) in zip(headers[1:], row):
            if not ok or args.verbose:
                print(f"{'':<{width}}    {header}: {text}")
    print("all runs identical" if all_same else "runs DIFFER (see above)")
    return 0 if all_same else 1


if __name__ == "__main__":
    sys.exit(main())
