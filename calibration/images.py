"""Reading calibration pictures: gray 8-bit out, one-line errors for anything unusable."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}
BLANK_STD = 1.0  # gray levels: below this a picture carries no structure to calibrate on
MIN_SIDE = 16  # px: OpenCV's detectors and resizes fail (with a traceback) on pictures of a few pixels


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


def check_size(gray: np.ndarray, what: str) -> np.ndarray:
    h, w = gray.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{what} is {w}x{h} px, too small to calibrate on: give pictures at least {MIN_SIDE}x{MIN_SIDE}")
    return gray


def _decode(data: np.ndarray) -> tuple[np.ndarray | None, str]:
    """cv2.imdecode, with what the codec libraries print on the C stderr captured.

    Why: libjpeg reports a truncated file ("Premature end of JPEG file") by printing
    straight to file descriptor 2, beside our one-line error, and imread then returned the
    half picture padded with gray as if nothing were wrong.  imdecode refuses it.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 2)
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error:
            image = None
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        log.seek(0)
        said = log.read().decode(errors="replace").strip()
    return image, said


def read_gray(path: str | Path, what: str) -> np.ndarray:
    """Read a picture as gray uint8 (16-bit kept until the stretch); never blank or tiny."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} {path} not found")
    try:
        data = np.fromfile(path, np.uint8)
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    image, said = _decode(data) if data.size else (None, "")
    if image is None:
        raise UserError(f"{what} {path} is not a picture OpenCV can read, or is cut short or damaged: copy it again (PNG, JPEG, TIFF, ...)")
    if said:  # decoded, but the codec had something to say (e.g. a libpng colour-profile note)
        print(f"pf-calibrate: warning: {what} {path}: {' '.join(said.split())}", file=sys.stderr)
    return check_size(check_not_blank(to_gray8(image), f"{what} {path}"), f"{what} {path}")
