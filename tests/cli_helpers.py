"""Running a pf-* tool as a user does (a subprocess) and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_tool(module: str, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, prog: str, *words: str) -> str:
    """Exit code 2 and exactly one line, ``prog: error: ...``, holding every word."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"rc {proc.returncode}\n{proc.stderr}"
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]
