#!/usr/bin/env bash
# One command, one GPU, < 8 minutes: S4M step time at paper scale (SAM 2 Hiera-L + Mask2Former
# R50, random weights, synthetic 1024-px LSJ batches of 2 labelled + 2 unlabelled images, AMP).
# Writes benchmarks/results/gpu_step_time.{md,json}; without a GPU it writes that statement.
# Needs the project venv (make venv) with sam2 installed; extra args go to gpu_step_time.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[[ -x "$PY" ]] || PY=python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
timeout "${GPU_STEP_TIME_LIMIT:-470}" "$PY" benchmarks/gpu_step_time.py "$@"
