"""``--record FILE.mp4``: H.264 in MP4 through PyAV (its wheels bundle libx264).

PyPI OpenCV cannot write H.264, hence PyAV.  Choices that matter:

* fragmented MP4 (``frag_keyframe+empty_moov``): the file is playable up to its last
  key frame even if the process is killed outright; a normal stop (Ctrl-C, SIGTERM,
  --frames) flushes the encoder and writes every frame handed to the sink;
* timestamps from the capture clock (millisecond time base), so a run that slowed down
  or lost a camera for a while still plays at the real speed;
* ``tune=zerolatency``: no look-ahead queue inside x264, so nothing piles up in the
  encoder and closing is quick;
* odd sizes are cropped by one pixel (4:2:0 needs even width and height).
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

from pf_stream.errors import UserError, check_writable
from pf_stream.frames import FusedFrame
from pf_stream.sinks.base import Sink

log = logging.getLogger("pf_stream.sinks")

# --encoder -> PyAV codecs to try, in order (nvv4l2 is GStreamer-only: software here)
ENCODERS = {
    "auto": ("libx264", "libopenh264", "h264_nvenc"),
    "x264": ("libx264",),
    "openh264": ("libopenh264",),
    "nvenc": ("h264_nvenc", "libx264"),
    "nvv4l2": ("libx264", "libopenh264"),
}
TIME_BASE = Fraction(1, 1000)


class RecordSink(Sink):
    name = "record"

    def __init__(self, path: str | Path, encoder: str = "auto", bitrate_kbps: int = 4000, keyframe_interval_s: float = 1.0):
        self.path = Path(path)
        if self.path.suffix.lower() not in (".mp4", ".mov", ".m4v", ".mkv"):
            raise UserError(f"--record writes H.264 MP4 (or MKV): give a file name ending in .mp4, not {self.path.name!r}")
        # PyAV opens the file only when the first packet is muxed: without this check a
        # read-only place surfaced mid-run as "output record failed", nothing recorded.
        check_writable(self.path, "--record")
        self.encoder = encoder
        self.bitrate_kbps = bitrate_kbps
        self.keyframe_interval_s = keyframe_interval_s
        self.frames = 0
        self.codec: str | None = None
        self._container = None
        self._stream = None
        self._t0: float | None = None
        self._last_pts = -1
        self._size: tuple[int, int] | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        import av

        self._size = (width - width % 2, height - height % 2)
        if self.path.suffix.lower() in (".mp4", ".mov", ".m4v"):
            options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"}
        else:
            options = {}
        try:
            self._container = av.open(str(self.path), "w", options=options)
        except (av.error.FFmpegError, OSError) as exc:
            raise UserError(f"cannot write {self.path}: {getattr(exc, 'strerror', None) or exc}") from None
        rate = max(1, round(fps or 30))
        errors = []
        for codec in ENCODERS.get(self.encoder, ENCODERS["auto"]):
            if codec not in av.codecs_available:
                continue
            try:
                stream = self._container.add_stream(codec, rate=rate)
                stream.width, stream.height = self._size
                stream.pix_fmt = "yuv420p"
                stream.codec_context.time_base = TIME_BASE
                stream.bit_rate = self.bitrate_kbps * 1000
                stream.codec_context.gop_size = max(1, round(rate * self.keyframe_interval_s))
                if codec == "libx264":
                    stream.options = {"preset": "veryfast", "tune": "zerolatency"}
                stream.codec_context.open()  # fails here, not at the first frame, if the encoder cannot run
            except (av.error.FFmpegError, ValueError) as exc:
                errors.append(f"{codec}: {exc}")
                self._container.close()
                self._container = av.open(str(self.path), "w", options=options)
                continue
            self._stream, self.codec = stream, codec
            break
        if self._stream is None:
            self.close()
            raise UserError(f"no H.264 encoder works for --record here ({'; '.join(errors) or 'none in this PyAV build'})")
        log.info("recording %dx%d H.264 (%s) to %s", *self._size, self.codec, self.path)

    def write(self, frame: FusedFrame) -> None:
        import av

        image = frame.image
        w, h = self._size
        if image.shape[1] != w or image.shape[0] != h:
            image = image[:h, :w]
        at = frame.media_time if frame.media_time is not None else frame.timestamp  # offline: the files' own time
        if self._t0 is None:
            self._t0 = at
        pts = max(int(round((at - self._t0) * 1000.0)), self._last_pts + 1)  # strictly increasing
        self._last_pts = pts
        vf = av.VideoFrame.from_ndarray(image, format="bgr24")
        vf.pts, vf.time_base = pts, TIME_BASE
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file; safe to call twice."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    container.mux(packet)
        finally:
            container.close()
            self._stream = None
        if self.frames:
            log.info("recorded %d frames to %s", self.frames, self.path)
