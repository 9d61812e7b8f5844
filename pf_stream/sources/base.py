"""The Source interface and the capture thread every source shares.

A concrete source only says how to open, read one image and close (``_open``,
``_read``, ``_close``).  This base class does the rest, the same way for every kind:

* one capture thread per source, so a slow camera never blocks the other one;
* a *latest-frame slot*: a new frame replaces an unread one (counted as dropped), so the
  fusion loop always gets the newest picture and never a backlog, and ``read`` returns
  each frame at most once;
* a FIFO instead of the slot for replayable sources (files, folders, synthetic) when
  ``realtime=False``: every frame arrives, in order, as fast as it is consumed;
* pacing: replayable sources are played at their frame rate, like a camera would;
* reconnect with exponential backoff when a live source is lost (camera unplugged,
  RTSP server gone), while the pipeline keeps running and shows NO SIGNAL;
* corrupt frames (``FrameSkipped``) are skipped and counted, never fatal.

Use it as ``with open_source(uri) as src: frame = src.read(timeout=1.0)``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from pf_stream.errors import UserError
from pf_stream.frames import Frame
from pf_stream.pace import Pace

log = logging.getLogger("pf_stream.sources")


class SourceLost(Exception):
    """The device/stream cannot be opened or stopped delivering (the base class reconnects)."""


class FrameSkipped(Exception):
    """One frame could not be read or decoded; it is skipped and counted in ``stats.errors``."""


@dataclass
class SourceStats:
    captured: int = 0  # frames read from the device/file
    dropped: int = 0  # frames replaced in the latest-frame slot before anyone read them
    errors: int = 0  # unreadable/corrupt frames skipped
    reconnects: int = 0  # successful reopenings after a loss

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


# States reported by Source.state
LIVE, LOST, EOS = "live", "lost", "eos"


class Source(ABC):
    """One capture device, stream, file, folder or generator, read on its own thread."""

    #: a live source (camera, network stream) cannot be replayed: no FIFO, no pacing
    live: bool = True
    #: options that may be given in the URI query string (``?size=640x512&fps=30``)
    query_options: tuple[str, ...] = ()

    def __init__(self, uri: str, *, role: str = "", realtime: bool = True, reconnect: bool = True,
                 reconnect_max_s: float = 5.0, fifo_depth: int = 8):
        self.uri = uri
        self.name = role or uri  # used in log lines: "ir", "vis"
        self.stats = SourceStats()
        self.fifo = (not realtime) and not self.live
        self.reconnect = reconnect and self.live
        self.reconnect_max_s = reconnect_max_s
        self.frame_size: tuple[int, int] | None = None  # (width, height), known after open()
        self._state = LIVE
        self._opened = False
        self._first: np.ndarray | None = None  # frame read by open() to learn the size
        self._seq = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listeners: list[threading.Event] = []
        self._cond = threading.Condition()
        self._latest: Frame | None = None
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=fifo_depth)
        self._finished = False  # the capture thread ended (EOS, or lost without reconnect)
        self.last_frame_at = time.monotonic()  # when the newest frame was captured (for NO SIGNAL)
        self._pace = Pace()  # gaps between recent frames, for typical_interval_s: a 0.5 fps camera is slow, not lost

    # ------------------------------------------------------------ what subclasses implement

    @abstractmethod
    def _open(self) -> None:
        """Open the device/file; raise SourceLost with a user-readable reason if it cannot."""

    @abstractmethod
    def _read(self) -> np.ndarray | None:
        """Return the next image, None at the end of a finite stream; raise SourceLost or FrameSkipped."""

    def _close(self) -> None:
        """Release the device/file (also after a failed open)."""

    def _rewind(self) -> bool:
        """Start a finite stream again (for loop=True); return False if it cannot."""
        return False

    @property
    def period_s(self) -> float | None:
        """Seconds between frames when this source is paced (replayable sources), else None."""
        return None

    @property
    def typical_interval_s(self) -> float | None:
        """This source's usual time between frames: measured over its last few frames (the
        lower median, so one long stall does not count as the usual pace), before that its
        declared pace (``period_s``), else None (a live source before its second frame)."""
        return self._pace.typical_s if self._pace.typical_s is not None else self.period_s

    # ------------------------------------------------------------ public interface

    def open(self) -> None:
        """Open now and read one frame (to learn the size); a failure is a one-line UserError."""
        if self._opened:
            return
        try:
            self._open()
            self._first = self._read_first()
        except SourceLost as exc:
            self._close_quietly()
            raise UserError(f"{self.name} source {redact_uri(self.uri)}: {exc}") from None
        self._opened = True
        if self.live:  # dropped as stale, but it did arrive: the first published frame gives an interval
            self._pace.note(time.monotonic())
        h, w = self._first.shape[:2]
        self.frame_size = (w, h)
        log.info("%s: %s opened, %dx%d %s", self.name, redact_uri(self.uri), w, h, _describe_dtype(self._first))

    def start(self) -> Source:
        """Open (if not yet) and start the capture thread."""
        self.open()
        if self._thread is None:
            self.last_frame_at = time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"capture-{self.name}", daemon=True)
            self._thread.start()
        return self

    def read(self, timeout: float = 1.0) -> Frame | None:
        """The newest frame not yet returned (every frame in FIFO mode), or None after ``timeout``."""
        if self.fifo:
            try:
                return self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                return None
        with self._cond:
            if self._latest is None and timeout > 0:
                self._cond.wait_for(lambda: self._latest is not None or self._finished, timeout)
            frame, self._latest = self._latest, None
            return frame

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the capture thread and release the device; safe to call twice."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                # A driver call that ignores its timeout: the thread is a daemon and cannot
                # keep the process alive; closing under it could crash, so leave it.
                log.warning("%s: capture thread did not stop within %.1f s", self.name, timeout)
                return
        self._close_quietly()

    def notify_on_frame(self, event: threading.Event) -> None:
        """Set ``event`` whenever a new frame arrives (lets one loop wait on several sources)."""
        self._listeners.append(event)

    @property
    def state(self) -> str:
        """'live', 'lost' (reconnecting) or 'eos' (ended, nothing left to read)."""
        if self._state == EOS and (self._latest is not None or not self._queue.empty()):
            return LIVE  # ended, but frames are still waiting to be read
        return self._state

    @property
    def eos(self) -> bool:
        return self.state == EOS

    def __enter__(self) -> Source:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r}, state={self.state})"

    # ------------------------------------------------------------ the capture thread

    def _run(self) -> None:
        pending = None if self.live else self._first  # a live frame read at open() is stale by now
        self._first = None
        next_due = time.monotonic()
        while not self._stop.is_set():
            try:
                image = pending if pending is not None else self._read()
                pending = None
            except FrameSkipped as exc:
                self.stats.errors += 1
                self._seq += 1  # the frame's number stays used: replayed IR/VIS keep pairing by index
                log.debug("%s: skipped a frame: %s", self.name, exc)
                continue
            except SourceLost as exc:
                if not self._recover(str(exc)):
                    break
                continue
            if image is None:  # end of a finite stream
                if self._wants_loop() and self._rewind():
                    continue
                break
            self.stats.captured += 1
            period = self.period_s
            if period and not self.fifo:
                # Pace like a camera: the frame is "exposed" when it is due, not when decoded.
                delay = next_due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_due = max(next_due + period, time.monotonic() - period)  # no burst after a stall
            self._publish(image)
        self._finish()

    def _wants_loop(self) -> bool:
        return False

    def _publish(self, image: np.ndarray) -> None:
        frame = Frame(image=image, timestamp=time.monotonic(), seq=self._seq, source=self.name)
        self._seq += 1
        self.last_frame_at = frame.timestamp
        self._pace.note(frame.timestamp)
        if self.fifo:
            while not self._stop.is_set():  # back-pressure: wait for the consumer, never drop
                try:
                    self._queue.put(frame, timeout=0.1)
                    break
                except queue.Full:
                    continue
        else:
            with self._cond:
                if self._latest is not None:
                    self.stats.dropped += 1
                self._latest = frame
                self._cond.notify_all()
        for event in self._listeners:
            event.set()

    def _finish(self) -> None:
        with self._cond:
            self._finished = True
            if not self._stop.is_set():  # ended by itself (not by stop()): nothing more will come
                self._state = EOS
            self._cond.notify_all()
        for event in self._listeners:
            event.set()

    def _recover(self, reason: str) -> bool:
        """Reopen a lost source with exponential backoff; False when it should end instead."""
        self._close_quietly()
        if not self.reconnect:
            log.warning("%s: %s (%s); not reconnecting", self.name, reason, redact_uri(self.uri))
            return False
        self._state = LOST
        self._pace.restart()  # the gap across the loss is not the source's pace
        for event in self._listeners:
            event.set()
        log.warning("%s: %s; reconnecting", self.name, reason)
        delay, attempts = 0.25, 0
        while not self._stop.wait(delay):
            attempts += 1
            try:
                self._open()
            except (SourceLost, OSError) as exc:
                self._close_quietly()
                log.debug("%s: reopen attempt %d failed: %s", self.name, attempts, exc)
                delay = min(delay * 2.0, self.reconnect_max_s)
                continue
            self.stats.reconnects += 1
            self._state = LIVE
            log.warning("%s: back after %d attempt(s)", self.name, attempts)
            return True
        return False

    def _read_first(self) -> np.ndarray:
        for _ in range(20):  # a few corrupt frames at the start of a stream are common
            try:
                image = self._read()
            except FrameSkipped:
                self.stats.errors += 1
                continue
            if image is None:
                raise SourceLost("gave no frame at all (empty file or stream?)")
            return image
        raise SourceLost("the first 20 frames were all unreadable")

    def _close_quietly(self) -> None:
        try:
            self._close()
        except Exception as exc:  # closing a broken device may fail too; nothing to do about it
            log.debug("%s: close failed: %s", self.name, exc)


def redact_uri(uri: str) -> str:
    """Never print a password from a URL (rtsp://user:secret@host) into a message."""
    try:
        parts = urlsplit(uri)
        if parts.password:
            netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return uri


def _describe_dtype(image: np.ndarray) -> str:
    kind = "gray" if image.ndim == 2 or image.shape[2] == 1 else f"{image.shape[2]}-channel"
    return f"{kind} {image.dtype}"


class ReplayableSource(Source):
    """A finite, paced source (file, folder, generator): FIFO-able, loopable, never reconnects."""

    live = False

    def __init__(self, uri: str, *, fps: float | None = None, loop: bool = False, **kwargs):
        super().__init__(uri, **kwargs)
        self.fps = fps
        self.loop = loop

    def _wants_loop(self) -> bool:
        return self.loop

    @property
    def period_s(self) -> float | None:
        return 1.0 / self.fps if self.fps else None
