"""The data that travels between stages: typed, small, and the same for every source/sink."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Frame:
    """One captured image.

    image: HxW gray (uint8 or uint16, thermal cameras often give 16-bit) or HxWx3 BGR uint8.
    timestamp: ``time.monotonic()`` seconds when the frame was captured (or, for files,
        when it was read); carried to the output so latency is glass-to-glass.
    seq: per-source sequence number, starting at 0, never reused.
    """

    image: np.ndarray
    timestamp: float
    seq: int
    source: str = ""


@dataclass
class FusedFrame:
    """One output picture, ready for any sink.

    image: HxWx3 BGR uint8 (what the viewer sees: fused, side-by-side or quad view).
    timestamp: capture timestamp of the older frame of the pair (for glass-to-glass latency).
    seq: output sequence number.
    media_time: offline runs (``--no-realtime``) only: seconds into the source files. Frames are
        then read as fast as fusion goes, so read times say nothing about when a frame belongs;
        a recording is timed by this instead.
    """

    image: np.ndarray
    timestamp: float
    seq: int
    media_time: float | None = None
