#!/usr/bin/env bash
# The one prepared GPU run (issue 37), for a session lent the `device` tool's GPU (an H200 measured 4.47 ms a
# step eager, 0.535 ms replayed as a CUDA graph: ../shared/gpu/). It installs nothing: the machine's python3 holds
# torch (2.11 with CUDA) and torchvision; MNIST travels gzipped. Three parts, each under its own time limit:
#   1. scripts/graph_check.py: the graphed step against the same step run eagerly, 300 steps and a short batch of
#      32 from one seed; stops everything (exit 1) if their first 10 losses differ by over 1e-5 (relative), or the
#      eager step synchronises with the host. ~1 min.
#   2. python -m era_s7.tools.bench --device cuda, alone on the GPU: the seed pipeline, the engine's graph step (fp32)
#      and eager step (fp32, bf16). ~1 min.
#   3. Model_3 (candidate model3-b64-nodecay-ls005: today's model and recipe) on test seeds 1-20 in fp32 with the
#      graphed step, 20 processes sharing the GPU, into results/sweeps/cuda-graph/ (a condition of its own: its
#      floats are not the eager step's), to be paired with ../shared/gpu/model3-b64-nodecay-ls005-test.json (the
#      eager runs on the same seeds). A run alone should take ~10-15 s (0.6-0.9 ms x 14,070 steps: the probe's 0.535
#      ms without augmentation and EMA, plus ~60 small kernels of theirs; + 15 evaluations of ~0.08 s);
#      20 at once time-share the GPU: ~3-5 min expected, 5.5 min allowed (an interrupted sweep keeps its runs).
# Expected in all: ~6-8 min of the 10-minute call, plus the machine's start (1-2 min) of the 15 minutes' budget.
# `--confirm [SECONDS]`, a second call once the first's graph check held (issue 41): step 3's 100-seed confirmation
# in fp32 continued eagerly, test seeds 21-100 (1-20 are committed), 16 processes sharing the GPU, into
# results/sweeps/<gpu>/ (h200, h100: one condition a folder), stopped after SECONDS (default 540; the runs finished
# are kept and the next call resumes). Eager, 100 runs took ~25 min at 16 on an H200 (../shared/gpu/).
# Before the call, here:   mkdir -p .gpu && tar czf .gpu/mnist.tgz -C data/ -h MNIST/raw
#                          grep -qx '/.gpu/' .git/info/exclude || echo /.gpu/ >> .git/info/exclude
# The call:  device run: bash scripts/gpu-run.sh   carry: [".gpu"]   timeout_s: 600
# What comes back under $OUT: graph-check.json, bench-cuda.json, the sweep file, gpu-run.log (commit the first
# three to results/ after reading them). --dry-run: parts 1 and 2 on the CPU, tiny, and part 3's sweep listed, not
# trained (about 30 s here; tests/test_step.py runs part 1's CPU mode). Time limits 120 + 120 + 330 s: the call's
# 600 s hold them all.
set -euo pipefail
export PYTHONUNBUFFERED=1
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}  # era_s7 from this checkout (the GPU machine installs nothing)
PY=${PY:-python3}
OUT=${OUT:-/tmp/gpu-run-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-run.log") 2>&1
if [[ "${1:-}" == "--confirm" ]]; then
    gpu=$($PY -c "import torch; print(torch.cuda.get_device_name().split()[1].lower())")  # "NVIDIA H200" -> h200
    if [[ -f .gpu/mnist.tgz && ! -d data/MNIST/raw ]]; then mkdir -p data && tar xzf .gpu/mnist.tgz -C data; fi
    $PY -m era_s7.data
    timeout "${2:-540}" $PY -m era_s7.tools.sweep model3-b64-nodecay-ls005 --split test --precision fp32 \
        --device cuda --seeds 21-100 --jobs 16 --dir "results/sweeps/$gpu" || echo "stopped (time limit?): finished runs kept"
    cp -r "results/sweeps/$gpu"/. "$OUT/" 2>/dev/null || true
    ls -la "$OUT"
    exit 0
fi
if [[ "${1:-}" == "--dry-run" ]]; then
    DEVICE=cpu CHECK="--steps 12 --time-steps 0" BENCH="--images 256 --precisions fp32 --steps eager device"
    SWEEP="--seeds 1 --epochs 1 --jobs 1" JOBS_NOTE="(dry run)" STEP=device DIR=$OUT/sweeps
else
    DEVICE=cuda CHECK="--steps 300" BENCH="" SWEEP="--seeds 1-20 --jobs 20" JOBS_NOTE="" STEP=graph
    DIR=results/sweeps/cuda-graph
    $PY -c "import torch; assert torch.cuda.is_available(), 'no GPU here'; print(torch.__version__, torch.cuda.get_device_name())"
fi
if [[ -f .gpu/mnist.tgz && ! -d data/MNIST/raw ]]; then mkdir -p data && tar xzf .gpu/mnist.tgz -C data; fi
$PY -m era_s7.data
echo "== 1. graph check $JOBS_NOTE"
timeout 120 $PY scripts/graph_check.py --device $DEVICE $CHECK --out "$OUT/graph-check.json"
echo "== 2. bench $JOBS_NOTE"
if [[ $DEVICE == cuda ]]; then
    timeout 120 $PY -m era_s7.tools.bench --device cuda $BENCH && cp results/bench-cuda.json "$OUT/" || echo "bench failed or timed out"
else
    tmp=$(mktemp -d); cp results/bench-cpu.json "$tmp/" 2>/dev/null || true
    $PY -m era_s7.tools.bench --device cpu $BENCH; cp results/bench-cpu.json "$OUT/bench-dry-run.json"
    cp "$tmp/bench-cpu.json" results/bench-cpu.json 2>/dev/null || true  # a dry run leaves the record as it was
fi
echo "== 3. Model_3 on test seeds, step=$STEP $JOBS_NOTE"
if [[ $DEVICE == cpu ]]; then  # a full epoch is minutes on a CPU: the dry run lists what the sweep would train
    ERA_S7_STEP=$STEP $PY -m era_s7.tools.sweep model3-b64-nodecay-ls005 --split test --precision fp32 --table --dir "$DIR"
else
    ERA_S7_STEP=$STEP timeout 330 $PY -m era_s7.tools.sweep model3-b64-nodecay-ls005 --split test --precision fp32 \
        --device $DEVICE $SWEEP --dir "$DIR" || echo "sweep stopped (time limit?): the runs finished are kept"
fi
cp -r "$DIR"/. "$OUT/" 2>/dev/null || true
ls -la "$OUT"
