"""calibration/record.py: replaying the acceptance rules on recorded evidence must give the
verdict ``assess`` gives, or rule changes would be judged on numbers the product never makes."""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import numpy as np

from pf_stream.calibration import auto, record
from pf_stream.calibration.auto import assess
from tests.calibration_synth import shapes_scene


def test_judge_copies_forgives_one_lost_copy_and_says_when_a_list_runs_out():
    # 30 px is lost at a 1 px bar (> SELF_CHECK_LOST bars): replaced once, then the next two count.
    assert auto.judge_copies([0.2, 30.0, 0.4, 0.3], bar=1.0, copies=3) == (0.4, 1, 3)
    # A second lost copy ends the check with its own distance.
    assert auto.judge_copies([30.0, 0.2, math.inf], bar=1.0, copies=3) == (math.inf, 2, 1)
    # A copy between the bar and the lost distance settles it at once.
    assert auto.judge_copies([0.2, 1.6, 0.1], bar=1.0, copies=3) == (1.6, 0, 2)
    # A recorded list too short for the copies asked: fewer back, within the bar.
    assert auto.judge_copies([0.2, 0.3], bar=1.0, copies=5) == (0.3, 0, 2)


def test_replay_gives_the_refusal_assess_gives_and_a_table(tmp_path):
    ir, _ = shapes_scene(seed=1, size=(320, 240))
    _, vis = shapes_scene(seed=2, size=(320, 240))
    _, refusal = assess(ir, vis)
    rec = record.evidence(ir, vis)
    assert refusal and refusal.startswith("refused: " + record.verdict(rec)), (refusal, record.verdict(rec))
    # The same evidence as an accepted, right answer: all checks passing, copies back within the bar.
    right = dict(rec, kind="warp", seed=3, name="fake", ir_size=(640, 480), truth=np.eye(3), found=[np.eye(3)] * 3, h=np.eye(3))
    right["checks"] = dict(rec["checks"], rival_ratio=0.0)
    right["costs"] = np.ones_like(rec["costs"])
    right["costs"][auto.vouch.LOCAL_RADIUS, auto.vouch.LOCAL_RADIUS] = 0.5  # every cell's best shift is zero
    right["covered"] = np.ones_like(rec["covered"])
    right["copies"] = [0.3] * record.COPIES_RECORDED
    assert record.verdict(right) is None
    assert "not reproducible" in record.verdict(dict(right, copies=[0.3, 2.0, 0.3]))  # beyond the settled bar
    wrong = dict(right, h=np.diag([1.02, 1.0, 1.0]))  # 10 px off at the right-hand corners
    mismatched = dict(right, kind="mismatched")
    table = record.replay([right, wrong, mismatched, dict(rec, kind="warp", seed=4, name="refused", ir_size=(640, 480), truth=np.eye(3), found=[np.eye(3)])])
    assert "| 2 | 1 of 3 (33.3 %) | 0 of 2 | 1 of 1 |" in table, table
    assert "**wrong**: seed 3 fake, relative 6.40 px" in table and "**mismatched pair accepted**" in table, table
    # The command line replays a folder of per-seed records.
    (tmp_path / "seed_3.pkl").write_bytes(pickle.dumps([right, mismatched]))
    run = subprocess.run([sys.executable, "-m", "pf_stream.calibration.record", "--replay", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0 and "| 1 | 1 of 1 (100.0 %) | 0 of 1 | 1 of 1 |" in run.stdout, run.stdout + run.stderr
