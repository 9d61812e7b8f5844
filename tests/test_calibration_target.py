"""--method target on synthetic boards with exact ground truth: detection in both
polarities, corner ordering, RANSAC fit, the CLI end to end (YAML + overlay)."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests.calibration_synth import IR_SIZE, VIS_SIZE, board_placements, chessboard, circle_grid, target_pairs, true_homography
from pf_stream.calibration import target
from pf_stream.calibration.geometry import corner_error, project
from pf_stream.calibration.schema import load_calibration

BOARD = (9, 6)


@pytest.fixture(scope="module")
def chess_pairs():
    img, _ = chessboard(BOARD)
    return target_pairs(img, 3)


def test_detects_inverted_blurred_noisy_ir_corners(chess_pairs):
    img, board_corners = chessboard(BOARD)
    to_vis = board_placements(3, (img.shape[1], img.shape[0]))[0]
    truth_ir = project(np.linalg.inv(true_homography()) @ to_vis, board_corners)
    found = target.detect(chess_pairs[0][1], BOARD)
    assert found is not None and found.shape == (54, 2)
    # Match each detected corner to the nearest true one: ordering is checked separately.
    dist = np.linalg.norm(found[:, None, :] - truth_ir[None, :, :], axis=2).min(axis=1)
    assert dist.mean() < 0.5, f"IR corners off by {dist.mean():.2f} px on average"


def test_recovers_known_homography_within_1px(chess_pairs):
    res = target.calibrate(chess_pairs, BOARD)
    err = corner_error(res.homography, true_homography(), IR_SIZE)
    assert err < 1.0, f"mean corner error {err:.2f} px"
    assert res.pairs_used == 3 and res.rms_px < 1.0
    assert res.inliers == res.corners == 3 * 54


def test_circle_grid_with_bright_heated_circles():
    img, _ = circle_grid((4, 11))
    pairs = target_pairs(img, 3)  # IR inverted: heated circles are bright on dark
    res = target.calibrate(pairs, (4, 11), "circles")
    assert corner_error(res.homography, true_homography(), IR_SIZE) < 1.0


def test_ordering_fixed_when_detector_starts_from_the_other_end(chess_pairs):
    ir_pts = target.detect(chess_pairs[0][1], BOARD)
    vis_pts = target.detect(chess_pairs[0][2], BOARD)
    fixed = target.match_order(ir_pts[::-1].copy(), vis_pts, BOARD)  # as if found from the far corner
    assert np.linalg.norm(project(true_homography(), fixed) - vis_pts, axis=1).mean() < 1.0


def test_parse_board_errors():
    assert target.parse_board("9x6") == (9, 6)
    for bad in ("9by6", "1x6", "x"):
        with pytest.raises(Exception, match="board"):
            target.parse_board(bad)


def _write_pairs(tmp_path, pairs):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vis").mkdir()
    for name, ir, vis in pairs:
        cv2.imwrite(str(tmp_path / "ir" / f"{name}.png"), ir)
        cv2.imwrite(str(tmp_path / "vis" / f"{name}.png"), vis)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pf_stream.calibration.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_target_writes_yaml_and_overlay(tmp_path, chess_pairs):
    _write_pairs(tmp_path, chess_pairs[:2])
    out, overlay = tmp_path / "rig.yaml", tmp_path / "check.png"
    run = _cli("--method", "target", "--board", "9x6", "--ir", tmp_path / "ir", "--vis", tmp_path / "vis", "-o", out, "--overlay", overlay)
    assert run.returncode == 0, run.stderr
    cal = load_calibration(out)
    assert cal.method == "target" and cal.ir_size == IR_SIZE and cal.vis_size == VIS_SIZE
    assert corner_error(cal.homography, true_homography(), IR_SIZE) < 1.0
    assert cal.error_px is not None and cal.error_px < 1.0 and cal.details["pairs_used"] == 2
    picture = cv2.imread(str(overlay))
    assert picture is not None and picture.shape == (VIS_SIZE[1], 2 * VIS_SIZE[0], 3)


def test_cli_no_target_found_is_one_line_exit_2(tmp_path):
    rng = np.random.default_rng(0)
    pairs = [("noise", rng.integers(0, 255, (128, 160), dtype=np.uint8), rng.integers(0, 255, (240, 320), dtype=np.uint8))]
    _write_pairs(tmp_path, pairs)
    run = _cli("--method", "target", "--ir", tmp_path / "ir", "--vis", tmp_path / "vis", "-o", tmp_path / "x.yaml")
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "no 9x6 chessboard found" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.yaml").exists()
