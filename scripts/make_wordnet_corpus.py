#!/usr/bin/env python3
"""Makes a small real-text language-modelling corpus in the WikiText token format from WordNet.

Reads the glosses of Debian's wordnet-base package (/usr/share/wordnet/data.{noun,verb,adj,adv}): every synset's
definitions and its quoted example sentences, one per line, lowercased (WordNet's glosses are lowercase; only the
examples' first words and names are not, so lowercasing mostly merges duplicates), words and punctuation separated
by single spaces as in WikiText. Each synset goes whole to one split, chosen by a CRC-32 of its part of speech and
offset: about 90% train, 5% valid, 5% test, the same on every machine. Writes wiki.train.tokens,
wiki.valid.tokens and wiki.test.tokens into the output folder (default data/wordnet-lm).

    scripts/make_wordnet_corpus.py [OUTPUT_DIR] [--wordnet DIR]
"""
import argparse
import os
import re
import sys
import zlib

PARTS_OF_SPEECH = ["noun", "verb", "adj", "adv"]
# A word: letters/digits, with inner apostrophes, hyphens or dots kept ("don't", "well-known", "u.s"); anything
# else that is not a space is a token of its own (punctuation).
TOKEN = re.compile(r"[^\W_]+(?:['\-.][^\W_]+)*|[^\w\s]|_", re.UNICODE)


def tokenize(text):
    return " ".join(TOKEN.findall(text.lower()))


def gloss_lines(gloss):
    """Definitions and examples of one gloss: 'def; "example"; "example"' -> one line each."""
    lines = []
    for part in re.split(r";\s*", gloss):
        part = part.strip().strip('"').strip()
        if part:
            tokens = tokenize(part)
            if tokens:
                lines.append(tokens)
    return lines


def split_of(pos, offset):
    bucket = zlib.crc32(f"{pos}:{offset}".encode()) % 20
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output", nargs="?", default="data/wordnet-lm")
    parser.add_argument("--wordnet", default="/usr/share/wordnet")
    args = parser.parse_args()

    splits = {"train": [], "valid": [], "test": []}
    for pos in PARTS_OF_SPEECH:
        path = os.path.join(args.wordnet, "data." + pos)
        if not os.path.exists(path):
            sys.exit(f"error: {path} not found; install WordNet with `apt-get install wordnet-base` "
                     f"(scripts/setup.sh does) or pass --wordnet DIR")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("  ") or " | " not in line:
                    continue  # the licence header
                offset = line.split(" ", 1)[0]
                splits[split_of(pos, offset)].extend(gloss_lines(line.split(" | ", 1)[1]))

    os.makedirs(args.output, exist_ok=True)
    for name, lines in splits.items():
        path = os.path.join(args.output, f"wiki.{name}.tokens")
        with open(path + ".tmp", "w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(lines) + "\n")
        os.replace(path + ".tmp", path)
        words = sum(len(l.split()) for l in lines)
        print(f"{path}: {len(lines)} lines, {words} words")


if __name__ == "__main__":
    main()
