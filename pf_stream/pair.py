"""Pairing: which IR frame is fused with which VIS frame.

Two free-running cameras are never exposed at the same instant.  The pairer holds the
newest unpaired frame of each side and pairs them when their capture timestamps are at
most ``max_skew`` apart.  When they are further apart, the *older* frame is dropped:
the other side only produces newer frames, so the older one's skew could only grow —
waiting would add latency and never a better match.  This greedy rule is exactly
"nearest timestamp" for time-ordered streams, with no buffering beyond one frame.

Replayed files read as fast as they are fused (``realtime=False``) carry read times, not
capture times: they are paired by their place in the file instead - frame i with frame i
when both files have the same rate, else by file time (frame number × period), with the
same drop-the-older rule and half the shorter period as tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass

from pf_stream.frames import Frame

SIDES = ("ir", "vis")


@dataclass
class Pair:
    ir: Frame
    vis: Frame
    skew_s: float  # vis.timestamp - ir.timestamp
    picked_at: float  # when the first of the two frames was taken from its source (monotonic)
    capture_wait_s: float  # mean time the two frames waited in their sources' slots


class Pairer:
    def __init__(self, max_skew_s: float = 0.020, by: str = "timestamp", periods: dict[str, float] | None = None):
        if by not in ("timestamp", "sequence"):
            raise ValueError(by)
        self.max_skew_s = max_skew_s
        self.by = by
        # sequence mode: seconds per frame of each side (files of different rates); None = same rate
        self.periods = periods
        self.dropped = 0  # frames discarded without a partner
        self.last_rejected_skew_s: float | None = None  # |skew| of the last pair refused as too far apart
        self._held: dict[str, tuple[Frame, float] | None] = {side: None for side in SIDES}

    def holds(self, side: str) -> bool:
        return self._held[side] is not None

    def offer(self, side: str, frame: Frame, now: float) -> None:
        """Hand over a frame just read from ``side``'s source at time ``now``."""
        if self._held[side] is not None:
            self.dropped += 1  # a newer frame of the same side arrived before a partner did
        self._held[side] = (frame, now)

    def pop(self) -> Pair | None:
        """The next pair, or None while a side is missing (or the older frame was just dropped)."""
        ir_held, vis_held = self._held["ir"], self._held["vis"]
        if ir_held is None or vis_held is None:
            return None
        (ir, ir_picked), (vis, vis_picked) = ir_held, vis_held
        if self.by == "sequence":
            if self.periods is None:
                ir_at, vis_at, tolerance = ir.seq, vis.seq, 0.0
            else:  # files of different rates: frame i of a 9 Hz IR is not frame i of a 30 Hz VIS
                ir_at, vis_at = ir.seq * self.periods["ir"], vis.seq * self.periods["vis"]
                tolerance = min(self.periods.values()) / 2 + 1e-9
            if abs(vis_at - ir_at) > tolerance:
                self._drop_side("ir" if ir_at < vis_at else "vis")
                return None
        else:
            skew = vis.timestamp - ir.timestamp
            if abs(skew) > self.max_skew_s:
                self.last_rejected_skew_s = abs(skew)
                self._drop_side("ir" if skew > 0 else "vis")
                return None
        self._held = {side: None for side in SIDES}
        wait = ((ir_picked - ir.timestamp) + (vis_picked - vis.timestamp)) / 2.0
        return Pair(ir=ir, vis=vis, skew_s=vis.timestamp - ir.timestamp, picked_at=min(ir_picked, vis_picked),
                    capture_wait_s=max(wait, 0.0))

    def take_single(self, side: str) -> Frame | None:
        """Give up waiting for a partner: the held frame of ``side`` (used while the other side has NO SIGNAL)."""
        held, self._held[side] = self._held[side], None
        return held[0] if held else None

    def clear(self, side: str) -> None:
        if self._held[side] is not None:
            self.dropped += 1
            self._held[side] = None

    def _drop_side(self, side: str) -> None:
        self._held[side] = None
        self.dropped += 1
