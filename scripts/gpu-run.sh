#!/usr/bin/env bash
# The one prepared GPU run (the `device` tool, when a task is lent a GPU): the candidate sweep on the GPU,
# then the GPU bench. Installs nothing: it uses the machine's python3 (which holds torch and torchvision) and
# the MNIST files carried along (run it with carry: ["data"]). Fits one 10-minute call; what it writes lands
# under $OUT and in results/ (commit results/sweeps/cuda/bf16/ and results/bench-cuda.json).
#   device run: bash scripts/gpu-run.sh        (carry data)
set -euo pipefail
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
OUT=${OUT:-results}
$PY -c "import torch; assert torch.cuda.is_available(), 'no GPU here'; print(torch.__version__, torch.cuda.get_device_name())"
$PY -m era_s7.data
# Runs share the GPU: one small model keeps it far from busy, so many processes at once is what fills it.
# Budget: round 6's candidates (how the parameters are trained; era_s7/candidates.py) x 24 seeds in bf16, the open
# question of the search; an interrupted sweep resumes (files are rewritten after every run).
ROUND=$($PY -c "from era_s7.candidates import ROUNDS; b, c, _ = ROUNDS['round 6']; print(b, *c)")
timeout 420 $PY -m era_s7.sweep $ROUND --seeds 1-24 --split validation --precision bf16 \
    --device cuda --jobs 12 --dir results/sweeps/cuda || echo "sweep stopped at its time limit; partial files kept"
timeout 120 $PY -m era_s7.bench --device cuda || true
mkdir -p "$OUT" && cp -r results/sweeps/cuda results/bench-cuda.json "$OUT"/ 2>/dev/null || true
