"""A picture to judge an alignment by eye: checkerboard mosaic | false-colour blend.

Left half: tiles alternate between VIS and the warped IR, so a misalignment shows as
broken lines at tile borders.  Right half: VIS in green, warped IR in magenta; where the
two agree edges look gray/white, where they do not a coloured double edge appears.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError


def _equalise(gray: np.ndarray) -> np.ndarray:
    # Equalised contrast keeps a dim thermal picture from vanishing next to a bright VIS one.
    return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(gray)


def make_overlay(ir: np.ndarray, vis: np.ndarray, homography: np.ndarray, tiles: int = 8) -> np.ndarray:
    """BGR picture, twice the VIS width: checkerboard mosaic and green/magenta blend."""
    h, w = vis.shape[:2]
    warped = cv2.warpPerspective(_equalise(ir), homography, (w, h), flags=cv2.INTER_LINEAR)
    valid = cv2.warpPerspective(np.full(ir.shape[:2], 255, np.uint8), homography, (w, h), flags=cv2.INTER_NEAREST) > 0
    vis_eq = _equalise(vis)
    tile = max(8, max(w, h) // tiles)
    yy, xx = np.mgrid[0:h, 0:w]
    use_ir = (((yy // tile) + (xx // tile)) % 2 == 1) & valid
    mosaic = np.where(use_ir, warped, vis_eq)
    blend = np.dstack([warped, vis_eq, warped])  # B, G, R: IR -> magenta, VIS -> green
    return np.hstack([cv2.cvtColor(mosaic, cv2.COLOR_GRAY2BGR), blend])


OVERLAY_SUFFIXES = (".png", ".jpg", ".jpeg")


def write_overlay(path: str | Path, ir: np.ndarray, vis: np.ndarray, homography: np.ndarray) -> None:
    """Write the overlay atomically: encoded in memory, written beside, then renamed, so a
    failure or Ctrl-C never leaves half a picture (or a truncated older one)."""
    path = Path(path)
    if path.suffix.lower() not in OVERLAY_SUFFIXES:
        raise UserError(f"--overlay {path}: name it .png or .jpg")
    ok, data = cv2.imencode(path.suffix.lower(), make_overlay(ir, vis, homography))
    if not ok:
        raise UserError(f"cannot encode overlay {path}: name it .png")
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.tobytes())
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write overlay {path}: {exc.strerror or exc}; choose another --overlay") from None
