"""What the viewer sees: the fused picture, or it beside its inputs, plus optional stats.

* ``fused``: the fused colour picture, VIS size.
* ``side-by-side``: IR (aligned) | VIS | fused, each full size (3W x H).
* ``quad``: 2x2 at half size (W x H, so it costs sinks no more than ``fused``):
  IR, VIS, fused, and an alignment check (IR edges in red over the gray VIS) that shows
  at a glance whether the calibration still holds.

A side without signal is drawn as a NO SIGNAL card, so viewers always get a picture.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX


def output_size(mode: str, vis_size: tuple[int, int]) -> tuple[int, int]:
    """(width, height) of the composed picture for VIS frames of ``vis_size``."""
    w, h = vis_size
    if mode == "side-by-side":
        return 3 * w, h
    if mode == "quad":
        return 2 * (w // 2), 2 * (h // 2)
    return w, h


@functools.lru_cache(maxsize=8)
def no_signal(width: int, height: int, text: str = "NO SIGNAL") -> np.ndarray:
    """A dark card with the words centred (cached: the same card every time; treat as read-only)."""
    card = np.full((height, width, 3), 32, np.uint8)
    scale = max(0.4, min(width, height) / 400.0)
    for i, line in enumerate(text.split("\n")):
        (tw, th), _ = cv2.getTextSize(line, FONT, scale, 2)
        y = height // 2 + int((i - 0.5 * (text.count("\n"))) * th * 1.8) + th // 2
        cv2.putText(card, line, ((width - tw) // 2, y), FONT, scale, (200, 200, 200), 2, cv2.LINE_AA)
    card.setflags(write=False)
    return card


def to_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        if image.dtype != np.uint8:
            image = (image >> 8).astype(np.uint8)
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image if image.dtype == np.uint8 else (image >> 8).astype(np.uint8)


def compose(mode: str, fused: np.ndarray | None, ir: np.ndarray | None, vis: np.ndarray | None,
            size: tuple[int, int], labels: bool = True) -> np.ndarray:
    """Lay out the output picture; ``None`` panels (a side without signal) become NO SIGNAL cards.

    fused/vis: BGR uint8 at ``size``; ir: gray uint8 already aligned to ``size`` (width, height).
    """
    w, h = size
    if mode == "fused" and fused is not None:
        return fused  # the common live case: no IR conversion, no copy
    ir_bgr = to_bgr(ir) if ir is not None else None
    if mode == "fused":
        live = vis if vis is not None else ir_bgr
        if live is None:
            return no_signal(w, h).copy()
        out = live.copy()
        _banner(out, "NO SIGNAL: " + ("IR" if vis is not None else "VIS"))
        return out
    panels = [
        (ir_bgr, "IR"),
        (vis, "VIS"),
        (fused, "FUSED"),
    ]
    if mode == "side-by-side":
        tiles = [_panel(img, name, w, h, labels) for img, name in panels]
        return np.hstack(tiles)
    # quad: half-size tiles
    qw, qh = w // 2, h // 2
    halves = [(_half(img, qw, qh), name) for img, name in panels]
    ir_half = _half(ir, qw, qh) if ir is not None else None
    check = _alignment_check(ir_half, halves[1][0]) if ir is not None and vis is not None else None
    tiles = [_panel(img, name, qw, qh, labels) for img, name in halves + [(check, "ALIGNMENT")]]
    return np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])


def _half(img: np.ndarray | None, w: int, h: int) -> np.ndarray | None:
    return None if img is None else cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def _panel(img: np.ndarray | None, name: str, w: int, h: int, labels: bool) -> np.ndarray:
    if img is None:
        return no_signal(w, h, f"NO SIGNAL\n{name}") if name in ("IR", "VIS") else no_signal(w, h, "NO SIGNAL")
    if labels:
        img = img.copy()
        cv2.putText(img, name, (8, 22), FONT, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, name, (8, 22), FONT, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def _alignment_check(ir: np.ndarray, vis_bgr: np.ndarray) -> np.ndarray:
    """IR edges in red over the gray VIS: edges that coincide mean a good calibration."""
    gray = cv2.cvtColor(vis_bgr, cv2.COLOR_BGR2GRAY)
    out = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    edges = cv2.Canny(ir, 60, 160) > 0
    out[edges] = (0, 0, 255)
    return out


def _banner(img: np.ndarray, text: str) -> None:
    cv2.rectangle(img, (0, 0), (img.shape[1], 30), (0, 0, 0), -1)
    cv2.putText(img, text, (8, 21), FONT, 0.6, (80, 80, 255), 1, cv2.LINE_AA)


def draw_overlay(img: np.ndarray, lines: list[str]) -> np.ndarray:
    """Stats text in the bottom-left corner, readable on any background (draws in place)."""
    y = img.shape[0] - 10 - 20 * (len(lines) - 1)
    for line in lines:
        cv2.putText(img, line, (8, y), FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, line, (8, y), FONT, 0.5, (0, 255, 0), 1, cv2.LINE_AA)
        y += 20
    return img
