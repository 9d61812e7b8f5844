"""Real RTSP viewers for the tests — Debian's ffmpeg, OpenCV and PyAV — and the frames they check.

Every client has open and read timeouts, and every wait here is bounded, so a broken
server fails a test instead of hanging CI.  Test frames are deterministic functions of
their sequence number (which is also stamped into them), so a decoded frame can be
compared with exactly the frame that was sent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from pf_stream.bench.rtsp_latency import read_stamp, stamp_frame
from pf_stream.frames import FusedFrame

W, H, FPS = 320, 256, 30.0
OPEN_TIMEOUT_S = 15
READ_TIMEOUT_S = 5


def make_image(seq: int, width: int = W, height: int = H) -> np.ndarray:
    """A coloured, moving test picture (channel order matters: blue left, red right)."""
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    shift = (seq % 60) / 60.0
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = 60 + 160 * (1 - x) * np.ones_like(y)  # blue strongest on the left
    img[..., 1] = 60 + 120 * ((y + shift) % 1.0) * np.ones_like(x)
    img[..., 2] = 60 + 160 * x * np.ones_like(y)  # red strongest on the right
    return stamp_frame(img, seq)


class Feeder:
    """Plays the pipeline: writes frames into a sink at ``fps`` from its own thread."""

    def __init__(self, sink, fps: float = FPS, first_seq: int = 1000) -> None:
        self.sink, self.fps, self.seq = sink, fps, first_seq
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Feeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        t0, n = time.monotonic(), 0
        while not self._stop.is_set():
            self.sink.write(FusedFrame(make_image(self.seq), time.monotonic(), self.seq))
            self.seq += 1
            n += 1
            self._stop.wait(max(0.0, t0 + n / self.fps - time.monotonic()))


@dataclass
class Viewing:
    """What one viewer got: decoded BGR frames, their arrival times, its log and exit status."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    log: str = ""
    returncode: int | None = None
    timed_out: bool = False  # we had to kill it

    @property
    def rate(self) -> float:
        """Frames per second between the first and last arrival."""
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else float("inf")

    def stamps(self) -> list[int]:
        return [read_stamp(f) for f in self.frames]


def ffmpeg_cmd(url: str, frames: int, transport: str = "tcp", io_timeout_s: float = READ_TIMEOUT_S) -> list[str]:
    return [
        "ffmpeg", "-hide_banner", "-nostdin", "-v", "error",
        "-timeout", str(int(io_timeout_s * 1_000_000)),  # RTSP socket I/O timeout, µs
        "-rtsp_transport", transport, "-i", url,
        # Every decoded frame, stamped in the stream's own 90 kHz time base: ffmpeg's default
        # (1/guessed-frame-rate) turns timing jitter under CPU load into muxer complaints.
        "-frames:v", str(frames), "-fps_mode", "passthrough", "-enc_time_base", "-1",
        "-f", "rawvideo", "-pix_fmt", "bgr24", "pipe:1",
    ]


class FfmpegViewer:
    """Debian's ffmpeg as a viewer process, decoding to raw BGR on stdout."""

    def __init__(self, url: str, frames: int, width: int = W, height: int = H, transport: str = "tcp",
                 io_timeout_s: float = READ_TIMEOUT_S) -> None:
        self.result = Viewing()
        self._size = width * height * 3
        self._shape = (height, width, 3)
        self.proc = subprocess.Popen(
            ffmpeg_cmd(url, frames, transport, io_timeout_s), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._err: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._errs = threading.Thread(target=lambda: self._err.append(self.proc.stderr.read()), daemon=True)
        self._reader.start()
        self._errs.start()

    def _read(self) -> None:
        while True:
            data = self.proc.stdout.read(self._size)
            if len(data) < self._size:
                return
            self.result.times.append(time.monotonic())
            self.result.frames.append(np.frombuffer(data, np.uint8).reshape(self._shape))

    def wait_frames(self, n: int, timeout: float = OPEN_TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.result.frames) < n and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.05)
        return len(self.result.frames) >= n

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.finish(5)

    def finish(self, timeout: float = OPEN_TIMEOUT_S + 10) -> Viewing:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.result.timed_out = True
            self.proc.kill()
            self.proc.wait(5)
        self._reader.join(5)
        self._errs.join(5)
        self.result.returncode = self.proc.returncode
        self.result.log = b"".join(self._err).decode(errors="replace")
        return self.result


def read_ffmpeg(url: str, frames: int, **kw) -> Viewing:
    return FfmpegViewer(url, frames, **kw).finish()


def read_opencv(url: str, frames: int) -> Viewing:
    # RTP over TCP: OpenCV reads it from the environment when the capture opens; put the
    # old value back so other tests in this process see what they expect.
    key, old = "OPENCV_FFMPEG_CAPTURE_OPTIONS", os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
    os.environ[key] = "rtsp_transport;tcp"
    try:
        cap = cv2.VideoCapture(
            url, cv2.CAP_FFMPEG,
            [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_S * 1000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_S * 1000],
        )
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
    result = Viewing()
    try:
        if not cap.isOpened():
            result.log = "OpenCV could not open the stream"
            return result
        while len(result.frames) < frames:
            ok, frame = cap.read()
            if not ok:
                result.log = "OpenCV read failed"
                break
            result.times.append(time.monotonic())
            result.frames.append(frame)
    finally:
        cap.release()
    return result


def read_pyav(url: str, frames: int) -> Viewing:
    import av

    result = Viewing()
    container = av.open(
        url, options={"rtsp_transport": "tcp", "timeout": str(READ_TIMEOUT_S * 1_000_000)},
        timeout=(OPEN_TIMEOUT_S, READ_TIMEOUT_S),
    )
    try:
        for frame in container.decode(video=0):
            result.times.append(time.monotonic())
            result.frames.append(frame.to_ndarray(format="bgr24"))
            if len(result.frames) >= frames:
                break
    finally:
        container.close()
    return result


def live_frames(view: Viewing) -> list[tuple[int, np.ndarray]]:
    """(seq, frame) for decoded frames whose stamp is a frame the Feeder sent."""
    return [(s, f) for s, f in zip(view.stamps(), view.frames) if s >= 1000]


def check_viewing(view: Viewing, n: int, width: int = W, height: int = H, fps: float = FPS) -> None:
    """The common checks: n frames of the right size, arriving at ≥ 80 % of the source rate,
    carrying increasing stamps, each matching the picture that was sent."""
    assert len(view.frames) >= n, f"got {len(view.frames)} of {n} frames; log: {view.log[-800:]}"
    assert all(f.shape == (height, width, 3) for f in view.frames), {f.shape for f in view.frames}
    assert view.rate >= 0.8 * fps, f"frames arrived at {view.rate:.1f} fps, source {fps}"
    live = live_frames(view)
    assert len(live) >= n // 2, f"only {len(live)} frames carry a valid stamp: {view.stamps()[:20]}"
    seqs = [s for s, _ in live]
    assert seqs == sorted(seqs) and len(set(seqs)) >= n // 2, seqs
    for seq, frame in live[:: max(1, len(live) // 8)]:
        sent = make_image(seq, width, height)
        err = np.abs(frame.astype(np.int16) - sent.astype(np.int16)).mean()
        assert err < 8, f"frame {seq} differs from what was sent by {err:.1f} grey levels on average"
