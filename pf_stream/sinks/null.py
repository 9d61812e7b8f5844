"""``--null``: count frames and discard them (benchmarks, and runs that only want stats)."""

from __future__ import annotations

from pf_stream.frames import FusedFrame
from pf_stream.sinks.base import Sink


class NullSink(Sink):
    name = "null"

    def __init__(self) -> None:
        self.frames = 0
        self.size: tuple[int, int] | None = None

    def open(self, width: int, height: int, fps: float) -> None:
        self.size = (width, height)

    def write(self, frame: FusedFrame) -> None:
        self.frames += 1
