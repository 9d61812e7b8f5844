"""Build the list of outputs from the run config (``--display``, ``--record``, ``--rtsp``, ``--null``).

Sinks are *created* here, before any source is opened, so a bad record path or a busy
RTSP port is a one-line error before a camera is touched.  Optional ones are imported
lazily: the RTSP server needs GStreamer only when ``--rtsp`` is given.
"""

from __future__ import annotations

import logging
from typing import Callable

from pf_stream.config import OutputConfig
from pf_stream.sinks.base import Sink

log = logging.getLogger("pf_stream.sinks")


def build_sinks(out: OutputConfig, on_quit: Callable[[], None] | None = None) -> list[Sink]:
    sinks: list[Sink] = []
    if out.rtsp:
        from pf_stream.sinks.rtsp import RtspSink

        sinks.append(RtspSink.from_config(out))
    if out.record:
        from pf_stream.sinks.record import RecordSink

        sinks.append(RecordSink(out.record, out.encoder, out.bitrate_kbps, out.keyframe_interval_s))
    if out.display:
        from pf_stream.sinks.display import DisplaySink, display_unavailable

        reason = display_unavailable()
        if reason:
            log.warning("--display is off: %s", reason)
        else:
            sinks.append(DisplaySink(on_quit=on_quit))
    if out.null_sink or not sinks:
        from pf_stream.sinks.null import NullSink

        if not out.null_sink:
            log.warning("no output chosen (--display, --record, --rtsp or --null): frames are fused and discarded")
        sinks.append(NullSink())
    return sinks
