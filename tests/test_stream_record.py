"""Recording and the real ``pf-stream`` command: files checked with a real decoder (PyAV),
clean stops on SIGINT/SIGTERM, and one-line errors for bad input.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from pf_stream.errors import UserError
from pf_stream.frames import FusedFrame
from pf_stream.sinks.record import RecordSink

REPO = Path(__file__).resolve().parents[1]
PF_STREAM = [sys.executable, "-m", "pf_stream.cli.stream"]


def decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def test_record_sink_writes_every_frame_h264_with_real_time(tmp_path):
    path = tmp_path / "sub" / "rec.mp4"
    sink = RecordSink(path)
    sink.open(65, 49, 30)  # odd: cropped to even for 4:2:0
    for i in range(20):
        img = np.full((49, 65, 3), (i * 12) % 256, np.uint8)
        sink.write(FusedFrame(img, timestamp=100.0 + i * 0.05, seq=i))  # 20 fps capture clock
    sink.close()
    sink.close()  # twice is fine
    frames = decode(path)
    assert len(frames) == 20 and frames[0].shape == (48, 64, 3)
    assert abs(int(frames[10][20, 20, 0]) - 120) <= 8  # lossy, but the right frame in the right place
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.codec_context.name == "h264"
        times = [f.time for f in c.decode(stream)]
    assert times[-1] == pytest.approx(0.95, abs=0.01)  # timestamps from the capture clock, not a fixed rate


def test_record_sink_rejects_bad_paths(tmp_path):
    with pytest.raises(UserError, match="ending in .mp4"):
        RecordSink(tmp_path / "x.avi")
    (tmp_path / "d.mp4").mkdir()
    with pytest.raises(UserError, match="is a folder"):
        RecordSink(tmp_path / "d.mp4")


def test_readme_command_headless(tmp_path):
    """The README's first command, with the fast 'classic' model and a small frame."""
    out, stats = tmp_path / "out" / "demo.mp4", tmp_path / "stats.json"
    proc = subprocess.run(PF_STREAM + ["--ir", "synthetic://", "--vis", "synthetic://", "--size", "320x256", "--frames", "30",
                                       "--record", str(out), "--model", "classic", "--display", "--stats-json", str(stats),
                                       "--stats-interval", "0.3"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=_headless_env())
    assert proc.returncode == 0, proc.stderr
    assert "--display is off: no display" in proc.stderr  # a warning, not a crash
    assert " fps | glass-to-glass p50 " in proc.stderr  # the periodic headless stats line
    report = json.loads(stats.read_text())
    record = report["sinks"]["record"]
    assert report["frames"] == 30
    # Live run: an encoder that falls behind skips frames rather than delaying fusion (counted).
    assert record["written"] + record["dropped"] == 30 and record["written"] >= 15
    frames = decode(out)
    assert len(frames) == record["written"] and frames[0].shape == (256, 320, 3)
    assert report["latency_ms"]["p95"] > 0 and report["fps"] > 0


def _headless_env() -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_signal_stops_the_run_and_the_recording_plays_to_its_last_frame(tmp_path, sig, code):
    out, stats = tmp_path / "run.mp4", tmp_path / "stats.json"
    proc = subprocess.Popen(PF_STREAM + ["--ir", "synthetic://?size=160x128", "--vis", "synthetic://?size=160x128",
                                         "--model", "classic", "--record", str(out), "--stats-json", str(stats)],
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=_headless_env())
    try:
        deadline = time.monotonic() + 60
        for line in proc.stderr:  # wait until capture runs, then a little longer
            if "running:" in line or time.monotonic() > deadline:
                break
        time.sleep(1.5)
        proc.send_signal(sig)
        rest = proc.communicate(timeout=30)[1]  # a guard against a hang, not a speed check
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, rest
    assert "Traceback" not in rest
    report = json.loads(stats.read_text())
    written = report["sinks"]["record"]["written"]
    frames = decode(out)
    assert written >= 5 and len(frames) == written  # every frame handed to the recorder is in the file
    assert report["stop_reason"] == f"stopped by {signal.Signals(sig).name}"


def _make_bad_inputs(tmp: Path) -> dict[str, list[str]]:
    import cv2

    (tmp / "ir").mkdir()
    (tmp / "vi").mkdir()
    cv2.imwrite(str(tmp / "ir" / "a.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp / "ir" / "b.png"), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp / "vi" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp / "calib.yaml").write_text("homography: [[1, 0], [0, 1]]\nir_size: [8, 8]\nvis_size: [8, 8]\n")
    (tmp / "weights.safetensors").write_bytes(b"\x00garbage")
    (tmp / "typo.yaml").write_text("fusion:\n  modle: lite\n")
    syn = ["--ir", "synthetic://", "--vis", "synthetic://"]
    return {
        "missing file": ["--ir", str(tmp / "nope.mp4"), "--vis", "synthetic://"],
        "missing folder": ["--ir", str(tmp / "nope"), "--vis", "synthetic://"],
        "unknown scheme": ["--ir", "rtp://x", "--vis", "synthetic://"],
        "no camera": ["--ir", "cam0", "--vis", "synthetic://"],
        "folders do not pair": ["--ir", str(tmp / "ir"), "--vis", str(tmp / "vi")],
        "bad calibration": syn + ["--calib", str(tmp / "calib.yaml")],
        "bad weights": syn + ["--weights", str(tmp / "weights.safetensors")],
        "config typo": syn + ["--config", str(tmp / "typo.yaml")],
        "bad flag value": syn + ["--view", "quadd"],
    }


def test_bad_input_is_one_line_exit_2_no_traceback(tmp_path):
    cases = _make_bad_inputs(tmp_path)
    procs = {name: subprocess.Popen(PF_STREAM + argv + ["--frames", "5"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                                    text=True, cwd=REPO)
             for name, argv in cases.items()}
    errors = {}
    for name, proc in procs.items():
        _out, err = proc.communicate(timeout=120)  # a guard against a hang (they run side by side), not a speed check
        errors[name] = err
        lines = [line for line in err.splitlines() if line.strip()]
        assert proc.returncode == 2, f"{name}: rc {proc.returncode}\n{err}"
        assert len(lines) == 1 and lines[0].startswith("pf-stream: error: "), f"{name}: {err}"
    # The messages say what is wrong.
    assert "did you mean 'fusion.model'" in errors["config typo"]
    assert "only in" in errors["folders do not pair"] and "not found" in errors["missing folder"]
    assert "/dev/video0" in errors["no camera"] and "3x3" in errors["bad calibration"]


def test_corrupt_frames_are_skipped_and_counted_not_fatal(tmp_path):
    import cv2

    for side in ("ir", "vi"):
        (tmp_path / side).mkdir()
        for i in range(6):
            cv2.imwrite(str(tmp_path / side / f"{i}.png"), np.full((32, 40, 3) if side == "vi" else (32, 40), 40 * i, np.uint8))
    (tmp_path / "ir" / "3.png").write_bytes(b"broken")
    stats = tmp_path / "stats.json"
    proc = subprocess.run(PF_STREAM + ["--ir", str(tmp_path / "ir"), "--vis", str(tmp_path / "vi"), "--no-realtime", "--model",
                                       "classic", "--null", "--stats-json", str(stats)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(stats.read_text())
    assert report["corrupt_frames"] == 1 and report["sources"]["ir"]["errors"] == 1
    assert report["fused"] == 5  # the others still fused, each with its own partner
    assert report["dropped_by"]["pairing"] == 1  # the VIS frame whose IR partner was broken
