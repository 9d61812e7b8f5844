"""``--method target``: a checkerboard or asymmetric circle grid seen by both cameras.

A heated (or cooled) target shows in the thermal image, often with its contrast inverted
(warm black squares look bright), so detection tries both polarities.  Each detected pair
gives point correspondences IR corner -> VIS corner; the homography is fitted by RANSAC
over the corners of all pairs together, and the RMS reprojection error of the inliers is
reported in VIS pixels.

A homography maps the two images exactly only for one plane (or for cameras sharing an
optical centre); move the target around at the working distance so the fit averages over
the scene you care about, and read the RMS error as the price of parallax.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import cv2
import numpy as np

from pf_stream.calibration.geometry import fit_model, rms_error
from pf_stream.errors import UserError, check_choice

PATTERNS = ("chessboard", "circles")
RANSAC_PX = 3.0  # VIS px: corners further than this from the fit are outliers
SMALL_IMAGE = 480  # thermal cores are often 160-384 px wide; upsample those before detection


@dataclass
class TargetResult:
    homography: np.ndarray  # IR px -> VIS px
    rms_px: float  # RMS reprojection error of the inlier corners, VIS px
    pairs_used: int
    inliers: int
    corners: int


def parse_board(text: str) -> tuple[int, int]:
    """'9x6' -> (9, 6): inner corners (chessboard) or circles (grid) per row and column."""
    try:
        cols, rows = (int(v) for v in text.lower().split("x"))
    except (ValueError, AttributeError):
        raise UserError(f"malformed --board {text!r}: write COLSxROWS, e.g. 9x6 (inner corners of a chessboard)") from None
    if cols < 2 or rows < 2 or cols * rows < 6:
        raise UserError(f"--board {text!r} is too small: at least 2x3 corners or circles")
    return cols, rows


def _find(gray: np.ndarray, board: tuple[int, int], pattern: str) -> np.ndarray | None:
    if pattern == "circles":
        # The default blob detector looks for dark blobs; the inverted pass finds bright ones.
        ok, pts = cv2.findCirclesGrid(gray, board, flags=cv2.CALIB_CB_ASYMMETRIC_GRID)
        return pts.reshape(-1, 2).astype(np.float64) if ok else None
    ok, pts = cv2.findChessboardCornersSB(gray, board, flags=cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY)
    if not ok:  # the classic detector copes better with some blurred thermal boards
        ok, pts = cv2.findChessboardCorners(gray, board, flags=cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
        if ok:
            pts = cv2.cornerSubPix(gray, pts, (5, 5), (-1, -1), (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 0.01))
    return pts.reshape(-1, 2).astype(np.float64) if ok else None


def detect(gray: np.ndarray, board: tuple[int, int], pattern: str = "chessboard") -> np.ndarray | None:
    """Board points in image pixels, (cols*rows, 2), or None; tries both contrast polarities."""
    check_choice("pattern", pattern, PATTERNS)
    scale = 2.0 if max(gray.shape) < SMALL_IMAGE else 1.0
    img = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) if scale != 1.0 else gray
    for candidate in (img, 255 - img):
        pts = _find(candidate, board, pattern)
        if pts is not None:
            # Pixel centres: x_small = (x_big + 0.5) / scale - 0.5.
            return (pts + 0.5) / scale - 0.5
    return None


def _orderings(board: tuple[int, int]) -> list[np.ndarray]:
    """Index permutations under which the grid looks the same (the detector may pick any)."""
    cols, rows = board
    grid = np.arange(cols * rows).reshape(rows, cols)
    perms = [grid, grid[::-1, ::-1]]  # as found, and turned 180 degrees
    if cols == rows:
        perms += [np.rot90(grid, 1), np.rot90(grid, 3)]
    return [p.ravel() for p in perms]


def match_order(ir_pts: np.ndarray, vis_pts: np.ndarray, board: tuple[int, int]) -> np.ndarray:
    """Reorder IR points to correspond with VIS points.

    Inverted contrast can make the detector start from the opposite corner.  A grid turned
    by 180 degrees fits a homography just as well, so the fit error cannot decide; the
    cameras of a rig are mounted upright, so keep the ordering whose mapping rotates least.
    """
    best, best_angle = ir_pts, np.inf
    for perm in _orderings(board):
        cand = ir_pts[perm]
        h, _ = fit_model(cand, vis_pts, "similarity")
        angle = abs(np.arctan2(h[1, 0], h[0, 0]))
        if angle < best_angle:
            best, best_angle = cand, angle
    return best


def calibrate(
    pairs: list[tuple[str, np.ndarray, np.ndarray]], board: tuple[int, int], pattern: str = "chessboard", model: str = "homography"
) -> TargetResult:
    """Fit IR -> VIS from (name, ir_gray, vis_gray) pairs showing the target."""
    src, dst, used, missing = [], [], 0, []
    for name, ir, vis in pairs:
        ir_pts, vis_pts = detect(ir, board, pattern), detect(vis, board, pattern)
        if ir_pts is None or vis_pts is None:
            missing.append(f"{name} ({'+'.join(w for w, p in (('IR', ir_pts), ('VIS', vis_pts)) if p is None)})")
            continue
        src.append(match_order(ir_pts, vis_pts, board))
        dst.append(vis_pts)
        used += 1
    what = f"{board[0]}x{board[1]} {pattern}"
    if not used:
        raise UserError(
            f"no {what} found in both images of any pair ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): "
            "check --board (inner corners for a chessboard), --pattern, and that the target is heated or cooled"
        )
    if missing:
        print(f"pf-calibrate: warning: no {what} in {len(missing)} of {len(pairs)} pairs: {', '.join(missing[:5])}", file=sys.stderr)
    src_all, dst_all = np.vstack(src), np.vstack(dst)
    h, inliers = fit_model(src_all, dst_all, model, ransac_px=RANSAC_PX)
    if inliers.sum() < 4:
        raise UserError(f"the {what} corners do not agree on one {model}: check that IR and VIS pictures were taken together")
    return TargetResult(h, rms_error(h, src_all[inliers], dst_all[inliers]), used, int(inliers.sum()), len(src_all))

