#!/usr/bin/env bash
# Train the issue's 6-layer/384-wide abcGPT on all local GPUs (or: CONFIG=recipes/abcgpt/single_gpu.yaml).
# Extra arguments go to train.py, e.g. `--resume` or `--source names --source shakespeare --source tinystories`.
set -euo pipefail
cd "$(dirname "$0")/../.."
CONFIG="${CONFIG:-recipes/abcgpt/multi_gpu.yaml}"
OUT="${OUT:-runs/abcgpt-6x384}"
exec accelerate launch --config_file "$CONFIG" recipes/abcgpt/train.py \
  --source tinystories --source shakespeare --output-dir "$OUT" \
  --n-embd 384 --n-layer 6 --n-head 6 --block-size 256 --batch-size 64 --learning-rate 1e-3 \
  --steps 10000 --save-every 500 "$@"
