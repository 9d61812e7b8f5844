"""GStreamer pipelines (``gst://<pipeline>``) read through an appsink, via PyGObject.

This is the way to Jetson CSI cameras and hardware decoders, e.g.::

    gst://nvarguscamerasrc sensor-id=0 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1
          ! nvvidconv ! video/x-raw,format=BGRx

Unless the pipeline names its own appsink, pf-stream appends
``videoconvert ! video/x-raw,format={BGR,GRAY8,GRAY16_LE} ! appsink`` (the appsink
keeps one buffer and drops older ones: the newest frame, no backlog).  GRAY16_LE keeps
16-bit thermal data intact.  PyGObject and GStreamer are optional: without them this
source says how to install them.
"""

from __future__ import annotations

import numpy as np

from pf_stream.errors import UserError
from pf_stream.sources.base import Source, SourceLost

SINK_NAME = "pf_sink"
APPSINK_TAIL = (
    "videoconvert ! video/x-raw,format={ BGR, GRAY8, GRAY16_LE } ! "
    f"appsink name={SINK_NAME} max-buffers=1 drop=true sync=false emit-signals=false"
)
_FORMATS = {"BGR": (np.uint8, 3), "BGRx": (np.uint8, 4), "GRAY8": (np.uint8, 1), "GRAY16_LE": (np.dtype("<u2"), 1)}


def pipeline_description(uri: str) -> str:
    """The gst-launch description to run for ``gst://<pipeline>``."""
    text = uri[len("gst://") :].strip()
    if not text:
        raise UserError("gst:// needs a pipeline, e.g. gst://videotestsrc ! video/x-raw,width=640,height=512")
    if "appsink" in text:
        return text
    return f"{text.rstrip(' !')} ! {APPSINK_TAIL}"


def _import_gst():
    try:
        import gi

        gi.require_version("Gst", "1.0")
        from gi.repository import Gst
    except (ImportError, ValueError):
        raise UserError(
            "gst:// sources need GStreamer and PyGObject: apt install gstreamer1.0-tools gir1.2-gstreamer-1.0 "
            "libgirepository1.0-dev libcairo2-dev, then pip install 'pf-stream[rtsp]'"
        ) from None
    Gst.init(None)
    return Gst


class GstSource(Source):
    live = True

    def __init__(self, uri: str, *, timeout_s: float = 5.0, **kwargs):
        super().__init__(uri, **kwargs)
        self.description = pipeline_description(uri)
        self.timeout_ns = int(float(timeout_s) * 1e9)
        self._Gst = _import_gst()
        self._pipeline = None
        self._sink = None

    def _open(self) -> None:
        Gst = self._Gst
        try:
            pipeline = Gst.parse_launch(self.description)
        except Exception as exc:  # GLib.Error: a bad element name or syntax
            raise SourceLost(f"bad GStreamer pipeline: {getattr(exc, 'message', exc)}") from None
        sink = pipeline.get_by_name(SINK_NAME) or _first_appsink(pipeline)
        if sink is None:
            raise SourceLost("the pipeline has no appsink to read frames from")
        self._pipeline, self._sink = pipeline, sink
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise SourceLost(f"GStreamer cannot start the pipeline: {self._bus_error() or 'no details'}")

    def _read(self) -> np.ndarray:
        sample = self._sink.emit("try-pull-sample", self.timeout_ns)
        if sample is None:
            error = self._bus_error()
            if error:
                raise SourceLost(f"GStreamer error: {error}")
            if self._sink.get_property("eos"):
                raise SourceLost("the pipeline reached its end")
            raise SourceLost(f"no frame for {self.timeout_ns / 1e9:.0f} s")
        return sample_to_array(sample, self._Gst)

    def _bus_error(self) -> str | None:
        bus = self._pipeline.get_bus() if self._pipeline is not None else None
        msg = bus.pop_filtered(self._Gst.MessageType.ERROR) if bus is not None else None
        if msg is None:
            return None
        err, _debug = msg.parse_error()
        return err.message

    def _close(self) -> None:
        if self._pipeline is not None:
            self._pipeline.set_state(self._Gst.State.NULL)
            self._pipeline = self._sink = None


def _first_appsink(pipeline):
    it = pipeline.iterate_sinks()
    while True:
        ok, element = it.next()
        if ok != 1:  # Gst.IteratorResult.OK
            return None
        if element.get_factory().get_name() == "appsink":
            return element


def sample_to_array(sample, Gst) -> np.ndarray:
    """A GstSample of raw video -> HxW or HxWx3 numpy array (copied out of the buffer)."""
    caps = sample.get_caps().get_structure(0)
    width, height, fmt = caps.get_value("width"), caps.get_value("height"), caps.get_value("format")
    if fmt not in _FORMATS:
        raise SourceLost(f"appsink delivers {fmt}; end the pipeline in BGR, GRAY8 or GRAY16_LE")
    dtype, channels = _FORMATS[fmt]
    buffer = sample.get_buffer()
    ok, info = buffer.map(Gst.MapFlags.READ)
    if not ok:
        raise SourceLost("cannot map a GStreamer buffer")
    try:
        flat = np.frombuffer(info.data, dtype=np.uint8)
        stride = flat.size // height  # rows may be padded to 4 bytes
        rows = flat[: stride * height].reshape(height, stride)
        image = rows[:, : width * channels * np.dtype(dtype).itemsize].copy().view(dtype)
    finally:
        buffer.unmap(info)
    image = image.reshape(height, width, channels) if channels > 1 else image.reshape(height, width)
    return image[:, :, :3].copy() if channels == 4 else image
