"""Long-run hygiene, in short: things that happen many times in an hours-long run (a camera
stream dropping and coming back, RTSP viewers coming and going) must not leave threads or
file descriptors behind. The hours-long measurements themselves are in docs/STREAMING.md
("Long runs (soak)"); these tests repeat the event often enough that a per-event leak shows.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from pf_stream.sources import LIVE, LOST, open_source

CYCLES = 6


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _threads() -> int:
    # The OS count: GStreamer's and FFmpeg's native threads are invisible to threading.enumerate().
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Threads:"))


class _Server:
    """A real RTSP server (pf-stream's own RtspSink) fed 96x64 frames at 30 fps, on a fixed port."""

    def __init__(self, port: int = 0):
        from pf_stream.frames import FusedFrame
        from pf_stream.sinks.rtsp import RtspSink
        from pf_stream.sinks.rtsp_url import parse_rtsp_url

        self.sink = RtspSink(parse_rtsp_url(f"rtsp://127.0.0.1:{port}/cam"))
        self.sink.open(96, 64, 30)
        self.port = self.sink.port
        self._feeding = threading.Event()
        self._feeding.set()

        def feed():
            i = 0
            while self._feeding.is_set():
                self.sink.write(FusedFrame(np.full((64, 96, 3), (i * 8) % 256, np.uint8), time.monotonic(), i))
                i += 1
                time.sleep(1 / 30)

        self._thread = threading.Thread(target=feed, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._feeding.clear()
        self._thread.join(2)
        self.sink.close()


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    return predicate()


def _fresh_frame(src, timeout: float = 15.0):
    """Wait for a frame captured after now (the source is really back, not a leftover)."""
    since = time.monotonic()
    deadline = since + timeout
    while time.monotonic() < deadline:
        frame = src.read(timeout=0.5)
        if frame is not None and frame.timestamp > since:
            return frame
    return None


def test_rtsp_source_reconnecting_many_times_leaves_no_threads_or_fds_behind():
    """The classic long-run bug: each reconnect leaks a decoder thread or a socket. The stream's
    server dies and comes back CYCLES times; after the first cycle (which warms up lazily built
    pools), the process must hold the same threads and descriptors after every later one."""
    pytest.importorskip("gi", reason="PyGObject is not installed: no RTSP server to read from")
    server = _Server()
    port = server.port
    src = open_source(f"rtsp://127.0.0.1:{port}/cam?timeout_s=2", role="ir", reconnect_max_s=0.5)
    counts = []
    try:
        with src:
            assert _fresh_frame(src) is not None
            for cycle in range(CYCLES):
                server.close()
                assert _wait(lambda: src.state == LOST, 10), f"cycle {cycle}: the loss was not noticed"
                server = _Server(port)
                assert _wait(lambda: src.stats.reconnects == cycle + 1 and src.state == LIVE, 20), \
                    f"cycle {cycle}: no reconnect (state {src.state}, reconnects {src.stats.reconnects})"
                assert _fresh_frame(src) is not None, f"cycle {cycle}: reconnected but no new frame"
                counts.append((_threads(), _fds()))
    finally:
        server.close()
    assert src.stats.reconnects == CYCLES
    threads, fds = zip(*counts)
    # A leak of one per reconnect would add CYCLES - 1 here; allow a pool thread of slack.
    assert threads[-1] - threads[0] <= 1, f"threads after each reconnect: {threads}"
    assert fds[-1] - fds[0] <= 1, f"file descriptors after each reconnect: {fds}"
