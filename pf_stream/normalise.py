"""Thermal normalisation: any IR frame (8/16-bit, gray or 3-channel) -> 8-bit gray.

Raw 16-bit thermal counts sit in a narrow band (a few thousand counts out of 65536), so
a fixed scaling shows a flat gray picture.  Percentile AGC maps the ``low``..``high``
percentiles of the frame's histogram to 0..255, ignoring a few hot or cold outliers.
The bounds follow the scene through an exponential moving average, so the picture does
not pump when a warm object enters.  Optional CLAHE adds local contrast afterwards.

``mode``: ``auto`` stretches 16-bit frames always and 8-bit frames only when their
percentile spread is below ``min_contrast`` (already well-exposed IR is left alone);
``always`` stretches everything; ``off`` only converts (16-bit: full range to 8 bits).
"""

from __future__ import annotations

import cv2
import numpy as np

from pf_stream.config import NormaliseConfig


class Normaliser:
    def __init__(self, cfg: NormaliseConfig | None = None):
        self.cfg = cfg or NormaliseConfig()
        self._bounds: tuple[float, float] | None = None  # smoothed (low, high) in input units
        self._clahe = (cv2.createCLAHE(clipLimit=self.cfg.clahe_clip, tileGridSize=(self.cfg.clahe_tiles,) * 2)
                       if self.cfg.clahe else None)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        gray = _to_gray(image)
        if self.cfg.mode == "off":
            out = gray if gray.dtype == np.uint8 else (gray >> 8).astype(np.uint8)
        else:
            out = self._agc(gray)
        if self._clahe is not None:
            out = self._clahe.apply(out)
        return out

    def _agc(self, gray: np.ndarray) -> np.ndarray:
        c = self.cfg
        deep = gray.dtype != np.uint8
        levels = 65536 if deep else 256
        # A histogram of every 4th pixel in each direction is plenty for percentiles and ~16x cheaper.
        hist = np.bincount(gray[::4, ::4].ravel(), minlength=levels)
        cdf = np.cumsum(hist)
        lo = float(np.searchsorted(cdf, cdf[-1] * c.low_percentile / 100.0))
        hi = float(np.searchsorted(cdf, cdf[-1] * c.high_percentile / 100.0))
        if c.mode == "auto" and not deep and hi - lo >= c.min_contrast:
            lo, hi = 0.0, 255.0  # well exposed: leave it alone (moved to smoothly, no jump)
        hi = max(hi, lo + (16.0 if deep else 4.0))  # a flat frame must not explode its noise
        if self._bounds is None:
            self._bounds = (lo, hi)
        else:
            a = c.smoothing
            self._bounds = (a * self._bounds[0] + (1 - a) * lo, a * self._bounds[1] + (1 - a) * hi)
        lo, hi = self._bounds
        lut = np.clip((np.arange(levels, dtype=np.float32) - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
        return cv2.LUT(gray, lut) if not deep else lut[gray]


def _to_gray(image: np.ndarray) -> np.ndarray:
    """HxW gray of the same bit depth; 3-channel frames (IR videos) are gray in content."""
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[:, :, 0]
        if image.dtype == np.uint8:
            return cv2.cvtColor(image[:, :, :3], cv2.COLOR_BGR2GRAY)
        return image[:, :, 0]
    if image.dtype not in (np.uint8, np.uint16):
        # float frames from exotic sources: assume [0, 1]
        return np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return image
