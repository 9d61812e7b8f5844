"""pf-calibrate --method points names a misclicked pair (least squares hid it below 10 pairs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pf_stream.calibration.geometry import project

REPO = Path(__file__).resolve().parents[1]
# A plausible rig: 640x512 IR into 1920x1080 VIS, scaled, shifted, a little perspective.
H = np.array([[2.9, 0.03, 20.0], [-0.02, 2.05, 15.0], [1e-5, 2e-5, 1.0]])
IR = np.array([[20, 20], [600, 30], [610, 490], [30, 480], [320, 256], [150, 380], [480, 120]], float)


def _run(tmp: Path, rows: np.ndarray) -> subprocess.CompletedProcess:
    csv = tmp / "clicks.csv"
    csv.write_text("ir_x,ir_y,vis_x,vis_y\n" + "".join(",".join(f"{v:.2f}" for v in r) + "\n" for r in rows))
    cmd = [sys.executable, "-m", "pf_stream.calibration.cli", "--method", "points", str(csv),
           "--ir-size", "640x512", "--vis-size", "1920x1080", "-o", str(tmp / "rig.yaml")]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)


@pytest.mark.parametrize("bad", [None, 4, 6])
def test_one_misclick_among_seven_pairs_is_named(tmp_path, bad):
    vis = project(H, IR) + np.random.default_rng(0).normal(0, 0.5, IR.shape)  # clicks good to ~0.5 px
    if bad is not None:
        vis[bad] += (40.0, -25.0)  # one click on the wrong corner
    proc = _run(tmp_path, np.hstack([IR, vis]))
    assert proc.returncode == 0, proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "misclick" in ln]
    if bad is None:
        assert warnings == []
    else:
        assert len(warnings) == 1 and f"point pair {bad + 1} is" in warnings[0], proc.stderr
