"""The running ``pf-stream`` when things go wrong around it: streams that die, stall or come back.

Each test runs the real command as a subprocess against a real RTSP server (our own RTSP
sink, in this process, fed a test picture), and checks what a user running it for hours
relies on: the exit status, one clear error line, the recording playable to its last frame,
the stats JSON written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pf_stream.frames import FusedFrame

REPO = Path(__file__).resolve().parents[1]
PF_STREAM = [sys.executable, "-m", "pf_stream.cli.stream", "--model", "classic", "--stats-interval", "0"]


class Camera:
    """An RTSP 'camera': our RTSP sink on a free port, fed a moving grey picture at 30 fps."""

    def __init__(self, width: int = 96, height: int = 64) -> None:
        pytest.importorskip("gi", reason="PyGObject is not installed: no RTSP server to stream from")
        from pf_stream.sinks.rtsp import RtspSink
        from pf_stream.sinks.rtsp_url import parse_rtsp_url

        self.sink = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/cam"))
        self.sink.open(width, height, 30)
        self.url = f"rtsp://127.0.0.1:{self.sink.port}/cam"
        self._size = (height, width, 3)
        self._feeding = threading.Event()
        self._feeding.set()
        threading.Thread(target=self._feed, daemon=True).start()

    def _feed(self) -> None:
        i = 0
        while self._feeding.is_set():
            self.sink.write(FusedFrame(np.full(self._size, (i * 8) % 256, np.uint8), time.monotonic(), i))
            i += 1
            time.sleep(1 / 30)

    def close(self) -> None:
        self._feeding.clear()
        self.sink.close()


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    for line in proc.stderr:
        lines.append(line)
        if text in line or time.monotonic() > deadline:
            break
    return lines


def test_a_stream_lost_with_no_reconnect_ends_the_run_exit_1_keeping_the_recording(tmp_path):
    from tests.test_stream_record import decode

    camera = Camera()
    out, stats = tmp_path / "run.mp4", tmp_path / "stats.json"
    proc = subprocess.Popen(PF_STREAM + ["--ir", f"{camera.url}?timeout_s=3", "--vis", "synthetic://?size=96x64",
                                         "--no-reconnect", "--record", str(out), "--stats-json", str(stats),
                                         "--duration", "120"],
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env=_env())
    try:
        seen = _wait_for_line(proc, "running:")
        time.sleep(1.5)
        camera.close()  # the camera goes away for good
        rest = proc.communicate(timeout=60)[1]
    finally:
        camera.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    log = "".join(seen) + rest
    assert proc.returncode == 1, log[-2000:]  # before: NO SIGNAL on that side until --duration, exit 0
    errors = [line for line in log.splitlines() if line.startswith("pf-stream: error:")]
    assert len(errors) == 1 and "ir source" in errors[0] and "--no-reconnect" in errors[0], log[-2000:]
    assert "Traceback" not in log
    report = json.loads(stats.read_text())
    assert report["stop_reason"] == "ir source lost (--no-reconnect)"
    written = report["sinks"]["record"]["written"]
    assert written >= 5 and len(decode(out)) == written  # the recording plays to its last frame
