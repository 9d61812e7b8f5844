#!/usr/bin/env bash
# The one GPU check, for a short slot on a GPU machine (H100/H200 class, no network):
#   accuracy of fp16/bf16 and CUDA graphs vs fp32, pf-bench tables (lite/full, 640x512 and
#   1280x1024, fp32 / fp16 / fp16 + CUDA graphs), pf-bench --backend all, tests/test_gpu_*.py.
# Installs nothing and downloads nothing.  Finishes in about 8 minutes at most.
#
#   scripts/gpu_check.sh [OUT_DIR]      (default: $OUT if set, else ./gpu_check_out)
#
# Results: OUT_DIR/gpu_check.md (paste its tables into docs/BENCHMARKS.md, card named) and
# OUT_DIR/gpu_check.json; everything printed is also in OUT_DIR/gpu_check.log.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
OUT_DIR="${1:-${OUT:-gpu_check_out}}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
PY="${PYTHON:-python3}"

# The top-level export/, train/ and calibration/ folders are the packages pf_stream.export,
# .train and .calibration once pip-installed.  Without installing, an import hook (the mapping
# setuptools' editable install makes) serves them from this checkout, for this run only.  It
# lives in a sitecustomize.py so that subprocesses (pf-bench, pytest) get it too; a system
# sitecustomize, if any, is shadowed for this run.
SHIM="$(mktemp -d)"
trap 'rm -rf "$SHIM"' EXIT
cat > "$SHIM/sitecustomize.py" <<PYEOF
import importlib.abc, importlib.util, sys
ROOT = "$REPO"
class _Subpackages(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        head, _, tail = name.partition(".")
        if head == "pf_stream" and tail in ("export", "train", "calibration"):
            return importlib.util.spec_from_file_location(
                name, f"{ROOT}/{tail}/__init__.py", submodule_search_locations=[f"{ROOT}/{tail}"])
        return None
sys.meta_path.append(_Subpackages())
PYEOF
export PYTHONPATH="$REPO:$SHIM${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import pf_stream.export.cli" 2>/dev/null; then
  echo "gpu_check: note: pf_stream.export.cli does not import here; export-related tests will fail"
fi

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
export PF_STREAM_CACHE="$OUT_DIR/cache"   # ONNX/engine caches of this run stay out of the home folder
timeout 480 "$PY" scripts/gpu_check.py --out "$OUT_DIR" --budget-s 430 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
rm -rf "$OUT_DIR/cache"
[ "$status" -eq 124 ] && echo "gpu_check: stopped at the 8-minute limit; partial results are in $OUT_DIR"
exit "$status"
