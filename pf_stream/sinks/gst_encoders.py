"""GStreamer for the RTSP sink: loading it, choosing an H.264 encoder, building pipeline strings.

Three jobs, each small and separately testable:

- :func:`load_gstreamer` imports PyGObject + GStreamer + gst-rtsp-server lazily and turns
  every way that can fail into one UserError line that says what to install.
- :func:`select_encoder` picks the encoder: ``auto`` tries the Jetson hardware encoder, the
  desktop NVENC one, x264 and openh264 in that order (warning when it had to fall back);
  an explicit choice that does not work is an error, never a silent substitute.
- :func:`encoder_chain` and :func:`media_launch` build the pipeline strings as plain text,
  so unit tests check them without GStreamer and the Jetson/NVENC strings are reviewed
  even on machines that cannot run them.

Every chain starts from I420 in system memory (the sink converts BGR once per new frame)
and is tuned for latency: no B-frames, one IDR per keyframe interval.  SPS/PPS go in-band
before each IDR (rtph264pay ``config-interval=1``; ``-1`` corrupts key frames when x264
uses sliced threads), so a viewer can start at any IDR (and rtsp.py forces one for each
viewer that starts playing).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from types import SimpleNamespace

from pf_stream.errors import UserError, check_choice

log = logging.getLogger(__name__)

GST_INSTALL_HINT = (
    "install GStreamer and its RTSP server: run scripts/setup.sh, or `apt install gstreamer1.0-tools "
    "gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gir1.2-gst-rtsp-server-1.0 "
    "gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 libgirepository1.0-dev libcairo2-dev` and "
    "`pip install 'PyGObject>=3.48,<3.52' pycairo` (or `pip install pf-stream[rtsp]`)"
)


@dataclass(frozen=True)
class EncoderSpec:
    """One H.264 encoder we know how to drive.

    key: the --encoder name; element: the GStreamer factory name; hardware: where it runs;
    install: what a user adds to get it.
    """

    key: str
    element: str
    hardware: str
    install: str


ENCODERS: dict[str, EncoderSpec] = {
    spec.key: spec
    for spec in (
        EncoderSpec("nvv4l2", "nvv4l2h264enc", "Jetson hardware encoder",
                    "run on a Jetson with JetPack's GStreamer (nvidia-l4t-gstreamer)"),
        EncoderSpec("nvenc", "nvh264enc", "NVIDIA desktop GPU (NVENC)",
                    "install gstreamer1.0-plugins-bad and an NVIDIA driver with NVENC"),
        EncoderSpec("x264", "x264enc", "CPU (libx264)", "install gstreamer1.0-plugins-ugly"),
        EncoderSpec("openh264", "openh264enc", "CPU (Cisco openh264)", "install gstreamer1.0-plugins-bad"),
    )
}
# Hardware first: on a Jetson the CPU is needed for everything else.
AUTO_ORDER = ("nvv4l2", "nvenc", "x264", "openh264")
ENCODER_CHOICES = ("auto", *AUTO_ORDER)


@dataclass(frozen=True)
class EncoderSettings:
    """What every encoder is asked for: rate in kbit/s and the distance between IDR frames."""

    bitrate_kbps: int = 4000
    keyframe_interval_frames: int = 30

    @classmethod
    def from_seconds(cls, bitrate_kbps: int, keyframe_interval_s: float, fps: float) -> EncoderSettings:
        if bitrate_kbps <= 0:
            raise UserError(f"--bitrate must be positive (kbit/s), got {bitrate_kbps}")
        if keyframe_interval_s <= 0:
            raise UserError(f"--keyframe-interval must be positive (seconds), got {keyframe_interval_s}")
        return cls(int(bitrate_kbps), max(1, round(keyframe_interval_s * fps)))


def encoder_chain(key: str, settings: EncoderSettings) -> str:
    """Pipeline text from I420 system-memory frames to an H.264 stream, for encoder ``key``."""
    kbps, gop = settings.bitrate_kbps, settings.keyframe_interval_frames
    if key == "nvv4l2":
        # The Jetson encoder takes NVMM buffers; nvvidconv uploads. control-rate=1 is CBR,
        # preset-level=1 UltraFast, poc-type=2 lets the decoder output each frame at once.
        return (
            "nvvidconv ! video/x-raw(memory:NVMM),format=NV12 ! "
            f"nvv4l2h264enc bitrate={kbps * 1000} control-rate=1 iframeinterval={gop} idrinterval={gop} "
            "insert-sps-pps=true insert-vui=true maxperf-enable=true preset-level=1 poc-type=2"
        )
    if key == "nvenc":
        return (
            f"nvh264enc bitrate={kbps} rc-mode=cbr gop-size={gop} bframes=0 "
            "preset=low-latency-hq zerolatency=true"
        )
    if key == "x264":
        return (
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={kbps} key-int-max={gop} bframes=0"
        )
    if key == "openh264":
        return (
            f"openh264enc usage-type=camera complexity=low rate-control=bitrate bitrate={kbps * 1000} "
            f"gop-size={gop}"
        )
    raise ValueError(f"no encoder chain for {key!r}")


def raw_caps(width: int, height: int, fps: float) -> str:
    """Caps of the I420 frames the sink pushes (fps as an exact fraction: 29.97 → 30000/1001)."""
    ntsc = Fraction(round(fps * 1.001) * 1000, 1001)  # 29.97 means 30000/1001
    rate = ntsc if fps != round(fps) and abs(float(ntsc) - fps) < 1e-3 else Fraction(fps).limit_denominator(1000)
    return f"video/x-raw,format=I420,width={width},height={height},framerate={rate.numerator}/{rate.denominator}"


def media_launch(key: str, settings: EncoderSettings, width: int, height: int, fps: float) -> str:
    """The launch text of the RTSP media: appsrc → encoder → RTP payloader ``pay0``.

    appsrc never blocks the caller and keeps at most two frames (a viewer that cannot keep
    up loses old frames, never adds delay).  The sink timestamps buffers itself (running
    time on arrival, at least one frame period apart; see rtsp.py), so no do-timestamp.
    """
    return (
        "( appsrc name=src is-live=true format=time block=false "
        "max-bytes=0 max-buffers=2 leaky-type=downstream "
        f"caps={raw_caps(width, height, fps)} ! "
        f"{encoder_chain(key, settings)} ! h264parse ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def load_gstreamer() -> SimpleNamespace:
    """Import and initialise GStreamer + gst-rtsp-server; UserError with an install hint if absent.

    Returns a namespace with ``Gst``, ``GLib``, ``GObject``, ``GstRtspServer`` and ``GstVideo``.
    """
    try:
        import gi

        gi.require_version("Gst", "1.0")
        gi.require_version("GstRtspServer", "1.0")
        gi.require_version("GstVideo", "1.0")
        from gi.repository import GLib, GObject, Gst, GstRtspServer, GstVideo
    except (ImportError, ValueError) as exc:
        # ImportError: PyGObject missing; ValueError: a typelib (namespace) missing.
        raise UserError(f"RTSP output needs GStreamer ({exc}); {GST_INSTALL_HINT}") from None
    ok, _ = Gst.init_check(None)
    if not ok:
        raise UserError(f"GStreamer failed to initialise; {GST_INSTALL_HINT}")
    missing = [name for name in ("appsrc", "rtph264pay", "h264parse") if Gst.ElementFactory.find(name) is None]
    if missing:
        raise UserError(
            f"GStreamer elements {', '.join(missing)} are missing; install gstreamer1.0-plugins-base, "
            "gstreamer1.0-plugins-good and gstreamer1.0-plugins-bad (scripts/setup.sh does)"
        )
    return SimpleNamespace(Gst=Gst, GLib=GLib, GObject=GObject, GstRtspServer=GstRtspServer, GstVideo=GstVideo)


def try_encoder(gst: SimpleNamespace, key: str, timeout_s: float = 5.0) -> str | None:
    """Encode a few test frames with ``key``; return None if it works, else why it does not.

    A factory can be registered yet unusable (nvh264enc without a GPU, nvv4l2h264enc in a
    container without the device), so we run it rather than only look it up.
    """
    Gst = gst.Gst
    spec = ENCODERS[key]
    if Gst.ElementFactory.find(spec.element) is None:
        return f"GStreamer element {spec.element} is not installed"
    text = (
        "videotestsrc num-buffers=3 ! "
        f"{raw_caps(320, 240, 30)} ! {encoder_chain(key, EncoderSettings())} ! fakesink"
    )
    try:
        pipeline = Gst.parse_launch(text)
    except gst.GLib.Error as exc:
        return f"{spec.element} cannot be set up: {exc.message}"
    try:
        pipeline.set_state(Gst.State.PLAYING)
        msg = pipeline.get_bus().timed_pop_filtered(
            int(timeout_s * Gst.SECOND), Gst.MessageType.ERROR | Gst.MessageType.EOS
        )
        if msg is None:
            return f"{spec.element} produced nothing within {timeout_s:g} s"
        if msg.type == Gst.MessageType.ERROR:
            err, _debug = msg.parse_error()
            return f"{spec.element} failed: {err.message}"
        return None
    finally:
        pipeline.set_state(Gst.State.NULL)


def select_encoder(gst: SimpleNamespace, choice: str) -> EncoderSpec:
    """Resolve ``--encoder``: the first working one for 'auto', else exactly the one asked for."""
    check_choice("encoder", choice, ENCODER_CHOICES)
    if choice != "auto":
        why = try_encoder(gst, choice)
        if why:
            spec = ENCODERS[choice]
            raise UserError(f"encoder {choice!r} is not usable here ({why}): {spec.install}, or use --encoder auto")
        return ENCODERS[choice]
    skipped: list[str] = []
    for key in AUTO_ORDER:
        why = try_encoder(gst, key)
        if why is None:
            spec = ENCODERS[key]
            if skipped:
                log.warning("rtsp: %s not usable here; falling back to %s (%s)", ", ".join(skipped), spec.element, spec.hardware)
            return spec
        skipped.append(ENCODERS[key].element)
        log.debug("rtsp: encoder %s unusable: %s", key, why)
    raise UserError(
        "no H.264 encoder works here (tried " + ", ".join(ENCODERS[k].element for k in AUTO_ORDER) + "): "
        "install gstreamer1.0-plugins-ugly for x264enc (scripts/setup.sh does)"
    )
