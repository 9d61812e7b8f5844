"""--method auto: exact-truth synthetic scene, known warps of real pairs, refusals.

The real-pair protocol and its reading are explained in calibration/evaluate.py and
docs/CALIBRATION.md: the roadscene/TNO "aligned" pairs are themselves off by several
pixels, so recovery of the applied warp is measured against each pair's own alignment
(relative error); the raw error against the dataset alignment is reported, not asserted.
"""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from pf_stream.calibration import evaluate, vouch
from pf_stream.calibration.auto import AutoOptions, RegistrationRefused, assess, register
from pf_stream.calibration.geometry import corner_error
from tests.calibration_synth import VIS_SIZE, shapes_scene


def test_synthetic_two_modality_scene_recovered_within_1px():
    ir, vis = shapes_scene()
    warp = evaluate.random_homography(VIS_SIZE, np.random.default_rng(5), fraction=0.03)
    ir_warped = cv2.warpPerspective(ir, warp, VIS_SIZE, flags=cv2.INTER_LINEAR, borderValue=90)
    res = register(ir_warped, vis)
    err = corner_error(res.homography, np.linalg.inv(warp), VIS_SIZE)
    assert err < 1.0, f"mean corner error {err:.2f} px, checks {res.checks}"
    assert 0 < res.score <= 1 and res.error_px < 3.2
    # The self-check re-registered known-warped copies and they all came back.
    assert res.checks["self_check_px"] < 0.5, res.checks


def test_different_ir_size_and_scale_found_by_search():
    """A 320x240 IR core with a narrower field of view than the VIS camera."""
    ir, vis = shapes_scene(seed=11)
    truth = np.array([[1.8, 0.0, 40.0], [0.0, 1.8, 25.0], [0.0, 0.0, 1.0]])  # IR px -> VIS px
    ir_small = cv2.warpPerspective(ir, np.linalg.inv(truth), (320, 240), flags=cv2.INTER_AREA)
    res = register(ir_small, vis, AutoOptions(max_scale=1.25))
    assert corner_error(res.homography, truth, (320, 240)) < 1.5


def test_unrelated_scenes_are_refused():
    # 320x240: the same verdict as at 640x480 for a fifth of the time (pictures are never enlarged)
    ir, _ = shapes_scene(seed=1, size=(320, 240))
    _, vis = shapes_scene(seed=2, size=(320, 240))
    with pytest.raises(RegistrationRefused, match="^refused: "):
        register(ir, vis)


def test_half_without_shared_outlines_is_refused():
    """Shared shapes on top, each camera's own texture below (think barn over grass, TNO 24):
    the whole-picture checks pass, but nothing pins the bottom corners of a homography."""
    ir, vis = shapes_scene(seed=4)
    rng = np.random.default_rng(4)
    ir[240:] = np.clip(90 + rng.normal(0, 12, ir[240:].shape), 0, 255).astype(np.uint8)
    vis[240:] = np.clip(120 + rng.normal(0, 12, vis[240:].shape), 0, 255).astype(np.uint8)
    warp = evaluate.random_homography(VIS_SIZE, np.random.default_rng(5), fraction=0.03)
    ir_warped = cv2.warpPerspective(ir, warp, VIS_SIZE, flags=cv2.INTER_LINEAR, borderValue=90)
    result, refusal = assess(ir_warped, vis)
    checks = result.checks
    # The top half alone confirms the answer, and the picture as a whole passes.
    assert checks["local_top"] >= 2 * vouch.MIN_AGREE and checks["local_share"] >= vouch.MIN_AGREE_SHARE, checks
    assert refusal and refusal.startswith("refused: the bottom half of the picture has too little structure both cameras share"), refusal


def test_real_pairs_known_warps(shared_data):
    cases = evaluate.known_warp_cases(shared_data, n=10, seed=0, workers=2)  # the same cases as one process
    report = "\n".join(f"{c.name}: accepted={c.accepted} raw={c.raw_px:.2f} relative={c.relative_px:.2f} est={c.estimated_px:.2f} {c.note}" for c in cases)
    good = [c for c in cases if c.accepted and c.relative_px <= 2.0]
    wrong = [c for c in cases if c.accepted and c.relative_px > 2.0]
    assert len(good) >= 6, report
    assert not wrong, "accepted a wrong answer:\n" + report
    assert all(c.note.startswith("refused: ") and "\n" not in c.note for c in cases if not c.accepted), report


