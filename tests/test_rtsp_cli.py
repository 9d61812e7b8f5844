"""End to end through the real command: ``pf-stream --ir synthetic:// --vis synthetic:// --rtsp ...``.

pf-stream runs as a subprocess with synthetic sources and the classic (fast) fusion model;
real viewers (Debian's ffmpeg/ffprobe, OpenCV, PyAV) watch it.  The module's server uses
basic auth, as a deployment on a network would; bad input is checked for one line and
exit code 2 before any capture starts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.rtsp_clients import FfmpegViewer, Viewing, read_ffmpeg, read_opencv, read_pyav

REPO = Path(__file__).resolve().parents[1]
W, H, FPS, N = 320, 256, 30.0, 60
USER, PASSWORD = "viewer", "pf-test-Secret-7"
SERVING = re.compile(r"rtsp: serving rtsp://127\.0\.0\.1:(\d+)/fused")


class PfStream:
    """pf-stream as a subprocess; its stderr is collected line by line."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        cmd = [sys.executable, "-m", "pf_stream.cli.stream", "--ir", "synthetic://", "--vis", "synthetic://",
               "--size", f"{W}x{H}", "--fps", str(int(FPS)), "--model", "classic", "--stats-interval", "0",
               "--duration", "120", *args]
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: re.Pattern, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if m := pattern.search(line):
                    return m
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"pf-stream never logged {pattern.pattern!r}; its log:\n" + "\n".join(self.lines[-30:]))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(5)
            raise AssertionError("pf-stream did not stop within %d s of %s" % (timeout, signal.Signals(sig).name))
        finally:
            self._reader.join(5)
        return code


def _with_auth(url: str, user: str = USER, password: str = PASSWORD) -> str:
    return url.replace("rtsp://", f"rtsp://{user}:{password}@", 1)


@pytest.fixture(scope="module")
def served():
    run = PfStream("--rtsp", "rtsp://127.0.0.1:0/fused", "--rtsp-user", USER,
                   env={"PF_STREAM_RTSP_PASSWORD": PASSWORD})
    try:
        port = int(run.wait_for(SERVING).group(1))
        run.wait_for(re.compile(r"running: "))
        yield run, f"rtsp://127.0.0.1:{port}/fused"
    finally:
        run.stop()
    assert not any(PASSWORD in line for line in run.lines), "the RTSP password appeared in pf-stream's log"


def _check(view: Viewing, n: int = N) -> None:
    """n fused frames of the right size, at ≥ 80 % of the source rate, showing a real picture."""
    assert len(view.frames) >= n, f"got {len(view.frames)} of {n} frames; log: {view.log[-800:]}"
    assert all(f.shape == (H, W, 3) for f in view.frames), {f.shape for f in view.frames}
    assert view.rate >= 0.8 * FPS, f"frames arrived at {view.rate:.1f} fps, source {FPS}"
    last = view.frames[-1]
    assert last.std() > 5, "the last frame is flat: no fused picture"


def test_ffprobe_sees_h264_at_the_fused_size(served):
    _, url = served
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-timeout", "5000000", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height", "-of", "json", _with_auth(url)],
        capture_output=True, text=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    stream = json.loads(out.stdout)["streams"][0]
    assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", W, H)


def test_ffmpeg_opencv_and_pyav_read_the_fused_stream(served):
    _, url = served
    view = read_ffmpeg(_with_auth(url), N)
    assert view.returncode == 0 and view.log.strip() == "", f"ffmpeg reported errors:\n{view.log}"
    _check(view)
    _check(read_opencv(_with_auth(url), N))
    _check(read_pyav(_with_auth(url), N))


def test_two_viewers_at_once_then_one_killed_and_a_new_one(served):
    run, url = served
    a = FfmpegViewer(_with_auth(url), N, W, H, transport="udp")
    b = FfmpegViewer(_with_auth(url), 10_000, W, H, transport="tcp")
    view_a = a.finish()
    assert view_a.returncode == 0 and view_a.log.strip() == "", view_a.log
    _check(view_a)
    assert b.wait_frames(N)
    b.kill()  # SIGKILL: no TEARDOWN, the connection just drops
    late = read_ffmpeg(_with_auth(url), N)
    assert late.returncode == 0 and late.log.strip() == "", late.log
    _check(late)
    assert run.proc.poll() is None, "pf-stream died"


def test_wrong_or_missing_password_is_rejected(served):
    _, url = served
    for bad in (_with_auth(url, password="wrong"), _with_auth(url, user="intruder"), url):
        view = read_ffmpeg(bad, 5)
        assert view.returncode != 0 and "401" in view.log, (bad, view.log)
        assert not view.frames


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


