"""The one interface every output implements.

The pipeline runs each sink in its own thread (see pf_stream/sinks/fanout.py), so a slow
sink may block inside ``write`` without ever stalling fusion; it simply misses frames.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pf_stream.frames import FusedFrame


class Sink(ABC):
    name = "sink"

    def open(self, width: int, height: int, fps: float) -> None:
        """Prepare for frames of this size at about this rate (called once, before write)."""

    @abstractmethod
    def write(self, frame: FusedFrame) -> None:
        """Consume one frame (HxWx3 BGR uint8)."""

    def close(self) -> None:
        """Flush and release everything; must be safe to call twice and after a failed open."""
