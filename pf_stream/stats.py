"""Run statistics: per-stage latency, glass-to-glass latency, FPS, drops, skew, CPU, memory.

Everything lives in fixed-size ring buffers, so memory stays flat however long a run
lasts.  The summary and --stats-json take percentiles over the most recent samples (65536
latency samples: 36 minutes at 30 FPS), means and counters over the whole run; the periodic
log line takes them over its own interval, so drift shows; the overlay over the last frames.

Stages, in the order a frame goes through them:
  capture   - a captured frame waiting in its source's latest-frame slot
  pair      - the first frame of a pair waiting for its partner
  normalise - thermal AGC (and CLAHE) on the IR, luma/chroma split of the VIS
  align     - IR warped / resized into the VIS frame
  fuse      - the model (backend.fuse)
  compose   - colour (fused Y + VIS chroma) and the view layout
  output    - a sink writing the frame (in the sink's own thread)
Glass-to-glass latency = from the capture timestamp of the older frame of the pair to
the moment a sink finished writing the output picture (every sink write is a sample).
"""

from __future__ import annotations

import collections
import os
import threading
import time

import numpy as np

STAGES = ("capture", "pair", "normalise", "align", "fuse", "compose", "output")


class Ring:
    """The last ``size`` float samples, plus a whole-run sum and count for the mean."""

    def __init__(self, size: int):
        self.buf = np.zeros(size, np.float64)
        self.n = 0  # samples ever added
        self.total = 0.0

    def add(self, value: float) -> None:
        self.buf[self.n % self.buf.size] = value
        self.n += 1
        self.total += value

    def values(self) -> np.ndarray:
        return self.buf[: min(self.n, self.buf.size)]

    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    def percentiles(self, qs=(50, 95, 99), since: int | None = None) -> dict[str, float] | None:
        """Over every sample kept, or only those added after the first ``since`` ever added."""
        if since is None:
            values = self.values()
        else:
            k = min(self.n - since, self.buf.size)
            values = self.buf[np.arange(self.n - k, self.n) % self.buf.size] if k > 0 else self.buf[:0]
        if not values.size:
            return None
        return {f"p{q}": float(v) for q, v in zip(qs, np.percentile(values, qs))}


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000.0, 3)


