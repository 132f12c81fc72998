#!/usr/bin/env bash
# The speed table on a CUDA GPU: CoOp's step, the floor and GradientPromptOptimizer for 10, 100 and 1,000
# classes on a random-weight ViT-B-16 and the embedded model, in fp32 and in bf16 (autocast), with peak
# CUDA memory (torch.cuda.max_memory_allocated) and template scoring at every class count; then the
# catalyst's round cost (stage-end scoring and evaluation, candidate and proposal scoring, against one
# step) and the probe's forks batched against one by one (benchmarks/probe_speed.py).
# Runs as is after the README set-up on a machine with one CUDA device, in under 7 minutes:
#
#     bash benchmarks/gpu_speed.sh            # or PYTHON=.venv/bin/python bash benchmarks/gpu_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

"$PYTHON" - <<'PY'
import sys, torch
if not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch: this script measures the GPU (use benchmarks/speed.py on the CPU)")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")
PY

for precision in fp32 bf16; do
    echo
    echo "=================== ${precision} ==================="
    # 1 untimed + up to 5 timed steps per cell; each precision is bounded to 140 s.
    timeout 140 "$PYTHON" benchmarks/speed.py --device cuda --precision "$precision" \
        --models vit,embedded --classes 10,100,1000 --steps 5 --cell-budget-s 10 \
        --scoring vit,embedded:10,100,1000
done

echo
echo "=================== probe forks (separate vs batched) and catalyst round cost ==================="
# 3, 5 and 9 forks of 10 steps each; bounded to 150 s.
timeout 150 "$PYTHON" benchmarks/probe_speed.py --device cuda --precision bf16 \
    --models vit,embedded --classes 10,100 --forks 3,5,9 --steps 10 --repeats 3
