# Sourced by scripts/gpu_check.sh and scripts/gpu_train.sh, from the repository root: makes the
# checkout importable on a GPU machine where nothing may be installed.
#
REPO="$(pwd)"
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
  echo "note: pf_stream.export.cli does not import here; export-related tests will fail"
fi

