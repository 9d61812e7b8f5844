"""Reading calibration pictures: gray 8-bit out, one-line errors for anything unusable."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}
BLANK_STD = 1.0  # gray levels: below this a picture carries no structure to calibrate on


def to_gray8(image: np.ndarray) -> np.ndarray:
    """Gray uint8 from gray/BGR, 8- or 16-bit.

    16-bit thermal frames use a few hundred counts out of 65535; a 1-99 % percentile
    stretch keeps their edges (a plain >> 8 would flatten them to one gray level).
    """
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    if image.dtype == np.uint8:
        return image
    data = image.astype(np.float32)
    lo, hi = np.percentile(data, (1, 99))
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((data - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)


def check_not_blank(gray: np.ndarray, what: str) -> np.ndarray:
    if gray.size == 0 or float(gray.std()) < BLANK_STD:
        level = int(gray.mean()) if gray.size else 0
        raise UserError(f"{what} is blank (every pixel about {level}): check the camera, lens cap or file")
    return gray


def read_gray(path: str | Path, what: str) -> np.ndarray:
    """Read a picture as gray uint8 (16-bit kept until the stretch); never returns blank."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} not found")
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"{what} {path} is not a picture OpenCV can read (use PNG, JPEG, TIFF, ...)")
    return check_not_blank(to_gray8(image), f"{what} {path}")
