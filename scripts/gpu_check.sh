#!/usr/bin/env bash
# The one GPU check, for a short slot on a GPU machine (H100/H200 class, no network):
#   accuracy of fp16/bf16 and CUDA graphs vs fp32, pf-bench tables (lite/full, 640x512 and
#   1280x1024, fp32 / fp16 / fp16 + CUDA graphs), pf-bench --backend all, tests/test_gpu_cuda.py and test_gpu_cli.py.
# Installs nothing and downloads nothing.  Finishes in about 8 minutes at most.
#
#   scripts/gpu_check.sh [OUT_DIR]      (default: $OUT if set, else ./gpu_check_out)
#
# Results: OUT_DIR/gpu_check.md (paste its tables into docs/BENCHMARKS.md, card named) and
# OUT_DIR/gpu_check.json; everything printed is also in OUT_DIR/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
source scripts/gpu_env.sh   # REPO, PY, and the import shim
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
export PF_STREAM_CACHE="$OUT_DIR/cache"   # ONNX/engine caches of this run stay out of the home folder
BUDGET_S="${GPU_CHECK_BUDGET_S:-430}"   # a shorter slot: GPU_CHECK_BUDGET_S=250 scripts/gpu_check.sh
timeout "$((BUDGET_S + 50))" "$PY" scripts/gpu_check.py --out "$OUT_DIR" --budget-s "$BUDGET_S" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
rm -rf "$OUT_DIR/cache"
[ "$status" -eq 124 ] && echo "gpu_check: stopped at its time limit; partial results are in $OUT_DIR"
exit "$status"
