"""pf-calibrate plumbing: points files, the YAML schema, bad input, live pair grabbing."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from pf_stream.calibration.geometry import corner_error, project
from pf_stream.calibration.live import grab_pairs
from pf_stream.calibration.points import read_points
from pf_stream.calibration.schema import Calibration, load_calibration, save_calibration
from pf_stream.errors import UserError
from pf_stream.frames import Frame

H_TRUE = np.array([[1.9, 0.05, 12.0], [-0.03, 1.95, -7.0], [1e-5, 2e-5, 1.0]])


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pf_stream.calibration.cli", *map(str, args)], capture_output=True, text=True, timeout=120)


def _one_line_exit_2(run, *needles):
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and "Traceback" not in run.stderr, run.stderr
    for needle in needles:
        assert needle in run.stderr, run.stderr


def _clicks(n=12, noise=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ir = rng.uniform([10, 10], [630, 500], (n, 2))
    return ir, project(H_TRUE, ir) + rng.normal(0, noise, (n, 2)) if noise else project(H_TRUE, ir)


def test_points_csv_to_yaml(tmp_path):
    ir, vis = _clicks(noise=0.3)
    csv = tmp_path / "clicks.csv"
    csv.write_text("ir_x,ir_y,vis_x,vis_y\n# a comment\n" + "".join(f"{a:.3f},{b:.3f},{c:.3f},{d:.3f}\n" for (a, b), (c, d) in zip(ir, vis)))
    out = tmp_path / "rig.yaml"
    run = _cli("--method", "points", csv, "--ir-size", "640x512", "--vis-size", "1280x1024", "-o", out)
    assert run.returncode == 0, run.stderr
    cal = load_calibration(out)
    assert cal.method == "points" and cal.ir_size == (640, 512) and cal.vis_size == (1280, 1024)
    assert corner_error(cal.homography, H_TRUE, (640, 512)) < 1.0
    assert 0.1 < cal.error_px < 1.0  # RMS of 0.3 px click noise


def test_points_yaml_with_sizes_and_affine_model(tmp_path):
    a = np.array([[2.0, 0.1, 5.0], [-0.1, 2.0, 3.0], [0, 0, 1.0]])
    ir = np.array([[0, 0], [100, 0], [0, 100], [100, 100], [50, 20]], float)
    vis = project(a, ir)
    f = tmp_path / "clicks.yaml"
    rows = [[*p, *q] for p, q in zip(ir.tolist(), vis.tolist())]
    f.write_text("ir_size: [320, 256]\nvis_size: [640, 512]\npoints:\n" + "".join(f"  - {r}\n" for r in rows[:4]) + f"  - {{ir: {rows[4][:2]}, vis: {rows[4][2:]}}}\n")
    pts = read_points(f)
    assert pts.ir_size == (320, 256) and len(pts.ir) == 5
    out = tmp_path / "rig.yaml"
    assert _cli("--method", "points", f, "--model", "affine", "-o", out).returncode == 0
    cal = load_calibration(out)
    assert cal.model == "affine" and np.allclose(cal.homography, a, atol=1e-6)


def test_malformed_points_yaml_is_one_line_exit_2(tmp_path):
    f = tmp_path / "clicks.yaml"
    f.write_text("points: [[1, 2, 3\n  ir_size: {")
    _one_line_exit_2(_cli("--method", "points", f, "--ir-size", "64x64", "--vis-size", "64x64"), "not valid YAML")


def test_bad_points_rows_and_too_few_points(tmp_path):
    f = tmp_path / "clicks.csv"
    f.write_text("1,2,3,4\n5,6,seven,8\n")
    _one_line_exit_2(_cli("--method", "points", f, "--ir-size", "64x64", "--vis-size", "64x64"), "line 2")
    f.write_text("1,2,3,4\n5,6,7,8\n9,1,2,3\n")
    _one_line_exit_2(_cli("--method", "points", f, "--ir-size", "64x64", "--vis-size", "64x64"), "at least 4 point pairs")
    _one_line_exit_2(_cli("--method", "points", f), "image sizes")


def test_blank_images_are_one_line_exit_2(tmp_path):
    ir, vis = tmp_path / "ir.png", tmp_path / "vis.png"
    cv2.imwrite(str(ir), np.full((256, 320), 17, np.uint8))
    cv2.imwrite(str(vis), np.random.default_rng(0).integers(0, 255, (480, 640), dtype=np.uint8))
    _one_line_exit_2(_cli("--method", "auto", "--ir", ir, "--vis", vis), "blank", "ir.png")
    _one_line_exit_2(_cli("--method", "target", "--ir", ir, "--vis", vis), "blank")


def test_missing_inputs_are_one_line_exit_2(tmp_path):
    _one_line_exit_2(_cli("--method", "auto", "--ir", tmp_path / "nope.png", "--vis", tmp_path / "nope2.png"), "not found")
    _one_line_exit_2(_cli("--method", "auto", "--ir", tmp_path / "a.png"), "--vis")
    (tmp_path / "i").mkdir(), (tmp_path / "v").mkdir()
    cv2.imwrite(str(tmp_path / "i" / "a.png"), np.zeros((8, 8), np.uint8))
    _one_line_exit_2(_cli("--method", "target", "--ir", tmp_path / "i", "--vis", tmp_path / "v"), "no picture names in common")


def test_schema_round_trip_and_malformed_calibration(tmp_path):
    cal = Calibration(H_TRUE, (640, 512), (1280, 1024), method="auto", error_px=1.5, score=0.4, model="homography", details={"lift": 0.4})
    save_calibration(cal, tmp_path / "c.yaml")
    back = load_calibration(tmp_path / "c.yaml")
    assert np.allclose(back.homography, H_TRUE) and back.details == {"lift": 0.4} and back.error_px == 1.5
    # A capture at half the calibration size maps the same scene points.
    h_half = back.scaled_to((320, 256), (640, 512))
    assert np.allclose(project(h_half, [[100, 80]]), project(H_TRUE, [[200, 160]]) / 2)
    (tmp_path / "bad.yaml").write_text("homography: [[1, 0, 0], [0, 1, 0]]\nir_size: [1, 1]\nvis_size: [1, 1]\n")
    with pytest.raises(UserError, match="3x3"):
        load_calibration(tmp_path / "bad.yaml")
    (tmp_path / "bad2.yaml").write_text("homography: [[1, 0, 0\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_calibration(tmp_path / "bad2.yaml")
    for key in ("error_px", "score"):  # used to be a ValueError traceback in pf-stream --calib
        (tmp_path / "bad3.yaml").write_text(f"homography: [[1, 0, 0], [0, 1, 0], [0, 0, 1]]\nir_size: [8, 8]\nvis_size: [8, 8]\n{key}: abc\n")
        with pytest.raises(UserError, match=f"'{key}' must be a number or null"):
            load_calibration(tmp_path / "bad3.yaml")


class FakeSource:
    """Stands in for pf_stream.sources: start()/read(timeout)/stop() and a context manager."""

    def __init__(self, images, fail_after=None):
        self.images, self.fail_after, self.seq, self.started, self.stopped = images, fail_after, 0, False, False

    def __enter__(self):
        self.started = True
        return self

    def __exit__(self, *exc):
        self.stopped = True

    def read(self, timeout=1.0):
        if self.fail_after is not None and self.seq >= self.fail_after:
            return None
        img = self.images[self.seq % len(self.images)]
        self.seq += 1
        return Frame(image=img, timestamp=float(self.seq), seq=self.seq, source="fake")


def test_grab_pairs_from_live_sources_filters_and_converts():
    ir16 = (np.arange(64 * 80, dtype=np.uint16).reshape(64, 80) * 7 + 3000)  # 16-bit thermal frame
    vis = np.dstack([np.full((48, 64), v, np.uint8) for v in (10, 20, 30)])
    sources = {"cam0": FakeSource([ir16]), "rtsp://vis": FakeSource([vis])}
    calls = []

    def accept(ir, v):
        calls.append(1)
        return len(calls) % 2 == 0  # every other pair shows the target

    pairs = grab_pairs("cam0", "rtsp://vis", 3, interval=0, accept=accept, opener=sources.__getitem__, sleep=lambda s: None)
    assert len(pairs) == 3 and len(calls) == 6
    assert pairs[0][1].dtype == np.uint8 and pairs[0][1].shape == (64, 80) and pairs[0][1].max() == 255
    assert pairs[0][2].shape == (48, 64)
    assert all(s.started and s.stopped for s in sources.values())


def test_grab_pairs_source_silence_is_a_user_error():
    sources = {"a": FakeSource([np.zeros((8, 8), np.uint8)]), "b": FakeSource([np.zeros((8, 8), np.uint8)], fail_after=0)}
    with pytest.raises(UserError, match="no VIS frame from b"):
        grab_pairs("a", "b", 1, opener=sources.__getitem__, sleep=lambda s: None)
    assert sources["b"].stopped


def test_cli_auto_grabs_pairs_from_real_video_sources(shared_data, tmp_path):
    """--ir/--vis as pf-stream sources (here the registered M3SVD video pair)."""
    clip = shared_data / "sequences" / "m3svd_videos" / "0113_1714"
    out = tmp_path / "rig.yaml"
    run = _cli("--method", "auto", "--ir", clip / "ir.mp4", "--vis", clip / "vi.mp4", "--pairs", 2, "--interval", 0.1, "-o", out)
    assert run.returncode == 0, run.stderr
    assert "grabbed pair 2/2" in run.stderr
    cal = load_calibration(out)
    assert cal.ir_size == cal.vis_size == (640, 480) and cal.details["pair"].startswith("live pair")
    # The pair is registered by its authors: the answer must stay close to the identity.
    assert corner_error(cal.homography, np.eye(3), cal.ir_size) < 4.0


def test_auto_on_a_folder_of_scenes_outvotes_the_pair_that_disagrees(shared_data, tmp_path):
    """Three frames of one registered M3SVD clip (the same rig): two IR frames carry one known
    warp, the third another.  Each pair is accepted on its own; the vote writes the majority's
    answer (the first warp undone) and names the outvoted pair."""
    from pf_stream.calibration.geometry import random_homography

    clip = shared_data / "sequences" / "m3svd_clips" / "0111_1753"
    (tmp_path / "ir").mkdir(), (tmp_path / "vi").mkdir()
    size = (640, 480)
    warp = random_homography(size, np.random.default_rng(5))
    other = random_homography(size, np.random.default_rng(6))
    assert corner_error(warp, other, size) > 6.0  # the odd one out is clearly elsewhere
    for name, w in (("0000", warp), ("0010", warp), ("0019", other)):
        ir = cv2.imread(str(clip / "ir" / f"{name}.png"), cv2.IMREAD_GRAYSCALE)
        assert ir.shape[::-1] == size
        cv2.imwrite(str(tmp_path / "ir" / f"{name}.png"), cv2.warpPerspective(ir, w, size))
        cv2.imwrite(str(tmp_path / "vi" / f"{name}.png"), cv2.imread(str(clip / "vi" / f"{name}.png")))
    out = tmp_path / "rig.yaml"
    run = _cli("--method", "auto", "--ir", tmp_path / "ir", "--vis", tmp_path / "vi", "-o", out)
    assert run.returncode == 0, run.stderr
    assert "outvoted: 0019" in run.stderr, run.stderr
    cal = load_calibration(out)
    assert cal.details["pair"] in ("0000", "0010")
    assert (cal.details["pairs_tried"], cal.details["pairs_accepted"], cal.details["pairs_agreeing"]) == (3, 3, 2)
    # The clip is registered by its authors (auto lands 0.6-1.1 px from the identity on it).
    assert corner_error(cal.homography, np.linalg.inv(warp), size) < 2.0


def test_auto_pairs_that_disagree_without_a_majority_are_refused(monkeypatch):
    """Two accepted answers far apart cannot be told apart: nothing is written."""
    from pf_stream.calibration import auto

    answers = {"a": np.eye(3), "b": np.array([[1.0, 0, 5.0], [0, 1, 0], [0, 0, 1]]), "c": np.array([[1.0, 0, 0.4], [0, 1, 0], [0, 0, 1]])}

    def fake_assess(ir, vis, opts):
        name = str(ir[0, 0])
        return auto.AutoResult(answers[name], 0.3, 0.5 if name == "b" else 0.7, {}), None

    monkeypatch.setattr(auto, "assess", fake_assess)
    blank = np.zeros((480, 640), np.uint8)

    def pair(name):
        ir = np.empty((480, 640), object)
        ir[0, 0] = name
        return (name, ir, blank)

    with pytest.raises(auto.RegistrationRefused, match="pairs .* were each accepted but their answers are 5.0 px apart"):
        auto.register_pairs([pair("a"), pair("b")])
    got = auto.register_pairs([pair("a"), pair("b"), pair("c")])  # a and c agree (0.4 px): b, the lowest error, is outvoted
    assert got.pair == "a" and got.disagreeing == ["b"] and got.result.checks["agreement_px"] == pytest.approx(0.4)
