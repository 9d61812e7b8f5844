#!/usr/bin/env bash
# Train `full` on a GPU, then distil `lite` from it, each schedule fitted to a time budget
# (for a short GPU slot; installs nothing).  pf-train needs kornia (the `train` extra), which
# the lent GPU machine lacks: carry its wheels (kornia, kornia_rs) as the device notes say.
# Arguments go to scripts/gpu_train.py:
#
#   scripts/gpu_train.sh --data DIR [--data DIR ...] --out OUT_DIR [--full-s 150] [--lite-s 60] [--set KEY=VALUE ...]
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_env.sh   # REPO, PY, and the import shim
"$PY" scripts/gpu_train.py "$@"
