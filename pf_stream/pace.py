"""How often something usually happens (a camera's frames, the frames an output receives),
from the gaps between its last few events.

Used where a fixed "nothing for N seconds means it is gone" rule would be wrong for slow
feeds: a 0.5 fps thermal camera is slow, not lost.  The typical gap is the lower median of
the last ``window`` gaps, so one long stall does not become the usual pace.
"""

from __future__ import annotations

from collections import deque


class Pace:
    def __init__(self, window: int = 8):
        self._gaps: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self.typical_s: float | None = None  # None until two events were seen; one float, read without a lock

    def note(self, at: float) -> None:
        """An event happened at ``at`` (time.monotonic() seconds)."""
        if self._last is not None:
            self._gaps.append(at - self._last)
            ordered = sorted(self._gaps)
            self.typical_s = ordered[(len(ordered) - 1) // 2]
        self._last = at

    def restart(self) -> None:
        """The next gap does not count (e.g. across a reconnect: the outage is not the pace)."""
        self._last = None