# A viewer sometimes reports one undecodable access unit (these three lines, 2 of about 20
# runs on the 2-core CPU dev machine) and still exits 0: most likely the stop cutting the unit
# in flight (or, over UDP, a packet lost under load).  More than one is a broken stream.
# Mid-stream cleanliness is asserted strictly in test_rtsp_stream.py.
CUT_LAST_UNIT = ("missing picture in access unit", "no frame!", "Error while decoding stream")


def _clean_after_stop(log: str) -> bool:
    lines = [ln for ln in log.splitlines() if ln.strip()]
    return len(lines) <= len(CUT_LAST_UNIT) and all(any(p in ln for p in CUT_LAST_UNIT) for ln in lines)


def test_viewer_before_the_first_frame_and_a_clean_stop_with_viewers_attached():
    port = _free_port()
    run = PfStream("--rtsp", f"rtsp://127.0.0.1:{port}/fused")
    viewers = []
    try:
        deadline = time.monotonic() + 60
        while not _listening(port):  # bound before the model loads and capture starts
            assert run.proc.poll() is None and time.monotonic() < deadline, "\n".join(run.lines)
            time.sleep(0.02)
        # Its DESCRIBE is answered once pf-stream knows the picture size (after the model
        # loads), so this viewer gets a longer I/O timeout than the others.
        early = FfmpegViewer(f"rtsp://127.0.0.1:{port}/fused", 10_000, W, H, io_timeout_s=40)
        viewers.append(early)
        assert early.wait_frames(N, timeout=60), early.finish().log
        viewers.append(FfmpegViewer(f"rtsp://127.0.0.1:{port}/fused", 10_000, W, H, transport="udp"))
        assert viewers[1].wait_frames(10)
    finally:
        code = run.stop(signal.SIGTERM)
    assert code == 0, "\n".join(run.lines[-20:])
    log = "\n".join(run.lines)
    waiting = log.find("rtsp: a viewer is waiting for the first picture")
    assert 0 <= waiting < log.find("running: "), "the viewer did not connect before capture started:\n" + log
    assert "rtsp: stopped" in log
    for viewer in viewers:
        view = viewer.finish(timeout=15)
        assert not view.timed_out, "a viewer kept waiting after pf-stream stopped"
        assert view.returncode == 0 and _clean_after_stop(view.log), view.log  # a clean end of stream
        _check(view, 10)
    assert not _listening(port)


# ---- bad input: one line, exit code 2, nothing captured ---------------------------------


def _bad(args: list[str], env: dict | None = None, pre: str = "") -> str:
    argv = ["--ir", "synthetic://", "--vis", "synthetic://", "--duration", "5", *args]
    out = subprocess.run([sys.executable, "-c", f"{pre}from pf_stream.cli.stream import main; main({argv!r})"],
                         cwd=REPO, capture_output=True, text=True, timeout=60, env=env)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stderr
    assert len(lines) == 1 and lines[0].startswith("pf-stream: error: "), out.stderr
    assert "Traceback" not in out.stderr and "opened" not in out.stderr
    return lines[0]


def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _bad(["--rtsp", f"rtsp://127.0.0.1:{port}/fused"])
    assert f"127.0.0.1:{port}" in line and "another port" in line


@pytest.mark.parametrize("url, says", [("rtsp://127.0.0.1:8554", "needs a path"),
                                       ("rtp://127.0.0.1:8554/x", "must start with rtsp://"),
                                       ("rtsp://127.0.0.1:70000/x", "0..65535")])
def test_malformed_url(url, says):
    assert says in _bad(["--rtsp", url])


def test_missing_encoder_says_what_to_install():
    from pf_stream.sinks.gst_encoders import ENCODERS, load_gstreamer, try_encoder

    gst = load_gstreamer()
    missing = next((k for k in ("nvv4l2", "nvenc") if try_encoder(gst, k) is not None), None)
    if missing is None:
        pytest.skip("both hardware encoders work on this machine: nothing missing to test")
    line = _bad(["--rtsp", "rtsp://127.0.0.1:0/fused", "--encoder", missing])
    assert ENCODERS[missing].install in line


def test_missing_gstreamer_says_what_to_install():
    # As on a machine without PyGObject: importing gi fails.
    line = _bad(["--rtsp", "rtsp://127.0.0.1:0/fused"], pre="import sys; sys.modules['gi'] = None; ")
    assert "needs GStreamer" in line and "gir1.2-gst-rtsp-server-1.0" in line and "PyGObject" in line


def test_user_without_password_variable():
    env = {k: v for k, v in os.environ.items() if k != "PF_STREAM_RTSP_PASSWORD"}
    line = _bad(["--rtsp", "rtsp://127.0.0.1:0/fused", "--rtsp-user", "viewer"], env=env)
    assert "PF_STREAM_RTSP_PASSWORD" in line