def rss_mb() -> float | None:
    """Resident memory of this process now (Linux /proc; None elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return None


class PipelineStats:
    def __init__(self, window: int = 4096, latency_window: int = 65536):
        self._lock = threading.Lock()  # sink threads report too
        self.stages = {name: Ring(window) for name in STAGES}
        self.latency = Ring(latency_window)
        self.skew = Ring(window)
        self.fused = 0  # output pictures made from an IR+VIS pair
        self.single = 0  # ... from one side while the other had NO SIGNAL
        self.blank = 0  # NO SIGNAL cards while both sides were down
        self.started = time.monotonic()
        self.first_output: float | None = None
        self.last_output: float | None = None
        self._cpu0 = time.process_time()
        self._rss0 = rss_mb()
        self._tick = (self.started, 0, self._cpu0, {})  # time, outputs, CPU, samples per ring: the log line's interval
        self._recent: collections.deque[float] = collections.deque(maxlen=60)  # output times, for the overlay FPS

    @property
    def outputs(self) -> int:
        return self.fused + self.single + self.blank

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name].add(seconds)

    def pair(self, skew_s: float, capture_wait_s: float, pair_wait_s: float) -> None:
        with self._lock:
            self.skew.add(abs(skew_s))
            self.stages["capture"].add(capture_wait_s)
            self.stages["pair"].add(pair_wait_s)

    def output(self, kind: str) -> None:
        """One picture handed to the sinks; kind: fused | single | blank."""
        now = time.monotonic()
        with self._lock:
            setattr(self, kind, getattr(self, kind) + 1)
            if self.first_output is None:
                self.first_output = now
            self.last_output = now
            self._recent.append(now)

    def written(self, capture_ts: float, write_s: float) -> None:
        """A sink finished writing a frame captured at ``capture_ts`` (called from sink threads)."""
        now = time.monotonic()
        with self._lock:
            self.latency.add(now - capture_ts)
            self.stages["output"].add(write_s)

    def fps(self) -> float:
        if self.first_output is None or self.last_output is None or self.outputs < 2:
            return 0.0
        span = self.last_output - self.first_output
        return (self.outputs - 1) / span if span > 0 else 0.0

    def snapshot(self, sources: dict | None = None, pair_dropped: int = 0, sinks: dict | None = None) -> dict:
        """Everything, JSON-ready (milliseconds, counts)."""
        now = time.monotonic()
        with self._lock:
            lat = self.latency.percentiles()
            elapsed = now - self.started
            cpu = (time.process_time() - self._cpu0) / elapsed * 100.0 if elapsed > 0 else 0.0
            sources = sources or {}
            sinks = sinks or {}
            dropped = {
                "capture": sum(s.get("dropped", 0) for s in sources.values()),
                "pairing": pair_dropped,
                "sinks": sum(s.get("dropped", 0) for s in sinks.values()),
            }
            return {
                "frames": self.outputs,
                "fused": self.fused,
                "single_side": self.single,
                "no_signal": self.blank,
                "elapsed_s": round(elapsed, 3),
                "fps": round(self.fps(), 2),
                "latency_ms": {k: round(v * 1000.0, 2) for k, v in lat.items()} if lat else None,
                "latency_mean_ms": _ms(self.latency.mean()),
                "stages_ms": {name: _ms(ring.mean()) for name, ring in self.stages.items()},
                "stages_p95_ms": {name: _ms((ring.percentiles((95,)) or {}).get("p95")) for name, ring in self.stages.items()},
                "skew_ms": {"mean": _ms(self.skew.mean()), "max": _ms(float(self.skew.values().max())) if self.skew.n else None},
                "dropped": sum(dropped.values()),
                "dropped_by": dropped,
                "corrupt_frames": sum(s.get("errors", 0) for s in sources.values()),
                "sources": sources,
                "sinks": sinks,
                "cpu_percent": round(cpu, 1),
                "rss_mb": {"start": _round(self._rss0), "now": _round(rss_mb())},
            }

    def log_line(self, pair_dropped: int = 0, source_drops: int = 0, sink_drops: int = 0) -> str:
        """One line for the periodic headless log: interval FPS and CPU, recent latencies."""
        now, cpu_now = time.monotonic(), time.process_time()
        with self._lock:
            t0, n0, c0, seen = self._tick
            rings = {"latency": self.latency, "fuse": self.stages["fuse"], "skew": self.skew}
            self._tick = (now, self.outputs, cpu_now, {name: ring.n for name, ring in rings.items()})
            dt = max(now - t0, 1e-6)
            lat = self.latency.percentiles((50, 95), since=seen.get("latency", 0)) or {"p50": 0.0, "p95": 0.0}
            fuse = self.stages["fuse"].percentiles((50,), since=seen.get("fuse", 0)) or {"p50": 0.0}
            skew = self.skew.percentiles((50,), since=seen.get("skew", 0)) or {"p50": 0.0}
            return (f"{(self.outputs - n0) / dt:5.1f} fps | glass-to-glass p50 {lat['p50'] * 1e3:.0f} ms p95 {lat['p95'] * 1e3:.0f} ms"
                    f" | fuse {fuse['p50'] * 1e3:.1f} ms | skew {skew['p50'] * 1e3:.1f} ms"
                    f" | dropped capture {source_drops} pairing {pair_dropped} sinks {sink_drops}"
                    f" | cpu {(cpu_now - c0) / dt * 100:.0f}%")

    def overlay_lines(self) -> list[str]:
        with self._lock:
            # Drawn on every frame: the last 60 samples are what the picture should show, and a
            # percentile over the whole 65536-sample ring would cost ~1 ms a frame.
            lat = self.latency.percentiles((50,), since=max(0, self.latency.n - 60)) or {"p50": 0.0}
            fuse = self.stages["fuse"].percentiles((50,), since=max(0, self.stages["fuse"].n - 60)) or {"p50": 0.0}
            recent = list(self._recent)
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        return [f"{fps:.1f} fps  latency {lat['p50'] * 1e3:.0f} ms", f"fuse {fuse['p50'] * 1e3:.1f} ms"]


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 1)
