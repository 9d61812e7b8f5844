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


def test_outputs_that_would_overwrite_an_input_are_refused(board_folders, tmp_path):
    # -o naming the IR picture replaced it with YAML text; --overlay naming a VIS picture
    # replaced it with the overlay.  The pictures are often the only copy of a session.
    ir, vis = board_folders
    before = {p: p.read_bytes() for p in [*ir.iterdir(), *vis.iterdir()]}
    target = ["--method", "target", "--ir", ir, "--vis", vis]
    assert_user_error(pf_calibrate(*target, "-o", ir / "pair0.png"), "-o")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.yaml", "--overlay", vis / "pair1.png"), "--overlay", "overwrite")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.yaml", "--overlay", ir / "check.png"), "--overlay", "folder")
    single = ["--method", "target", "--ir", ir / "pair0.png", "--vis", vis / "pair0.png"]
    assert_user_error(pf_calibrate(*single, "-o", tmp_path / "rig.yaml", "--overlay", vis / "pair0.png"), "--overlay", "--vis")
    assert {p: p.read_bytes() for p in [*ir.iterdir(), *vis.iterdir()]} == before
    assert not (tmp_path / "rig.yaml").exists()


def test_unusable_outputs_are_refused_before_the_run(board_folders, tmp_path):
    # Each of these failed only after the registration: --overlay check.txt with OpenCV's
    # two-line "could not find a writer", -o to a folder leaving "folder.tmp" behind.
    ir, vis = board_folders
    target = ["--method", "target", "--ir", ir, "--vis", vis]
    (tmp_path / "folder").mkdir()
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.yaml", "--overlay", tmp_path / "check.txt"), "--overlay", ".png")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.yaml", "--overlay", tmp_path / "folder"), "--overlay")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.yaml", "--overlay", tmp_path / "rig.yaml"), "--overlay", ".png")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "folder"), "-o", "folder")
    assert_user_error(pf_calibrate(*target, "-o", tmp_path / "rig.png"), ".yaml")
    if Path("/proc/self").is_dir():  # a place where no file can be created
        assert_user_error(pf_calibrate(*target, "-o", "/proc/pf-calibrate-qa.yaml"), "-o")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"] and not any((tmp_path / "folder").iterdir())


def test_a_failed_run_keeps_the_previous_calibration(board_folders, tmp_path):
    ir, vis = board_folders
    good = tmp_path / "rig.yaml"
    run = pf_calibrate("--method", "target", "--ir", ir, "--vis", vis, "-o", good, "--overlay", tmp_path / "check.png")
    assert run.returncode == 0, run.stderr
    kept, overlay = good.read_bytes(), (tmp_path / "check.png").read_bytes()
    assert cv2.imread(str(tmp_path / "check.png")).shape == (480, 1280, 3)
    # The same folders with the wrong board: no board found, nothing replaced.
    assert_user_error(pf_calibrate("--method", "target", "--board", "7x5", "--ir", ir, "--vis", vis, "-o", good, "--overlay", tmp_path / "check.png"), "no 7x5 chessboard")
    assert good.read_bytes() == kept and (tmp_path / "check.png").read_bytes() == overlay
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.png", "rig.yaml"]


