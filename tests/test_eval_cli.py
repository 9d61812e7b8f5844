"""pf-eval end to end: pair discovery, fusing, scoring, saving, JSON, flicker, and one-line errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from pf_stream.errors import UserError
from pf_stream.quality.evaluate import evaluate, quantise
from pf_stream.quality.flicker import find_sequences, measure_flicker, sequence_frames
from pf_stream.quality.fusers import Fuser, make_fuser
from pf_stream.quality.metrics import METRIC_NAMES, score_all, to_gray8
from pf_stream.quality.pairs import discover_pairs, read_name_list

REPO = Path(__file__).resolve().parents[1]


def smooth(rng: np.random.Generator, shape, channels: int = 1) -> np.ndarray:
    noise = rng.normal(128, 60, shape if channels == 1 else (*shape, channels)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 256, 0, 255).round().astype(np.uint8)


def make_pairs(root: Path, names, shape=(48, 64), colour_vis: bool = True, seed: int = 0) -> Path:
    """A tiny data folder in the shared-data layout: gray IR, colour (or gray) VIS PNGs."""
    rng = np.random.default_rng(seed)
    (root / "ir").mkdir(parents=True, exist_ok=True)
    (root / "vi").mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(root / "ir" / f"{name}.png"), smooth(rng, shape))
        cv2.imwrite(str(root / "vi" / f"{name}.png"), smooth(rng, shape, 3 if colour_vis else 1))
    return root


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pf_stream.cli.eval", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def gray8(path: Path) -> np.ndarray:
    return to_gray8(cv2.imread(str(path), cv2.IMREAD_COLOR))


# --- discovery -------------------------------------------------------------------------


def test_discover_pairs_matches_stems_across_extensions(tmp_path):
    data = make_pairs(tmp_path / "d", ["b", "a"])
    (data / "vi" / "b.png").rename(data / "vi" / "b.jpg")  # same stem, other format: still a pair
    (data / "ir" / "notes.txt").write_text("not an image")
    pairs = discover_pairs(data)
    assert [p.name for p in pairs] == ["a", "b"]
    assert pairs[1].vis.name == "b.jpg"


def test_name_list_takes_stems_with_or_without_extension(tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text("# test split\nb.png\n\na  \nb\n")
    assert read_name_list(listing) == ["b", "a"]
    data = make_pairs(tmp_path / "d", ["a", "b", "c"])
    assert [p.name for p in discover_pairs(data, listing)] == ["b", "a"]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: None, "is not a folder"),
        (lambda d: (d / "ir").mkdir(parents=True), "no vi/ subfolder"),
        (lambda d: [(d / s).mkdir(parents=True) for s in ("ir", "vi")], "hold no images"),
        (lambda d: (make_pairs(d, ["a", "b"]), (d / "vi" / "b.png").rename(d / "vi" / "c.png")), "unmatched pair names"),
    ],
    ids=["missing", "no-vi", "empty", "unmatched"],
)
def test_discover_pairs_bad_folders(tmp_path, setup, message):
    data = tmp_path / "d"
    setup(data)
    with pytest.raises(UserError, match=message):
        discover_pairs(data)


# --- the CLI on a small synthetic set --------------------------------------------------


def test_cli_max_scores_saves_and_writes_json(tmp_path):
    data = make_pairs(tmp_path / "d", ["p1", "p2", "p3"])
    out, report = tmp_path / "fused", tmp_path / "r" / "report.json"
    proc = run_cli("--data", str(data), "--method", "max", "--save-dir", str(out), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["image", *METRIC_NAMES]
    assert [line.split()[0] for line in lines[1:4]] == ["p1", "p2", "p3"]
    assert any(line.startswith("mean") for line in lines)

    payload = json.loads(report.read_text())
    assert payload["count"] == 3 and payload["fuser"]["method"] == "max"
    for metric in METRIC_NAMES:
        assert payload["mean"][metric] == pytest.approx(np.mean([row[metric] for row in payload["images"]]))
    for row in payload["images"]:
        ir, vis = gray8(data / "ir" / f"{row['name']}.png"), gray8(data / "vi" / f"{row['name']}.png")
        saved = cv2.imread(str(out / f"{row['name']}.png"), cv2.IMREAD_UNCHANGED)
        assert saved.dtype == np.uint8 and saved.ndim == 2  # gray by default: exactly the image scored
        assert np.array_equal(saved, np.maximum(ir, vis))
        assert row["MI"] == pytest.approx(score_all(saved, ir, vis).MI)


def test_cli_save_colour_restores_vis_chroma(tmp_path):
    data = make_pairs(tmp_path / "d", ["p1"])
    out = tmp_path / "fused"
    proc = run_cli("--data", str(data), "--method", "average", "--save-dir", str(out), "--save-colour")
    assert proc.returncode == 0, proc.stderr
    saved = cv2.imread(str(out / "p1.png"), cv2.IMREAD_UNCHANGED)
    assert saved.ndim == 3
    vis = cv2.imread(str(data / "vi" / "p1.png"), cv2.IMREAD_COLOR)
    fused_y = quantise((gray8(data / "ir" / "p1.png") / 255.0 + gray8(data / "vi" / "p1.png") / 255.0) / 2)
    y = cv2.cvtColor(saved, cv2.COLOR_BGR2YCrCb)[:, :, 0].astype(int)
    assert np.abs(y - fused_y).mean() < 1.5  # YCrCb -> BGR -> YCrCb rounding and clipping only
    chroma_in = cv2.cvtColor(vis, cv2.COLOR_BGR2YCrCb)[:, :, 1:].astype(int)
    assert np.abs(cv2.cvtColor(saved, cv2.COLOR_BGR2YCrCb)[:, :, 1:].astype(int) - chroma_in).mean() < 3


def _broken_setups(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good = make_pairs(tmp_path / "good", ["a", "b"])
    empty = tmp_path / "empty"
    (empty / "ir").mkdir(parents=True)
    (empty / "vi").mkdir()
    unmatched = make_pairs(tmp_path / "unmatched", ["a", "b"])
    (unmatched / "vi" / "b.png").rename(unmatched / "vi" / "x.png")
    listing = tmp_path / "list.txt"
    listing.write_text("a\nzzz\n")
    return {
        "missing folder": (["--data", str(tmp_path / "nope"), "--method", "max"], "is not a folder"),
        "empty folder": (["--data", str(empty), "--method", "max"], "hold no images"),
        "unmatched names": (["--data", str(unmatched), "--method", "max"], "unmatched pair names"),
        "unknown list name": (["--data", str(good), "--list", str(listing), "--method", "max"], "zzz"),
        "unknown method": (["--data", str(good), "--method", "maxx"], "did you mean 'max'"),
        "unknown model": (["--data", str(good), "--model", "lyte"], "did you mean 'lite'"),
        "no input": (["--method", "max"], "one of the arguments --data --sequence is required"),
        "weights with method": (["--data", str(good), "--method", "max", "--weights", "w.safetensors"], "--weights goes with --model"),
        "save over inputs": (["--data", str(good), "--method", "max", "--save-dir", str(good / "vi")], "would write over the inputs"),
        "sequence without pairs": (["--sequence", str(empty.parent / "good" / "ir"), "--method", "max"], "no sequence found"),
    }


def test_cli_bad_input_is_one_line_exit_2(tmp_path):
    for label, (args, message) in _broken_setups(tmp_path).items():
        proc = run_cli(*args)
        assert proc.returncode == 2, (label, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("pf-eval: error:"), (label, proc.stderr)
        assert message in lines[0], (label, lines[0])
        assert "Traceback" not in proc.stderr


# --- models through the registry -------------------------------------------------------


def test_classic_goes_through_the_model_registry(tmp_path):
    data = make_pairs(tmp_path / "d", ["a", "b"], shape=(64, 96), colour_vis=False)
    fuser = make_fuser(method="classic")
    try:
        report = evaluate(discover_pairs(data), fuser)
    finally:
        fuser.close()
    assert fuser.details["model"] == "classic" and fuser.label.startswith("model classic")
    assert report.to_json()["count"] == 2
    assert all(math.isfinite(v) for v in report.means().values())
    # classic is neither of the pixel baselines
    average = evaluate(discover_pairs(data), make_fuser(method="average"))
    assert report.means()["SF"] != pytest.approx(average.means()["SF"])


# --- flicker ---------------------------------------------------------------------------


def make_sequence(root: Path, frames: int = 6, shape=(40, 56)) -> Path:
    """Two cameras watching the same pattern drift right one pixel per frame."""
    rng = np.random.default_rng(3)
    wide_ir, wide_vis = smooth(rng, (shape[0], shape[1] + frames)), smooth(rng, (shape[0], shape[1] + frames))
    for sub in ("ir", "vi"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for t in range(frames):
        cv2.imwrite(str(root / "ir" / f"{t:04d}.png"), wide_ir[:, t : t + shape[1]])
        cv2.imwrite(str(root / "vi" / f"{t:04d}.png"), wide_vis[:, t : t + shape[1]])
    return root


def test_flicker_baselines_stay_within_the_inputs_and_noise_exceeds_them(tmp_path):
    seq = make_sequence(tmp_path / "clip")
    for method in ("average", "max"):
        result = measure_flicker("clip", sequence_frames(seq), make_fuser(method=method))
        assert result.frames == 6 and result.input_change > 0
        assert result.ratio <= 1.0 + 1e-3, method  # 1-Lipschitz in the larger input change, up to rounding

    rng = np.random.default_rng(0)
    noisy = Fuser("noisy average", lambda ir, vis: (ir + vis) / 2 + rng.normal(0, 0.05, ir.shape).astype(np.float32))
    assert measure_flicker("clip", sequence_frames(seq), noisy).ratio > 1.2


def test_flicker_reads_paired_videos(tmp_path):
    seq = tmp_path / "video"
    seq.mkdir()
    rng = np.random.default_rng(4)
    writers = {n: cv2.VideoWriter(str(seq / n), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48)) for n in ("ir.mp4", "vi.mp4")}
    base = {n: smooth(rng, (48, 80), 3) for n in writers}
    for t in range(5):
        for name, writer in writers.items():
            writer.write(np.ascontiguousarray(base[name][:, t * 2 : t * 2 + 64]))
    for writer in writers.values():
        writer.release()
    assert find_sequences(tmp_path) == [seq]
    frames = list(sequence_frames(seq, max_frames=4))
    assert len(frames) == 4 and frames[0][0].shape == (48, 64) and frames[0][0].dtype == np.uint8
    assert measure_flicker("video", iter(frames), make_fuser(method="max")).ratio <= 1.0 + 1e-3


def test_cli_sequence_json(tmp_path):
    make_sequence(tmp_path / "seqs" / "one")
    make_sequence(tmp_path / "seqs" / "two", frames=3)
    report = tmp_path / "flicker.json"
    proc = run_cli("--sequence", str(tmp_path / "seqs"), "--method", "average", "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(report.read_text())
    assert [s["name"] for s in payload["sequences"]] == ["one", "two"]
    assert [s["frames"] for s in payload["sequences"]] == [6, 3]
    assert payload["mean_ratio"] == pytest.approx(np.mean([s["ratio"] for s in payload["sequences"]]))


# --- real data -------------------------------------------------------------------------


def test_tno_max_baseline_reproduces_the_protocol_calibration(shared_data):
    """Pixel-wise max on TNO-25 scores MI ~ 4.7 and VIF ~ 0.92 with the field's evaluator."""
    report = evaluate(discover_pairs(shared_data / "tno"), make_fuser(method="max"))
    means = report.means()
    assert len(report.images) == 25
    assert means["MI"] == pytest.approx(4.7, abs=0.05)
    assert means["VIF"] == pytest.approx(0.92, abs=0.02)


def test_roadscene_test_list_and_colour_pairs(shared_data, tmp_path):
    rs = shared_data / "roadscene"
    pairs = discover_pairs(rs, rs / "cddfuse_test50.txt")
    assert len(pairs) == 50
    listing = tmp_path / "two.txt"
    listing.write_text("\n".join(p.name for p in pairs[:2]) + "\n")
    report_path = tmp_path / "rs.json"
    proc = run_cli("--data", str(rs), "--list", str(listing), "--method", "average", "--json", str(report_path))
    assert proc.returncode == 0, proc.stderr
    payload = json.loads(report_path.read_text())
    assert [r["name"] for r in payload["images"]] == [p.name for p in pairs[:2]]
    assert all(0 < r["SSIM"] < 2 and 0 < r["MI"] < 8 for r in payload["images"])


def test_real_clip_flicker(shared_data):
    clip = shared_data / "sequences" / "m3svd_clips" / "0111_1716"
    result = measure_flicker(clip.name, sequence_frames(clip, max_frames=4), make_fuser(method="max"))
    assert result.frames == 4 and result.input_change > 0
    assert 0 < result.ratio <= 1.0 + 1e-3
