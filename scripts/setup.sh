#!/usr/bin/env bash
# Sets up the project's own environment in .venv (idempotent): CPU torch 2.13.0 from local disk, then the pack
# and its test tools (the `test` extra: pytest, ruff, ...). The constraints file keeps any dependency from swapping
# in a multi-GB CUDA torch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q -U pip
fi
.venv/bin/python -m pip install -q -c scripts/constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c scripts/constraints.txt -e ".[test,train]"
# rtmlib runs DWPose for data preparation; --no-deps: its own pins would add opencv-contrib-python next to OpenCV
.venv/bin/python -m pip install -q --no-deps rtmlib==0.0.16
.venv/bin/python - <<'PY'
import torch
assert torch.__version__.startswith("2.13.0"), f"unexpected torch {torch.__version__}"
PY
