"""RTSP output: viewers (VLC, ffplay, NVRs, other pipelines) watch the fused stream.

    pf-stream ... --rtsp rtsp://@:8554/fused      # all interfaces
    ffplay -fflags nobuffer -flags low_delay rtsp://HOST:8554/fused

How a frame travels: ``write`` only keeps a reference to the newest frame and wakes a
pusher thread (it never blocks the pipeline).  *If someone is watching*, the pusher
converts that frame to I420 and pushes it at once into the shared media's appsrc, which
x264/NVENC encode once for all viewers.  So:

- a slow model does not stall viewers: with no new frame for 1.5 periods, the last fused
  frame is repeated every period (the output rate given to ``open``);
- a source that stops altogether turns, after ``no_signal_after_s`` (at least 3 output
  periods), into a dimmed last frame with "NO SIGNAL" (before the first frame viewers see
  "WAITING FOR VIDEO");
- with no viewer, no conversion and no encoding happen at all (the encoder pipeline, once
  built, stays idle; see rtsp_server.py for why it is not torn down);
- each viewer that starts playing gets a forced key frame, so it has a picture at once.

The GStreamer details live in rtsp_server.py (server, auth, media lifecycle),
gst_encoders.py (encoder choice and pipeline text) and rtsp_url.py (the address).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.frames import FusedFrame
from pf_stream.pace import Pace
from pf_stream.sinks.base import Sink
from pf_stream.sinks.gst_encoders import EncoderSettings, load_gstreamer, media_launch, select_encoder
from pf_stream.sinks.rtsp_server import RtspServer
from pf_stream.sinks.rtsp_url import RtspAddress, parse_rtsp_url

log = logging.getLogger("pf_stream.sinks.rtsp")

PASSWORD_ENV = "PF_STREAM_RTSP_PASSWORD"
DEFAULT_FPS = 30.0
# A viewer that connects before open() waits this long for the picture size.
WAIT_FOR_OPEN_S = 20.0
# How far ahead of real time a timestamp may be pushed to keep frames a period apart.
MAX_LEAD_PERIODS = 2


class RtspSink(Sink):
    """Serve the fused stream over RTSP. The port is bound here, before any capture starts.

    After construction, ``port`` is the bound port (useful with port 0) and ``url`` what a
    viewer on this machine opens.
    """

    name = "rtsp"

    def __init__(
        self,
        address: RtspAddress,
        encoder: str = "auto",
        bitrate_kbps: int = 4000,
        keyframe_interval_s: float = 1.0,
        user: str | None = None,
        password: str | None = None,
        no_signal_after_s: float = 3.0,
    ) -> None:
        if user is not None and not password:
            raise UserError(f"--rtsp-user needs a password: set it in the {PASSWORD_ENV} environment variable")
        if user is None and password:
            log.warning("rtsp: %s is set but --rtsp-user is not: the stream is open to anyone", PASSWORD_ENV)
        # Checked now so that bad values fail before capture; the frame count needs the fps.
        EncoderSettings.from_seconds(bitrate_kbps, keyframe_interval_s, DEFAULT_FPS)
        self._bitrate_kbps = bitrate_kbps
        self._keyframe_interval_s = keyframe_interval_s
        self._no_signal_after_s = no_signal_after_s
        self._address = address

        gst = self._gst = load_gstreamer()
        self._encoder = select_encoder(gst, encoder)

        self._geometry: tuple[int, int, float] | None = None  # width, height, fps once opened
        self._opened = threading.Event()
        self._stop = threading.Event()
        self._new_frame = threading.Condition()
        self._fresh = False  # a frame arrived since the last push
        self._latest: FusedFrame | None = None
        self._latest_at = 0.0  # time.monotonic() of the latest write
        self._pace = Pace()  # how often frames are written: a slow feed is slow, not lost
        self._clock: threading.Thread | None = None
        self.frames_pushed = 0  # pushed into the encoder (repeats included)
        self.frames_converted = 0  # distinct frames converted to I420
        self._closed = False

        credentials = (user, password) if user is not None else None
        self._server = RtspServer(gst, address, self._launch_text, credentials)
        self.port = self._server.port
        self.url = address.client_url(self.port)
        where = " (listening on all interfaces: other machines use this one's address)" if address.all_interfaces else ""
        auth = f", basic auth as {user!r}" if user is not None else ""
        log.info("rtsp: serving %s%s with %s%s", self.url, where, self._encoder.element, auth)

    @classmethod
    def from_config(cls, out) -> RtspSink:
        """Build from the OutputConfig (fields rtsp, rtsp_user, encoder, bitrate_kbps, keyframe_interval_s)."""
        return cls(
            parse_rtsp_url(out.rtsp),
            encoder=out.encoder,
            bitrate_kbps=out.bitrate_kbps,
            keyframe_interval_s=out.keyframe_interval_s,
            user=out.rtsp_user,
            password=os.environ.get(PASSWORD_ENV) or None,
        )

    # ---- Sink interface -----------------------------------------------------------------

    @property
    def encoder_element(self) -> str:
        return self._encoder.element

    @property
    def encoding(self) -> bool:
        """True while frames go to the encoder, i.e. while someone is connected."""
        return self._server.appsrc is not None

    @property
    def viewers(self) -> int:
        """Clients with an open RTSP connection."""
        return self._server.viewers

    @property
    def pipelines_built(self) -> int:
        """Encoder pipelines built so far: one, shared by all viewers and kept between them
        (another only after a pipeline error)."""
        return self._server.pipelines_built

    def open(self, width: int, height: int, fps: float) -> None:
        if self._geometry is not None:
            return
        fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        # I420 and H.264 need even sizes: frames are padded by one pixel when odd.
        self._geometry = (width + width % 2, height + height % 2, fps)
        self._opened.set()
        self._clock = threading.Thread(target=self._run_clock, name="rtsp-clock", daemon=True)
        self._clock.start()

    @property
    def no_signal_after_s(self) -> float:
        """Seconds without a new frame before viewers see NO SIGNAL: the configured delay, or 3
        periods of the feed if longer (its declared output rate, or the pace frames really come
        at), so a 0.2 fps camera is not shown as lost between two of its frames."""
        periods = [1.0 / self._geometry[2]] if self._geometry else []
        if self._pace.typical_s:
            periods.append(self._pace.typical_s)
        return max([self._no_signal_after_s] + [3.0 * p for p in periods])

    def write(self, frame: FusedFrame) -> None:
        if self._geometry is None:
            h, w = frame.image.shape[:2]
            self.open(w, h, DEFAULT_FPS)
        with self._new_frame:
            self._latest = frame
            self._latest_at = time.monotonic()
            self._pace.note(self._latest_at)
            self._fresh = True
            self._new_frame.notify()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._opened.set()  # a viewer still waiting for the picture size gives up now
        with self._new_frame:
            self._new_frame.notify()
        if self._clock is not None:
            self._clock.join(timeout=5)
        self._server.stop()
        log.info("rtsp: stopped (%d frames pushed, %d distinct)", self.frames_pushed, self.frames_converted)

    # ---- internals ----------------------------------------------------------------------

    def _launch_text(self) -> str | None:
        """Called by gst-rtsp-server (a client thread) when the first viewer needs a pipeline."""
        if not self._opened.is_set():
            # Typically while the model loads: the picture size is not known yet.  The
            # viewer's DESCRIBE waits (most players wait far longer than this).
            log.info("rtsp: a viewer is waiting for the first picture")
        if not self._opened.wait(WAIT_FOR_OPEN_S) or self._stop.is_set():
            return None
        width, height, fps = self._geometry
        settings = EncoderSettings.from_seconds(self._bitrate_kbps, self._keyframe_interval_s, fps)
        return media_launch(self._encoder.key, settings, width, height, fps)

    def _run_clock(self) -> None:
        """While somebody watches, push each new frame as soon as it is written, and repeat
        the last picture every period when none comes (a slow model, a stalled source).

        Timestamps come from :class:`_Stamper` (one per media pipeline).
        """
        Gst = self._gst.Gst
        width, height, fps = self._geometry
        period = 1.0 / fps
        # Rounded up: RTP payloaders truncate to the 90 kHz clock, and a period even 1 ns
        # short can put two frames 2999 ticks apart, i.e. in one frame slot for a player.
        period_ns = math.ceil(Gst.SECOND / fps)
        shown: tuple[str, FusedFrame | None] | None = None  # what `data` holds
        data = b""
        last_push, repeat_after = 0.0, period
        stamped_for, stamper = None, _Stamper(period_ns)  # the appsrc our timestamps belong to
        while True:
            with self._new_frame:
                self._new_frame.wait_for(
                    lambda: self._stop.is_set() or self._fresh,
                    timeout=max(0.0, last_push + repeat_after - time.monotonic()),
                )
                fresh = self._fresh
            if self._stop.is_set():
                return
            state = self._take()
            last_push = time.monotonic()
            # After a new frame, allow some jitter before repeating it; then repeat every period.
            repeat_after = 1.5 * period if fresh else period
            appsrc = self._server.appsrc
            if appsrc is None:
                shown = None  # nobody watches: convert nothing, push nothing
                continue
            if appsrc is not stamped_for:  # a new pipeline: its running time starts afresh
                stamped_for, stamper = appsrc, _Stamper(period_ns)
            pts = stamper.stamp(_running_time(appsrc))
            if pts is None:
                continue  # frames come faster than the output rate: skip this one
            if shown is None or state[0] != shown[0] or state[1] is not shown[1]:
                data = cv2.cvtColor(_picture(state, width, height), cv2.COLOR_BGR2YUV_I420).tobytes()
                shown = state
                self.frames_converted += 1
            if self._server.take_key_unit_request():
                # Serialized: x264/NVENC make the next pushed frame an IDR (with SPS/PPS).
                appsrc.send_event(self._gst.GstVideo.video_event_new_downstream_force_key_unit(
                    Gst.CLOCK_TIME_NONE, Gst.CLOCK_TIME_NONE, Gst.CLOCK_TIME_NONE, True, 0))
            buf = Gst.Buffer.new_wrapped(data)
            buf.pts, buf.duration = pts, period_ns
            appsrc.emit("push-buffer", buf)
            self.frames_pushed += 1

    def _take(self) -> tuple[str, FusedFrame | None]:
        """What viewers should see now — ('waiting', None), ('live', frame) or ('no-signal', frame) —
        marking the newest frame as taken."""
        with self._new_frame:
            frame, at = self._latest, self._latest_at
            self._fresh = False
        if frame is None:
            return "waiting", None
        if time.monotonic() - at > self.no_signal_after_s:
            return "no-signal", frame
        return "live", frame


class _Stamper:
    """Buffer timestamps for one media pipeline, from its running time when each frame is pushed.

    - At least one period after the previous frame's, so players and recorders that round to
      the frame rate never see two frames in one slot.
    - A frame that would have to be stamped more than ``MAX_LEAD_PERIODS`` ahead of the
      running time (the source runs faster than the output rate) is skipped (``None``), so
      timestamps never drift ahead of real time.
    - If the running time goes back by more than that (a pipeline paused and played again
      runs on from where it paused), stamping starts afresh: holding on to the old stamps
      would skip every frame until the running time caught up, a frozen picture for as long
      as the jump.
    """

    def __init__(self, period_ns: int) -> None:
        self.period_ns = period_ns
        self.last: int | None = None

    def stamp(self, now: int) -> int | None:
        lead = MAX_LEAD_PERIODS * self.period_ns
        if self.last is not None and self.last - now > lead:
            self.last = None
        pts = now if self.last is None else max(now, self.last + self.period_ns)
        if pts - now > lead:
            return None
        self.last = pts
        return pts


def _running_time(appsrc) -> int:
    """The media pipeline's running time now, in ns: 0 until the pipeline is playing.

    A pipeline going to PLAYING hands its elements the clock *before* their base time; read
    in between, clock minus base time is the machine's uptime.  One frame stamped with that
    (seen under load: a first frame at 22845 s) made every later frame "too far ahead" for
    hours, i.e. viewers who never got a picture.
    """
    clock, base = appsrc.get_clock(), appsrc.get_base_time()
    if clock is None or not base:
        return 0
    return max(0, clock.get_time() - base)


def _picture(state: tuple[str, FusedFrame | None], width: int, height: int) -> np.ndarray:
    kind, frame = state
    if frame is None:
        return _caption(np.zeros((height, width, 3), np.uint8), "WAITING FOR VIDEO")
    image = _fit(frame.image, width, height)
    return _caption(image // 3, "NO SIGNAL") if kind == "no-signal" else image


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """The frame as width×height BGR: odd sizes padded by a pixel, other sizes resized."""
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image
    if (width - w, height - h) in ((0, 0), (1, 0), (0, 1), (1, 1)):
        return cv2.copyMakeBorder(image, 0, height - h, 0, width - w, cv2.BORDER_REPLICATE)
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


def _caption(image: np.ndarray, text: str) -> np.ndarray:
    """Write ``text`` centred on a copy of ``image``, sized to the picture."""
    out = np.ascontiguousarray(image).copy()
    h, w = out.shape[:2]
    scale = max(0.4, w / 640)
    thickness = max(1, round(2 * scale))
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
    org = ((w - tw) // 2, (h + th) // 2)
    cv2.putText(out, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
