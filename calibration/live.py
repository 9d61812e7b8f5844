"""Grab IR/VIS pairs from two live sources (cameras, RTSP, video files) for calibration.

Uses pf-stream's own sources (``pf_stream.sources.open_source``), so every URI pf-stream
accepts works here too.  Each source keeps only its newest frame; a pair is the newest
frame of each, taken ``interval`` seconds after the previous pair so the person holding
the target has time to move it.  With ``accept`` (e.g. "the board is visible in both"),
pairs that fail it are dropped and grabbing goes on, up to ``max_tries`` pairs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np

from pf_stream.calibration.images import to_gray8
from pf_stream.errors import UserError
from pf_stream.sources.base import redact_uri

Pair = tuple[str, np.ndarray, np.ndarray]


def _default_opener(uri: str, role: str):
    import cv2

    from pf_stream.sources import open_source  # lazy: pulls in camera/RTSP back-ends

    # OpenCV's own C++ warnings ("[ WARN:0] ... can't be used to capture by name") would
    # print beside the one-line error when a source cannot be opened (as in pf-stream).
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return open_source(uri, role=role)


def grab_pairs(
    ir_uri: str,
    vis_uri: str,
    count: int,
    interval: float = 1.0,
    timeout: float = 5.0,
    accept: Callable[[np.ndarray, np.ndarray], bool] | None = None,
    max_tries: int | None = None,
    opener: Callable[[str], object] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Pair]:
    """``count`` gray (name, ir, vis) pairs; a source that gives no frame is a UserError."""
    if count < 1:
        raise UserError(f"--pairs must be at least 1, got {count}")
    max_tries = max_tries or 10 * count
    pairs: list[Pair] = []
    ir_open = opener or (lambda uri: _default_opener(uri, "IR"))  # the role names the source in errors
    vis_open = opener or (lambda uri: _default_opener(uri, "VIS"))
    with ir_open(ir_uri) as ir_src, vis_open(vis_uri) as vis_src:
        for attempt in range(max_tries):
            if attempt:
                sleep(interval)
            frames = []
            for what, uri, src in (("IR", ir_uri, ir_src), ("VIS", vis_uri, vis_src)):
                frame = src.read(timeout)
                if frame is None:
                    raise UserError(f"no {what} frame from {redact_uri(uri)} within {timeout:g} s: is the source running?")
                frames.append(to_gray8(frame.image))
            ir, vis = frames
            if accept is not None and not accept(ir, vis):
                print(f"pf-calibrate: pair {attempt + 1}: target not seen by both cameras, skipped", file=sys.stderr)
                continue
            pairs.append((f"live pair {len(pairs) + 1}", ir, vis))
            print(f"pf-calibrate: grabbed pair {len(pairs)}/{count}", file=sys.stderr)
            if len(pairs) == count:
                return pairs
    if not pairs:
        raise UserError(f"no usable pair in {max_tries} tries: is the target in view of both cameras?")
    print(f"pf-calibrate: warning: only {len(pairs)} of {count} usable pairs in {max_tries} tries", file=sys.stderr)
    return pairs
