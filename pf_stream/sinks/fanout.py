"""One output stream, many sinks: each sink in its own thread with a latest-frame handoff.

The fusion loop calls :meth:`Fanout.put` and (live runs) returns at once.  Each sink's thread takes
the newest frame it has not written yet; if the sink is slower than the stream, the
frame it had not started on is replaced (and counted as dropped).  A slow encoder or a
stalled display therefore costs frames on that sink only, never fusion speed or the
other sinks' frames.

On close every sink first writes the frame it was handed last (nothing queued is lost on
Ctrl-C), then is closed in its own thread (a recording is finalised there), and joined.
A sink that raises is reported once and switched off; the others go on.
"""

from __future__ import annotations

import logging
import threading
import time

from pf_stream.frames import FusedFrame
from pf_stream.sinks.base import Sink
from pf_stream.stats import PipelineStats

log = logging.getLogger("pf_stream.sinks")


class _SinkWorker:
    def __init__(self, sink: Sink, stats: PipelineStats | None):
        self.sink = sink
        self.stats = stats
        self.written = 0
        self.dropped = 0
        self.failed: str | None = None
        self._frame: FusedFrame | None = None
        self._closing = False
        self.interrupted = False  # stop waiting in a lossless put (the run is being stopped)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, frame: FusedFrame, wait: bool = False) -> None:
        with self._cond:
            if wait:  # lossless: wait until the sink has taken the previous frame
                self._cond.wait_for(lambda: self._frame is None or self.failed is not None or self._closing or self.interrupted)
            if self.failed:
                return
            if self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._frame is not None or self._closing)
                    frame, self._frame = self._frame, None
                    self._cond.notify_all()  # a lossless put() may be waiting for the slot
                if frame is None:  # closing and nothing left
                    break
                t0 = time.monotonic()
                try:
                    self.sink.write(frame)
                except Exception as exc:  # a full disk, a dead display: this sink stops, the run goes on
                    with self._cond:
                        self.failed = f"{type(exc).__name__}: {exc}"
                        self._cond.notify_all()
                    log.error("output %s failed and is switched off: %s", self.sink.name, self.failed)
                    break
                self.written += 1
                if self.stats is not None:
                    self.stats.written(frame.timestamp, time.monotonic() - t0)
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                log.error("output %s did not close cleanly: %s", self.sink.name, exc)

    def close(self, timeout: float) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        elif not self._thread.ident:  # never started: close here
            self.sink.close()
        if self._thread.is_alive():
            log.warning("output %s did not finish within %.1f s", self.sink.name, timeout)

    def as_dict(self) -> dict:
        return {"written": self.written, "dropped": self.dropped, "failed": self.failed}


class Fanout:
    """``lossless=True`` (offline runs over files, ``--no-realtime``): ``put`` waits for the
    slowest sink instead of dropping, so a recording gets every frame."""

    def __init__(self, sinks: list[Sink], stats: PipelineStats | None = None, lossless: bool = False):
        self.sinks = list(sinks)
        self.stats = stats
        self.lossless = lossless
        self._workers = [_SinkWorker(s, stats) for s in self.sinks]
        self._opened = False

    def open(self, width: int, height: int, fps: float) -> None:
        """Open every sink (here, so a failure is an error before capture starts), then start their threads."""
        for worker in self._workers:
            worker.sink.open(width, height, fps)
        for worker in self._workers:
            worker.start()
        self._opened = True

    def put(self, frame: FusedFrame) -> None:
        for worker in self._workers:
            worker.put(frame, wait=self.lossless)

    def interrupt(self) -> None:
        """Release a lossless ``put`` that waits for a slow sink (called when the run is stopped)."""
        for worker in self._workers:
            with worker._cond:
                worker.interrupted = True
                worker._cond.notify_all()

    def close(self, timeout: float = 1.5) -> None:
        """Drain (each sink writes its last frame), close and join every sink within ``timeout`` overall."""
        deadline = time.monotonic() + timeout
        for worker in self._workers:
            with worker._cond:
                worker._closing = True
                worker._cond.notify()
        for worker in self._workers:
            worker.close(max(0.05, deadline - time.monotonic()))

    def as_dict(self) -> dict:
        return {w.sink.name: w.as_dict() for w in self._workers}

    @property
    def all_failed(self) -> bool:
        return bool(self._workers) and all(w.failed for w in self._workers)
