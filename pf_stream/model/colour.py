"""Colour helpers: the networks fuse luminance only; chroma comes from the visible camera.

All functions take and return numpy arrays; luminance is float32 in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np


def to_gray01(image: np.ndarray) -> np.ndarray:
    """Any 8/16-bit gray or BGR image -> float32 luminance in [0, 1] (BT.601, like OpenCV)."""
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.dtype == np.uint8 else image @ np.float32([0.114, 0.587, 0.299])
    elif image.ndim == 3:
        image = image[:, :, 0]
    scale = 65535.0 if image.dtype == np.uint16 else 255.0 if image.dtype == np.uint8 else 1.0
    return image.astype(np.float32) * np.float32(1.0 / scale)


def split_luma_chroma(vis_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """BGR uint8 -> (Y float32 [0,1], CrCb uint8 HxWx2); a gray VIS image has no chroma (None)."""
    if vis_bgr.ndim == 2 or vis_bgr.shape[2] == 1:
        return to_gray01(vis_bgr), None
    ycrcb = cv2.cvtColor(vis_bgr, cv2.COLOR_BGR2YCrCb)
    return ycrcb[:, :, 0].astype(np.float32) * np.float32(1 / 255.0), ycrcb[:, :, 1:]


def merge_luma_chroma(fused_y: np.ndarray, chroma: np.ndarray | None) -> np.ndarray:
    """Fused Y (float [0,1]) + VIS CrCb -> BGR uint8; without chroma, a gray BGR image."""
    # One OpenCV call scales, rounds and saturates (~4x faster than numpy). It takes |x|,
    # which is harmless here: every model clips its output to [0, 1].
    y8 = cv2.convertScaleAbs(fused_y, alpha=255.0)
    if chroma is None:
        return cv2.cvtColor(y8, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.dstack([y8, chroma]), cv2.COLOR_YCrCb2BGR)
