"""Run statistics: ring percentiles over an interval, the periodic line following drift."""

from __future__ import annotations

import re

import numpy as np
import pytest

from pf_stream.stats import PipelineStats, Ring


def test_ring_percentiles_since_a_sample_count_wrap_around():
    ring = Ring(8)
    for v in range(20):  # the buffer wraps twice; it keeps 12..19
        ring.add(float(v))
    assert ring.percentiles((50,)) == {"p50": pytest.approx(15.5)}
    assert ring.percentiles((0, 100), since=17) == {"p0": 17.0, "p100": 19.0}  # the 3 newest
    assert ring.percentiles((0,), since=5) == {"p0": 12.0}  # older than kept: what is kept
    assert ring.percentiles((50,), since=20) is None  # nothing new
    assert ring.mean() == pytest.approx(np.mean(range(20)))


def test_periodic_line_shows_latency_drift_the_summary_smooths():
    stats = PipelineStats()
    for _ in range(500):  # a long good hour...
        stats.latency.add(0.040)
    first = stats.log_line()
    for _ in range(50):  # ... then the latency climbs
        stats.latency.add(0.200)
    second = stats.log_line()
    p50 = [int(re.search(r"glass-to-glass p50 (\d+) ms", line).group(1)) for line in (first, second)]
    assert p50 == [40, 200]  # the interval's own samples
    assert stats.snapshot()["latency_ms"]["p50"] == pytest.approx(40.0)  # the whole window: still 40
