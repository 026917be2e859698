#!/usr/bin/env python3
"""Writes the seed corpus of the fuzz targets (fuzz/corpus/<target>/): small valid inputs of each format, so
that the fuzzer starts from inputs that reach deep into the parsers. Run from the repository root."""
import gzip, json, struct, zlib, pathlib, shutil

root = pathlib.Path("fuzz/corpus")
for d in ["idx", "cifar", "config", "checkpoint", "tokens"]:
    (root / d).mkdir(parents=True, exist_ok=True)

# IDX: 2 images of 3x4, 2 labels; raw and gzipped.
images = struct.pack(">IIII", 2051, 2, 3, 4) + bytes(range(24))
labels = struct.pack(">II", 2049, 2) + bytes([3, 7])
(root / "idx/images.idx").write_bytes(images)
(root / "idx/labels.idx").write_bytes(labels)
(root / "idx/images.idx.gz").write_bytes(gzip.compress(images))
(root / "idx/labels.idx.gz").write_bytes(gzip.compress(labels))

# CIFAR: one CIFAR-10 record, one CIFAR-100 record.
(root / "cifar/cifar10.bin").write_bytes(bytes([4]) + bytes(i % 256 for i in range(3072)))
(root / "cifar/cifar100.bin").write_bytes(bytes([2, 57]) + bytes((3 * i) % 256 for i in range(3072)))

# Token files (WikiText format) and a saved vocabulary: the reader's quirks (CRLF, tabs, blank lines, no final
# newline, UTF-8).
(root / "tokens/wikitext.tokens").write_bytes(
    " = Valkyria Chronicles III = \n\n Senjō no Valkyria 3 : <unk> Chronicles ( Japanese : 戦場のヴァルキュリア3 ) is a "
    "role @-@ playing video game .\n\n = = Gameplay = = \n".encode())
(root / "tokens/quirks.tokens").write_bytes(b"a b a\r\nc  d\t\r\n\r\nlast line without newline   ")
(root / "tokens/vocab.txt").write_bytes("fractrain vocabulary v1 4\n<unk> 3\n<eos> 2\nthe 5\ncafé 1\n".encode())

# Configs: the recipes of configs/.
for toml in sorted(pathlib.Path("configs").glob("*.toml")):
    shutil.copy(toml, root / "config" / toml.name)
(root / "config/set.txt").write_text("train.epochs=3")

# Checkpoint containers: magic, version, meta JSON, payload, CRC-32 (src/train/checkpoint_file.cpp).
def container(meta, payload):
    body = b"FRACTRAIN-CHECKPOINT\n" + struct.pack("<I", 1)
    m = json.dumps(meta).encode()
    body += struct.pack("<Q", len(m)) + m + struct.pack("<Q", len(payload)) + payload
    return body + struct.pack("<I", zlib.crc32(body) & 0xFFFFFFFF)
meta = {"model_name": "resnet8", "step": 3, "epoch": 0, "extra": {"trainer": {"step": 3}}}
(root / "checkpoint/small.ckpt").write_bytes(container(meta, b"payload"))
(root / "checkpoint/empty_payload.ckpt").write_bytes(container({"model_name": "resnet20", "step": 0, "epoch": 0}, b""))
