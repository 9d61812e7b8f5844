"""Regression tests from adversarial use of ``pf-calibrate``.

Each test is a defect a user hit: bad input must end in one line on stderr starting
``pf-calibrate: error:``, exit code 2 and no traceback; a failed run must leave what was
already on disk (a good calibration, the input pictures) as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.calibration_synth import chessboard, target_pairs

REPO = Path(__file__).resolve().parents[1]


def pf_calibrate(*argv, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pf_stream.calibration.cli", *map(str, argv)], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def assert_user_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, f"rc {proc.returncode}\n{proc.stderr}"
    assert len(lines) == 1 and lines[0].startswith("pf-calibrate: error: "), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def board_folders(tmp_path_factory) -> tuple[Path, Path]:
    """ir/ and vis/ folders of three synthetic chessboard pairs (IR 320x256, VIS 640x480)."""
    root = tmp_path_factory.mktemp("board")
    (root / "ir").mkdir(), (root / "vis").mkdir()
    for name, ir, vis in target_pairs(chessboard((9, 6))[0], 3):
        cv2.imwrite(str(root / "ir" / f"{name}.png"), ir)
        cv2.imwrite(str(root / "vis" / f"{name}.png"), vis)
    return root / "ir", root / "vis"


@pytest.mark.parametrize("flag, value, words", [
    ("--max-error", "-1", ("--max-error", "greater than 0")),  # was a KeyError traceback after the whole registration
    ("--max-error", "0", ("--max-error",)),  # could never pass: refused after the run
    ("--max-error", "nan", ("--max-error",)),  # refused with "0.0 px apart (> nan)"
    ("--max-error", "inf", ("--max-error",)),  # switched the self-check off: wrote what it could not vouch for
    ("--interval", "-1", ("--interval",)),  # ValueError traceback from time.sleep
    ("--interval", "nan", ("--interval",)),
    ("--pairs", "0", ("--pairs",)),  # was taken as "the default", 100 tries
    ("--pairs", "-1", ("--pairs",)),  # was ignored with pictures
])
def test_bad_numbers_are_refused_before_the_run(board_folders, flag, value, words):
    ir, vis = board_folders
    assert_user_error(pf_calibrate("--method", "auto", "--ir", ir, "--vis", vis, f"{flag}={value}", "-o", ir.parent / "never.yaml"), *words)
    assert not (ir.parent / "never.yaml").exists()
