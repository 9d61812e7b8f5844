"""Fusion quality: the field's still-image metrics, a temporal flicker metric, and the pf-eval runner.

- metrics.py  one function per metric, on 8-bit gray numpy images (no torch)
- pairs.py    finding and reading ir/ + vi/ pairs
- fusers.py   what to fuse with: average / max / classic / any model via a backend
- evaluate.py fuse, score, table, JSON
- flicker.py  frame-to-frame change of a fused video relative to its inputs
"""

from pf_stream.quality.metrics import METRIC_NAMES, Scores, score_all

__all__ = ["METRIC_NAMES", "Scores", "score_all"]