def test_real_mismatched_pairs_always_refused(shared_data):
    results = evaluate.mismatched_cases(shared_data, n=4, seed=2)
    accepted = [r for r in results if r[1]]
    assert not accepted, accepted


def test_cli_refusal_is_one_line_exit_2(tmp_path):
    # Unrelated scenes (real mismatched pairs: test_real_mismatched_pairs_always_refused), small so it is quick.
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    cv2.imwrite(str(ir), shapes_scene(seed=1, size=(320, 240))[0])
    cv2.imwrite(str(vis), shapes_scene(seed=2, size=(320, 240))[1])
    out = tmp_path / "rig.yaml"
    run = subprocess.run(
        [sys.executable, "-m", "pf_stream.calibration.cli", "--method", "auto", "--ir", str(ir), "--vis", str(vis), "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 2 and run.stderr.startswith("pf-calibrate: error: refused: ")
    assert run.stderr.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("model", ["affine", "similarity"])
def test_simpler_models_recover_a_warp_of_their_own_kind(model):
    """The self-check warps its copies within the model: with homographies an affine answer could
    never come back within 1 px, and --model affine/similarity were always refused."""
    from pf_stream.calibration.geometry import fit_model, image_corners, project

    ir, vis = shapes_scene()
    corners = image_corners(VIS_SIZE)
    warp, _ = fit_model(corners, project(evaluate.random_homography(VIS_SIZE, np.random.default_rng(5), fraction=0.03), corners), model)
    ir_warped = cv2.warpPerspective(ir, warp, VIS_SIZE, flags=cv2.INTER_LINEAR, borderValue=90)
    res = register(ir_warped, vis, AutoOptions(model=model))
    assert res.model == model and corner_error(res.homography, np.linalg.inv(warp), VIS_SIZE) < 1.0
    assert res.checks["self_check_px"] < 0.5, res.checks


def test_real_pair_with_a_half_that_no_camera_outlines_is_refused(shared_data):
    """TNO 24: barn and trees on top, bare grass below.  With the known warp of evaluation
    seed 1, the edge-lift checks of earlier versions accepted it (bottom-half lift 0.09-0.11
    > 0.08), its bottom corners 17 px from the dataset's alignment, extrapolated over
    grass; cell by cell, only the top confirms the answer."""
    rng = np.random.default_rng(1 + 1000)  # as evaluate.known_warp_cases(seed=1) draws it
    for name, ir, vis in evaluate.pick_pairs(shared_data, 10, 1):
        warp = evaluate.random_homography((ir.shape[1], ir.shape[0]), rng)
        if name == "tno/24.png":
            break
    assert name == "tno/24.png"
    result, refusal = assess(cv2.warpPerspective(ir, warp, (ir.shape[1], ir.shape[0]), flags=cv2.INTER_LINEAR), vis)
    assert refusal and refusal.startswith("refused: the bottom half of the picture has too little structure"), refusal
    assert result.checks["local_top"] >= 2 * vouch.MIN_AGREE and result.checks["local_bottom"] < vouch.MIN_AGREE, result.checks


def test_local_agreement_confirms_the_truth_cell_by_cell_and_not_a_shifted_answer():
    """The cell check on its own, with exact truth (identity): every cell with structure both
    pictures share finds its best shift at the truth; with the answer 5 px off (beyond the
    2 px tolerance, inside the 7 px search) none does, and the bottom half alone shifted
    loses exactly the bottom half."""
    ir, vis = shapes_scene()
    valid = np.ones(ir.shape, bool)
    truth = vouch.local_agreement(ir, vis, valid, np.eye(3))
    assert truth["local_cells"] >= 30 and truth["local_share"] >= 0.95, truth
    off = vouch.local_agreement(ir, vis, valid, np.array([[1.0, 0, 5], [0, 1, 0], [0, 0, 1]]))
    assert off["local_agree"] <= 1 and off["local_cells"] >= 30, off
    ir_bottom_moved = ir.copy()
    ir_bottom_moved[240:] = np.roll(ir, 5, axis=1)[240:]
    half = vouch.local_agreement(ir_bottom_moved, vis, valid, np.eye(3))
    assert half["local_top"] >= 2 * vouch.MIN_AGREE and half["local_bottom"] <= 1, half
    assert vouch.failed_check({"rival_ratio": 0.0, **truth}) is None
    assert "confirm" in vouch.failed_check({"rival_ratio": 0.0, **half}), half


def test_the_cells_pull_sees_a_small_affine_error_that_every_cell_confirms():
    """An answer 1.5 px off at the corners (a slight scale about the centre) is confirmed by every
    cell at the +-2 px of one cell, as the truth is; the cells' sub-pixel shifts still pull it
    back by about that much, so it is not *settled* (TNO 03 seeds 142 and 165, session 10:
    2.8-2.9 px off with every half confirming; their cells pulled 1.39 and 1.12 px)."""
    ir, vis = shapes_scene()
    valid = np.ones(ir.shape, bool)
    truth = vouch.local_agreement(ir, vis, valid, np.eye(3))
    assert truth["local_pull"] <= 0.3 and truth["local_broad"] == 1.0, truth
    h, w = vis.shape[:2]
    s = 1 + 1.5 / np.hypot(w / 2, h / 2)  # corners 1.5 px out
    scaled = np.array([[s, 0, (1 - s) * w / 2], [0, s, (1 - s) * h / 2], [0, 0, 1.0]])
    off = vouch.local_agreement(ir, vis, valid, scaled)
    assert off["local_agree"] >= truth["local_agree"] - 2 and off["local_broad"] == 1.0, off
    assert 1.1 <= off["local_pull"] <= 1.9, off
    assert vouch.settled(truth) and not vouch.settled(off)


def test_a_half_with_3_confirming_cells_needs_a_settled_answer_and_5_copies_back():
    """4 confirming cells per half, or 3 for a *settled* answer (every half mostly confirming,
    cells pulling <= MAX_PULL) whose self-check then brings 5 copies back within 1.25 px.
    Each case below had 3 in its bottom half and was accepted in the wrong basin of a scene in
    depth by an allowance without the pull (since reverted): TNO 03 seed 142 (session 10, 60 %
    of every half confirming, 5 copies within 0.61 px; its cells pull 1.39 px) is refused for
    its half; TNO 23 seed 59 (session 8; settled, pull 0.77) passes the half only to meet 5
    copies, whose fourth lands 1.57 px away (session 11's record)."""
    tno23 = {"rival_ratio": 0.0, "local_cells": 26, "local_agree": 23, "local_share": round(23 / 26, 4),
             "local_top": 20, "local_bottom": 3, "local_left": 11, "local_right": 12, "local_broad": 1.0, "local_pull": 0.77}
    tno03 = {"rival_ratio": 0.0, "local_cells": 15, "local_agree": 13, "local_share": round(13 / 15, 4),
             "local_top": 10, "local_bottom": 3, "local_left": 7, "local_right": 6, "local_broad": 1.0, "local_pull": 1.39,
             "self_check_px": 0.61}
    refused = vouch.failed_check(tno03)
    assert refused and refused.startswith("the bottom half of the picture has too little structure") and "3 < 4" in refused, refused
    assert vouch.failed_check({**tno03, "local_bottom": 4}) is None  # 4 cells need no settling
    assert "3 < 4" in vouch.failed_check({**tno23, "local_broad": 0.0})  # a half mostly not confirming
    assert vouch.failed_check(tno23) is None  # settled: on to the self-check ...
    assert vouch.self_check_plan(tno23) == (vouch.THIN_HALF_COPIES, vouch.SETTLED_SELF_CHECK) == (5, 1.25)
    assert "not reproducible" in vouch.failed_check({**tno23, "self_check_px": 1.57})  # ... which refuses it
    assert vouch.self_check_plan({**tno23, "local_bottom": 4}) == (3, 1.25)
    assert vouch.self_check_plan({**tno23, "local_bottom": 4}, max_self_check=0.8) == (3, 0.8)  # --max-error wins
    # TNO 03 seed 165 (session 10: a copy at 1.16 px, 2.8 px off) keeps the 1.0 bar: its cells pull 1.12 px
    tno03_165 = {"rival_ratio": 0, "local_cells": 15, "local_agree": 14, "local_share": 0.9333, "local_top": 10,
                 "local_bottom": 4, "local_left": 7, "local_right": 7, "local_broad": 1.0, "local_pull": 1.12}
    assert vouch.self_check_plan(tno03_165) == (3, vouch.MAX_SELF_CHECK)  # its cells pull 1.12 px: not settled


@pytest.mark.parametrize(
    "landings, distance, lost",
    [
        ([0.2, 0.3, 0.4], 0.4, 0),  # all three copies come back: the largest distance
        ([40.0, 0.2, 0.3, 0.1], 0.3, 1),  # one copy lost (its own search failed): replaced, accepted
        ([40.0, 0.2, 60.0], 60.0, 2),  # a second lost copy settles it: refused
        ([0.2, 2.5], 2.5, 0),  # a copy 1-5 bars away is not "lost": refused at once
        # a 1.25 px bar for every answer accepted TNO 22 seed 71 (session 9, a copy at 1.15 px) and
        # TNO 03 seed 165 (session 10, 1.16 px) in the wrong basin of a scene in depth: refused
        # (1.25 is only for a settled answer, and those two were not: see the test above)
        ([0.2, 1.15], 1.15, 0),
        ([1.16], 1.16, 0),
    ],
)
def test_self_check_replaces_one_lost_copy_and_no_more(monkeypatch, landings, distance, lost):
    """The self-check on scripted re-registrations: copy k lands ``landings[k]`` px (mean
    corner distance) from the answer.  Checks the bookkeeping of _self_check itself: which
    copies count, when a lost one is replaced, and when it stops early."""
    from pf_stream.calibration import auto

    size = (64, 48)
    answer = np.eye(3)
    calls = iter(landings)

    def fake_best_fit(copy, vis, opts):
        # The copy was warped by `warp`; answer∘warp⁻¹ shifted by d px lands d px away.
        d = next(calls)
        return np.array([[1, 0, d], [0, 1, 0], [0, 0, 1.0]]) @ np.linalg.inv(last_warp[0]), None

    last_warp = [np.eye(3)]
    real_random = auto.random_homography

    def remember(*args, **kwargs):
        last_warp[0] = real_random(*args, **kwargs)
        return last_warp[0]

    monkeypatch.setattr(auto, "_best_fit", fake_best_fit)
    monkeypatch.setattr(auto, "random_homography", remember)
    got, got_lost = auto._self_check(np.zeros(size[::-1], np.uint8), None, AutoOptions(), answer, bar=vouch.MAX_SELF_CHECK)
    assert got == pytest.approx(distance) and got_lost == lost
    assert next(calls, None) is None, "every scripted copy was used, and no more"
    refused = vouch.failed_check(
        {"rival_ratio": 0, "local_cells": 20, "local_agree": 20, "local_share": 1.0, **{f"local_{h}": 10 for h in vouch.HALVES},
         "self_check_px": got, "self_check_lost": got_lost}
    )
    assert (refused is None) == (distance <= vouch.MAX_SELF_CHECK), refused


def test_reference_is_the_medoid_of_the_pair_s_estimates(monkeypatch):
    """The evaluation's reference (a pair's own residual alignment): when the estimate of
    the unwarped pair is the odd one out (2.5 px from two re-estimates that agree), the
    reference is one of the agreeing two, and its spread says how far the odd one lies."""
    size = (64, 48)
    lands = [2.5, 0.0, 0.2]  # x shift of each estimate once mapped back: unwarped pair, copy 1, copy 2
    warps, calls = [], []
    real_random = evaluate.random_homography

    def remember(*args, **kwargs):
        warps.append(real_random(*args, **kwargs))
        return warps[-1]

    def scripted_estimate(ir, vis, opts):
        shift = np.array([[1, 0, lands[len(calls)]], [0, 1, 0], [0, 0, 1.0]])
        calls.append(1)
        # the k-th copy was warped by warps[k-1]: its answer is the shifted reference undoing that warp
        return shift if len(calls) == 1 else shift @ np.linalg.inv(warps[len(calls) - 2])

    monkeypatch.setattr(evaluate, "random_homography", remember)
    monkeypatch.setattr(evaluate, "estimate", scripted_estimate)
    copy_warps = evaluate.copy_warps(size, np.random.default_rng(0))
    ref, spread = evaluate.reference(np.zeros(size[::-1], np.uint8), None, AutoOptions(), copy_warps)
    assert len(calls) == 1 + evaluate.REFERENCE_COPIES == 3
    assert ref[0, 2] == pytest.approx(0.2) and spread == pytest.approx(2.3), (ref, spread)