def test_writers_leave_no_temporary_file_when_the_rename_fails(tmp_path):
    # save_calibration onto a folder left "<name>.tmp" beside it; the overlay was written
    # in place by cv2.imwrite (a Ctrl-C mid-write left half a picture).
    from pf_stream.calibration.overlay import write_overlay
    from pf_stream.calibration.schema import Calibration, save_calibration
    from pf_stream.errors import UserError

    for name in ("rig.yaml", "check.png"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "keep").write_text("x")  # a non-empty folder: the rename must fail
    with pytest.raises(UserError, match="cannot write calibration"):
        save_calibration(Calibration(np.eye(3), (64, 48), (64, 48)), tmp_path / "rig.yaml")
    img = np.random.default_rng(0).integers(0, 255, (48, 64), dtype=np.uint8)
    with pytest.raises(UserError, match="cannot write overlay"):
        write_overlay(tmp_path / "check.png", img, img, np.eye(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.png", "rig.yaml"]
    write_overlay(tmp_path / "ok.png", img, img, np.eye(3))
    assert cv2.imread(str(tmp_path / "ok.png")).shape == (48, 128, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["check.png", "ok.png", "rig.yaml"]


def _scene(size=(320, 240), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full(size[::-1], 90, np.uint8)
    for _ in range(12):
        x, y = (int(v) for v in rng.integers(0, size[0], 2))
        cv2.rectangle(img, (x, y % size[1]), (x + 40, y % size[1] + 30), int(rng.integers(0, 255)), -1)
    return img


def test_tiny_and_damaged_pictures_are_one_line(tmp_path):
    # 2x2 and 8x1 pictures were cv2.error tracebacks (adaptiveThreshold, resize); a JPEG cut
    # short printed libjpeg's "Premature end of JPEG file" beside the error and was read as
    # half a picture padded with gray.
    scene = tmp_path / "scene.png"
    cv2.imwrite(str(scene), _scene())
    cv2.imwrite(str(tmp_path / "2x2.png"), np.array([[0, 255], [255, 0]], np.uint8))
    cv2.imwrite(str(tmp_path / "8x1.png"), np.array([[0, 255] * 4], np.uint8))
    jpeg = cv2.imencode(".jpg", _scene((640, 480), seed=1))[1].tobytes()
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) * 8 // 10])
    (tmp_path / "empty.png").write_bytes(b"")
    for method in ("target", "auto"):
        assert_user_error(pf_calibrate("--method", method, "--ir", tmp_path / "2x2.png", "--vis", scene), "2x2", "too small")
        assert_user_error(pf_calibrate("--method", method, "--ir", scene, "--vis", tmp_path / "8x1.png"), "8x1", "too small")
    for bad in ("cut.jpg", "empty.png"):
        assert_user_error(pf_calibrate("--method", "auto", "--ir", tmp_path / bad, "--vis", scene), bad, "damaged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2x2.png", "8x1.png", "cut.jpg", "empty.png", "scene.png"]


def test_auto_refuses_pictures_of_very_different_shape(tmp_path):
    # IR 4000x16 against VIS 320x240: the IR is 1 px high at the working scale, and
    # cv2.resize failed with a traceback.
    cv2.imwrite(str(tmp_path / "strip.png"), cv2.resize(_scene(), (4000, 16)))
    cv2.imwrite(str(tmp_path / "scene.png"), _scene())
    assert_user_error(pf_calibrate("--method", "auto", "--ir", tmp_path / "strip.png", "--vis", tmp_path / "scene.png", "-o", tmp_path / "rig.yaml"),
                      "differ too much in shape", "--method target")
    assert_user_error(pf_calibrate("--method", "auto", "--ir", tmp_path / "scene.png", "--vis", tmp_path / "strip.png", "-o", tmp_path / "rig.yaml"),
                      "differ too much in shape")
    assert not (tmp_path / "rig.yaml").exists()


def _points_run(tmp_path, name: str, content: bytes, *extra):
    f = tmp_path / name
    f.write_bytes(content)
    out = tmp_path / f"{name}.yaml"
    return pf_calibrate("--method", "points", f, "--ir-size", "640x512", "--vis-size", "640x512", "-o", out, *extra), out


SQUARE = [(0, 0), (600, 0), (600, 500), (0, 500), (300, 200)]  # IR = VIS: the identity


def test_points_csv_with_a_bom_or_semicolons_keeps_every_pair(tmp_path):
    # A UTF-8 BOM (Excel's "CSV UTF-8") made the first pair look like a header: it was
    # dropped without a word.  A ';'-separated file lost its first row the same way and
    # then failed naming line 2.
    from pf_stream.calibration.schema import load_calibration

    rows = "".join(f"{x},{y},{x},{y}\n" for x, y in SQUARE)
    for name, content in (("bom.csv", b"\xef\xbb\xbf" + rows.encode()), ("semi.csv", rows.replace(",", ";").encode()),
                          ("tabs.csv", rows.replace(",", "\t").encode()), ("header_semi.csv", ("ir_x;ir_y;vis_x;vis_y\n" + rows.replace(",", ";")).encode())):
        run, out = _points_run(tmp_path, name, content)
        assert run.returncode == 0, run.stderr
        assert load_calibration(out).details["pairs"] == 5, name
    # A first row with a typo is not a header: it is an error naming line 1.
    run, _ = _points_run(tmp_path, "typo.csv", ("1O,2,3,4\n" + rows).encode())
    assert_user_error(run, "line 1", "1O")


def test_points_that_fold_the_picture_are_refused(tmp_path):
    # Two rows swapped: four pairs fit a homography exactly, one that sends a band of the IR
    # picture to infinity.  It was written with exit 0, and pf-stream loaded it.
    swapped = [(0, 0, 0, 0), (600, 0, 600, 500), (600, 500, 600, 0), (0, 500, 0, 500)]
    run, out = _points_run(tmp_path, "swapped.csv", "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in swapped).encode())
    assert_user_error(run, "infinity", "swapped")
    assert not out.exists()
    # The same transform written by hand is refused by the reader pf-stream uses.
    from pf_stream.calibration.schema import load_calibration
    from pf_stream.errors import UserError

    h = cv2.getPerspectiveTransform(np.float32([r[:2] for r in swapped]), np.float32([r[2:] for r in swapped]))
    (tmp_path / "hand.yaml").write_text(f"homography: {h.tolist()}\nir_size: [640, 512]\nvis_size: [640, 512]\n")
    with pytest.raises(UserError, match="infinity"):
        load_calibration(tmp_path / "hand.yaml")


def test_mixed_inputs_and_folder_pairing_say_what_is_wrong(board_folders, tmp_path):
    ir, vis = board_folders
    # Was "VIS picture synthetic: not found" and "IR picture <folder> not found".
    assert_user_error(pf_calibrate("--method", "auto", "--ir", ir / "pair0.png", "--vis", "synthetic://"), "picture", "live source")
    assert_user_error(pf_calibrate("--method", "auto", "--ir", ir, "--vis", vis / "pair0.png"), "folder", "picture")
    # Pictures without a partner were left out without a word.
    (tmp_path / "ir").mkdir(), (tmp_path / "vis").mkdir()
    for name in ("pair0", "pair1"):
        (tmp_path / "ir" / f"{name}.png").write_bytes((ir / f"{name}.png").read_bytes())
        (tmp_path / "vis" / f"{name}.png").write_bytes((vis / f"{name}.png").read_bytes())
    (tmp_path / "ir" / "lonely.png").write_bytes((ir / "pair2.png").read_bytes())
    run = pf_calibrate("--method", "target", "--ir", tmp_path / "ir", "--vis", tmp_path / "vis", "-o", tmp_path / "rig.yaml")
    assert run.returncode == 0, run.stderr
    assert "no partner" in run.stderr and "IR lonely" in run.stderr
    # Two VIS pictures with one name: which one paired depended on the directory order.
    (tmp_path / "vis" / "pair1.jpg").write_bytes(cv2.imencode(".jpg", cv2.imread(str(vis / "pair2.png")))[1].tobytes())
    assert_user_error(pf_calibrate("--method", "target", "--ir", tmp_path / "ir", "--vis", tmp_path / "vis", "-o", tmp_path / "rig2.yaml"), "pair1.jpg", "pair1.png")


def test_live_source_errors_name_the_camera_and_hide_passwords():
    # Was "rtsp://... source rtsp://...: ..." after a raw "[ WARN:0@0.04] global cap.cpp..." line
    # from OpenCV, with the password of the URL in clear.
    line = assert_user_error(pf_calibrate("--method", "auto", "--ir", "rtsp://user:secret@127.0.0.1:1/x", "--vis", "synthetic://"), "IR source")
    assert "secret" not in line


def test_auto_from_synthetic_sources_feeds_pf_stream(tmp_path):
    """pf-calibrate from two live (synthetic) sources, then pf-stream --calib with the YAML,
    as written and hand-edited to other sizes (pf-stream rescales and says so)."""
    from pf_stream.calibration.geometry import corner_error
    from pf_stream.calibration.schema import load_calibration

    rig = tmp_path / "rig.yaml"
    run = pf_calibrate("--method", "auto", "--ir", "synthetic://?size=320x256", "--vis", "synthetic://?size=320x256", "--interval", "0", "-o", rig)
    assert run.returncode == 0, run.stderr
    cal = load_calibration(rig)
    assert corner_error(cal.homography, np.eye(3), cal.ir_size) < 1.0  # both render one scene, IR and VIS looks
    stream = [sys.executable, "-m", "pf_stream.cli.stream", "--ir", "synthetic://?size=320x256", "--vis", "synthetic://?size=320x256",
              "--frames", "3", "--null", "--model", "classic"]
    done = subprocess.run([*stream, "--calib", rig], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    (tmp_path / "edited.yaml").write_text(rig.read_text().replace("ir_size: [320, 256]", "ir_size: [640, 512]"))
    done = subprocess.run([*stream, "--calib", tmp_path / "edited.yaml"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and "rescaling" in done.stderr, done.stderr


def test_points_rows_and_sizes_that_contradict_are_refused(tmp_path):
    # {ir: [1], vis: [1, 2, 3]} was read as the pair (1, 1) -> (2, 3).
    f = tmp_path / "clicks.yaml"
    f.write_text("points:\n" + "".join(f"  - [{x}, {y}, {x}, {y}]\n" for x, y in SQUARE[:4]) + "  - {ir: [1], vis: [1, 2, 3]}\n")
    assert_user_error(pf_calibrate("--method", "points", f, "--ir-size", "640x512", "--vis-size", "640x512", "-o", tmp_path / "a.yaml"), "points[4]")
    # --ir-size against the --ir picture: the YAML said 320x240, the overlay showed 640x480.
    csv = tmp_path / "clicks.csv"
    csv.write_text("".join(f"{x},{y},{x},{y}\n" for x, y in SQUARE))
    pic = tmp_path / "scene.png"
    cv2.imwrite(str(pic), _scene((640, 480)))
    assert_user_error(pf_calibrate("--method", "points", csv, "--ir", pic, "--vis", pic, "--ir-size", "320x240", "-o", tmp_path / "b.yaml"), "320x240", "640x480")
    assert_user_error(pf_calibrate("--method", "points", tmp_path, "-o", tmp_path / "c.yaml"), "is a folder")
    assert not any(p.suffix == ".yaml" and p.name != "clicks.yaml" for p in tmp_path.iterdir())


def test_auto_refusal_of_an_affine_fit_does_not_advise_affine(tmp_path):
    # The advice was "try ... --model affine" to a run that was --model affine.
    pic = tmp_path / "scene.png"
    cv2.imwrite(str(pic), _scene((320, 240)))
    run = pf_calibrate("--method", "auto", "--model", "affine", "--ir", pic, "--vis", pic, "--max-error", "0.01", "-o", tmp_path / "rig.yaml")
    line = assert_user_error(run, "refused")
    assert "--model affine" not in line and "--method target" in line
