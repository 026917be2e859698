#!/usr/bin/env bash
# The Python environment of the tests that use Python packages from PyPI (tests/tensorboard_reads_events.py:
# TensorBoard's own reader of event files): a venv in BUILD_DIR/python (default build/python), so neither
# Debian's externally managed system Python nor the user's is changed. Idempotent: a venv that already has
# the packages is left as it is. Needs python3 with venv (Debian: python3-venv, see scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-build}/python"
# TensorBoard 2.x reads event files with its own record reader (CRC-checked) and protobuf, no TensorFlow needed.
packages=("tensorboard>=2.12,<3")
if [[ -x "$venv/bin/python" ]] && "$venv/bin/python" -c 'import tensorboard.backend.event_processing.event_accumulator' 2>/dev/null; then
  exit 0
fi
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
"$venv/bin/python" -c 'import tensorboard; print("tensorboard", tensorboard.__version__, "in '"$venv"'")'
