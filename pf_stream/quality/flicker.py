"""Temporal stability of a fused video: does the fuser add frame-to-frame change of its own?

Still-image metrics cannot see flicker.  For a sequence of frames we measure the mean
absolute change of the fused video between consecutive frames and divide it by the
change the inputs carry, taken per pixel as the larger of the IR and the VIS change:

    ratio = mean |F_t - F_(t-1)|  /  mean max(|IR_t - IR_(t-1)|, |VIS_t - VIS_(t-1)|)

Why that envelope: any pixel-wise average or maximum of the two inputs moves by at most
that much (both are 1-Lipschitz in the larger input change), so those baselines score
<= 1.  A ratio above 1 means the fuser adds temporal change that neither camera has:
flicker, or a contrast gain that amplifies motion.  All values are in 8-bit gray levels,
measured on the same 8-bit images the still metrics use.

A sequence is a folder with ``ir/`` and ``vi/`` frame images of matching names (sorted
by name: m3svd_clips) or with ``ir.mp4`` and ``vi.mp4`` (frames paired by index:
m3svd_videos).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.quality.evaluate import fuse_pair
from pf_stream.quality.fusers import Fuser
from pf_stream.quality.metrics import to_gray8
from pf_stream.quality.pairs import IR_DIR, VIS_DIR, discover_pairs, load_pair

VIDEO_NAMES = ("ir.mp4", "vi.mp4")
SEQUENCE_HINT = "a folder with ir/ and vi/ frame folders or ir.mp4 and vi.mp4, or a folder of such folders"


@dataclass(frozen=True)
class FlickerResult:
    name: str
    frames: int
    fused_change: float  # mean |F_t - F_(t-1)|
    ir_change: float  # mean |IR_t - IR_(t-1)|
    vis_change: float  # mean |VIS_t - VIS_(t-1)|
    input_change: float  # mean of the per-pixel max of the two input changes
    ratio: float  # fused_change / input_change; NaN when the inputs never change

    def as_dict(self) -> dict:
        return asdict(self)


def is_sequence(folder: Path) -> bool:
    folder = Path(folder)
    videos = all((folder / name).is_file() for name in VIDEO_NAMES)
    frames = (folder / IR_DIR).is_dir() and (folder / VIS_DIR).is_dir()
    return videos or frames


def find_sequences(root: Path) -> list[Path]:
    """``root`` itself when it is a sequence, else its sequence subfolders (sorted)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root} is not a folder: point --sequence at {SEQUENCE_HINT}")
    if is_sequence(root):
        return [root]
    found = [sub for sub in sorted(root.iterdir()) if sub.is_dir() and is_sequence(sub)]
    if not found:
        raise UserError(f"no sequence found in {root}: point --sequence at {SEQUENCE_HINT}")
    return found


def _video_frames(folder: Path, max_frames: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    # OpenCV's FFmpeg prints its own errors ("moov atom not found") on stderr; the UserError
    # below already says what is wrong, in one line.  Read at the first capture, so set it here.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    captures = [cv2.VideoCapture(str(folder / name)) for name in VIDEO_NAMES]
    try:
        for cap, name in zip(captures, VIDEO_NAMES):
            if not cap.isOpened():
                raise UserError(f"cannot open video {folder / name}: not a video OpenCV can decode")
        count = 0
        while max_frames is None or count < max_frames:
            (ok_ir, ir), (ok_vis, vis) = captures[0].read(), captures[1].read()
            if not (ok_ir and ok_vis):
                return  # the shorter video ends the sequence
            if ir.shape[:2] != vis.shape[:2]:
                raise UserError(f"{folder}: ir.mp4 and vi.mp4 differ in frame size ({ir.shape[1]}x{ir.shape[0]} vs {vis.shape[1]}x{vis.shape[0]})")
            yield to_gray8(ir), to_gray8(vis)
            count += 1
    finally:
        for cap in captures:
            cap.release()


def sequence_frames(folder: Path, max_frames: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """8-bit gray (IR, VIS) frame pairs of one sequence, in time order."""
    folder = Path(folder)
    if all((folder / name).is_file() for name in VIDEO_NAMES):
        yield from _video_frames(folder, max_frames)
        return
    pairs = discover_pairs(folder)
    for pair in pairs[:max_frames] if max_frames is not None else pairs:
        loaded = load_pair(pair)
        yield loaded.ir, loaded.vis


def measure_flicker(name: str, frames: Iterator[tuple[np.ndarray, np.ndarray]], fuser: Fuser) -> FlickerResult:
    """Fuse the frames in order and compare the fused video's temporal change with the inputs'."""
    sums = {"fused": 0.0, "ir": 0.0, "vis": 0.0, "input": 0.0}
    count = pixels = 0
    prev: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    for ir8, vis8 in frames:
        fused = fuse_pair(fuser, ir8, vis8).astype(np.int16)
        ir, vis = ir8.astype(np.int16), vis8.astype(np.int16)
        if prev is not None:
            if prev[0].shape != fused.shape:
                raise UserError(f"sequence {name}: frame {count} changes size from the frame before it")
            d_fused, d_ir, d_vis = (np.abs(now - before) for now, before in zip((fused, ir, vis), prev))
            sums["fused"] += float(d_fused.sum())
            sums["ir"] += float(d_ir.sum())
            sums["vis"] += float(d_vis.sum())
            sums["input"] += float(np.maximum(d_ir, d_vis).sum())
            pixels += fused.size
        prev = (fused, ir, vis)
        count += 1
    if count < 2:
        raise UserError(f"sequence {name} has {count} frame(s); the flicker metric needs at least 2")
    means = {key: total / pixels for key, total in sums.items()}
    ratio = means["fused"] / means["input"] if means["input"] > 0 else float("nan")
    return FlickerResult(name, count, means["fused"], means["ir"], means["vis"], means["input"], ratio)
