"""RTSP cameras and streams (``rtsp://user:pass@host:554/stream``) through OpenCV's FFmpeg.

Low latency is a matter of options: no demuxer buffering (``fflags nobuffer``,
``flags low_delay``), one decoder thread (``CAP_PROP_N_THREADS=1``: frame threading
adds a frame of delay per thread, and OpenCV readers otherwise lag ~1 s), TCP by
default (``?transport=udp`` for lossy links that prefer dropping to stalling), and
open/read timeouts so a dead server is noticed in seconds instead of hanging: the
base class then reconnects with backoff.
"""

from __future__ import annotations

import os
import threading
import time
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.sources.base import Source, SourceLost

_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_env_lock = threading.Lock()  # the options travel through a process-wide variable


def ffmpeg_options(transport: str) -> str:
    return f"rtsp_transport;{transport}|fflags;nobuffer|flags;low_delay|max_delay;500000"


class RtspSource(Source):
    live = True
    query_options = ("transport", "timeout_s")

    def __init__(self, uri: str, *, transport: str = "tcp", timeout_s: float = 5.0, **kwargs):
        super().__init__(uri, **kwargs)
        if transport not in ("tcp", "udp"):
            raise UserError(f"rtsp transport must be tcp or udp, got {transport!r}")
        self.transport = transport
        self.timeout_ms = int(float(timeout_s) * 1000)
        self.url = _strip_our_query(uri)
        self._cap = None

    def _open(self) -> None:
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, self.timeout_ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, self.timeout_ms,
                  cv2.CAP_PROP_N_THREADS, 1]
        # FFmpeg's own log ("[tcp @ 0x...] Connection refused") would add raw lines beside our
        # one-line error and the NO SIGNAL log; set OPENCV_FFMPEG_LOGLEVEL yourself to see it.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        t0 = time.monotonic()
        with _env_lock:
            previous = os.environ.get(_ENV)
            os.environ[_ENV] = ffmpeg_options(self.transport)
            try:
                cap = cv2.VideoCapture(self.url, cv2.CAP_FFMPEG, params)
            finally:
                if previous is None:
                    os.environ.pop(_ENV, None)
                else:
                    os.environ[_ENV] = previous
        if not cap.isOpened():
            cap.release()
            raise SourceLost(f"cannot connect: {self._why_not_opened(time.monotonic() - t0)}")
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._cap = cap

    def _why_not_opened(self, took_s: float) -> str:
        """OpenCV only says "not opened"; a quick refusal has a reason FFmpeg (through PyAV) can name:
        a wrong password and a wrong path read very differently to the user than a server that is down."""
        if took_s >= 0.9 * self.timeout_ms / 1000:
            return f"no answer within {self.timeout_ms / 1000:g} s (server up? network?)"
        import av

        try:
            av.open(self.url, options={"rtsp_transport": self.transport}, timeout=(2.0, 2.0)).close()
        except av.error.HTTPUnauthorizedError:
            return "the server refused the login (401 Unauthorized): put the right user and password in the URL, rtsp://USER:PASSWORD@HOST:PORT/PATH"
        except av.error.HTTPNotFoundError:
            return "the server has no stream at this path (404 Not Found): check the path"
        except ConnectionRefusedError:
            return "connection refused (is the server running? is the port right?)"
        except (av.error.FFmpegError, OSError) as exc:  # the message may quote the URL: keep only its first words
            return f"{getattr(exc, 'strerror', None) or type(exc).__name__} (server up? path right?)"
        return "the stream opened in FFmpeg but not in OpenCV (not a video stream OpenCV can decode?)"

    def _read(self) -> np.ndarray:
        t0 = time.monotonic()
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceLost("stream stopped (server gone or network down)")
        if time.monotonic() - t0 >= 0.9 * self.timeout_ms / 1000:
            # OpenCV's read timeout fired (a link that died without closing), and OpenCV then
            # hands back a frame the decoder still held: stale, not a sign of life.
            raise SourceLost(f"no data for {self.timeout_ms / 1000:g} s (network down or server hung)")
        return image

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def _strip_our_query(uri: str) -> str:
    """Remove pf-stream's own options (transport, timeout_s) and keep the server's."""
    parts = urlsplit(uri)
    kept = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in RtspSource.query_options]
    return urlunsplit(parts._replace(query=urlencode(kept)))

