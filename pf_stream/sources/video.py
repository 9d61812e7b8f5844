"""Video files (``clip.mp4``, ``file:///data/clip.mkv``), decoded with PyAV.

PyAV rather than OpenCV here because it tells a corrupt packet (skipped and counted)
from the end of the file, and gives the stream's real frame rate for pacing.  IR
videos are decoded straight to gray (the IR content of 3-channel files is gray
anyway), VIS to BGR; 16-bit gray videos keep their 16 bits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from pf_stream.errors import UserError
from pf_stream.sources.base import FrameSkipped, ReplayableSource, SourceLost

log = logging.getLogger("pf_stream.sources")

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".ts", ".mpg", ".mpeg", ".h264", ".264", ".y4m")


def file_path(uri: str) -> Path:
    return Path(uri[len("file://") :] if uri.startswith("file://") else uri).expanduser()


class VideoFileSource(ReplayableSource):
    query_options = ("fps", "loop")

    def __init__(self, uri: str, *, fps: float | None = None, role: str = "", **kwargs):
        super().__init__(uri, fps=float(fps) if fps else None, role=role, **kwargs)
        self.path = file_path(uri)
        if not self.path.is_file():
            raise UserError(f"{role or 'video'} file {self.path} not found")
        self.role = role
        self._container = None
        self._packets = None
        self._ready: list[np.ndarray] = []
        self._native_fps: float | None = None

    @property
    def period_s(self) -> float | None:
        fps = self.fps or self._native_fps or 30.0
        return 1.0 / fps

    def _open(self) -> None:
        import av

        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceLost(f"cannot open {self.path} as a video ({_reason(exc)})") from None
        if not self._container.streams.video:
            raise SourceLost(f"{self.path} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg
        rate = stream.average_rate or stream.guessed_rate
        self._native_fps = float(rate) if rate else None
        fmt = stream.codec_context.pix_fmt or ""
        if fmt.startswith("gray16"):
            self._format = "gray16le"
        elif fmt.startswith("gray") or self.role == "ir":
            self._format = "gray"
        else:
            self._format = "bgr24"
        self._packets = self._container.demux(stream)
        self._ready = []

    def _read(self) -> np.ndarray | None:
        import av

        while not self._ready:
            try:
                packet = next(self._packets)
            except StopIteration:
                return None
            except av.error.FFmpegError as exc:
                raise FrameSkipped(f"{self.path}: {_reason(exc)}") from None
            try:
                self._ready = [f.to_ndarray(format=self._format) for f in packet.decode()]
            except av.error.InvalidDataError as exc:
                raise FrameSkipped(f"{self.path}: corrupt packet ({_reason(exc)})") from None
            except av.error.FFmpegError as exc:
                raise FrameSkipped(f"{self.path}: {_reason(exc)}") from None
        return self._ready.pop(0)

    def _rewind(self) -> bool:
        self._close()
        try:
            self._open()
        except SourceLost as exc:
            log.warning("%s: cannot loop %s: %s", self.name, self.path, exc)
            return False
        return True

    def _close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
            self._packets = None


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]
