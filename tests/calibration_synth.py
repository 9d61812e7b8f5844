"""Synthetic calibration pictures with exact ground truth (shared by the calibration tests).

A target is drawn once in "board" coordinates, then warped into the VIS frame and, through
a known IR -> VIS homography, into the IR frame.  The IR copy is degraded the way a heated
target looks to a thermal core: inverted contrast, blur, noise, lower resolution.
"""

from __future__ import annotations

import cv2
import numpy as np

VIS_SIZE = (640, 480)
IR_SIZE = (320, 256)
SQUARE = 40  # board px per chessboard square


def true_homography() -> np.ndarray:
    """IR px -> VIS px: 2x scale plus a little rotation, offset and perspective."""
    a = np.radians(1.5)
    h = np.array([[2.0 * np.cos(a), -2.0 * np.sin(a), 6.0], [2.0 * np.sin(a), 2.0 * np.cos(a), -9.0], [2e-5, -1e-5, 1.0]])
    return h / h[2, 2]


def chessboard(board: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Board picture (white margin of one square) and its inner corners in board px."""
    cols, rows = board
    img = np.full(((rows + 3) * SQUARE, (cols + 3) * SQUARE), 255, np.uint8)
    for r in range(rows + 1):
        for c in range(cols + 1):
            if (r + c) % 2 == 0:
                y, x = (r + 1) * SQUARE, (c + 1) * SQUARE
                img[y : y + SQUARE, x : x + SQUARE] = 0
    # A pixel's centre is at integer coordinates, so the corner between pixel rows
    # k-1 and k lies at k - 0.5.
    ys, xs = np.mgrid[1 : rows + 1, 1 : cols + 1]
    corners = np.stack([(xs.ravel() + 1) * SQUARE - 0.5, (ys.ravel() + 1) * SQUARE - 0.5], axis=1).astype(np.float64)
    return img, corners


def circle_grid(board: tuple[int, int], spacing: int = 36, radius: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Asymmetric circle grid (OpenCV layout: board = (per row, rows)) and its centres."""
    per_row, rows = board
    margin = 2 * spacing
    w, h = margin * 2 + (2 * per_row) * spacing, margin * 2 + rows * spacing
    big = 8  # draw 8x larger, then shrink: smooth, sub-pixel-exact discs
    img = np.full((h * big, w * big), 255, np.uint8)
    centres = []
    for i in range(rows):
        for j in range(per_row):
            x, y = margin + (2 * j + i % 2) * spacing, margin + i * spacing
            centres.append((x, y))
            cv2.circle(img, ((x * big + big // 2), (y * big + big // 2)), radius * big, 0, -1)
    img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img, np.asarray(centres, np.float64)


def board_placements(n: int, board_size: tuple[int, int]) -> list[np.ndarray]:
    """n board -> VIS homographies: the board seen at different places and tilts."""
    bw, bh = board_size
    src = np.float32([[0, 0], [bw, 0], [bw, bh], [0, bh]])
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        cx, cy = VIS_SIZE[0] * (0.32 + 0.36 * (i % 2)), VIS_SIZE[1] * (0.35 + 0.3 * ((i // 2) % 2))
        half_w = min(VIS_SIZE[0] * 0.27, VIS_SIZE[1] * 0.3 * bw / bh)
        half_h = half_w * bh / bw
        dst = np.float32([[cx - half_w, cy - half_h], [cx + half_w, cy - half_h], [cx + half_w, cy + half_h], [cx - half_w, cy + half_h]])
        dst += rng.uniform(-12, 12, dst.shape).astype(np.float32)
        out.append(cv2.getPerspectiveTransform(src, dst))
    return out


def degrade_ir(img: np.ndarray, seed: int) -> np.ndarray:
    """A heated target seen by a thermal core: inverted, blurred, noisy."""
    rng = np.random.default_rng(seed)
    out = cv2.GaussianBlur(255.0 - img.astype(np.float32), (0, 0), 1.2)
    out = 60 + out * 0.6 + rng.normal(0, 4.0, out.shape)
    return np.clip(out, 0, 255).astype(np.uint8)


def target_pairs(board_img: np.ndarray, n: int = 3) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, ir, vis) pairs of the board at n placements, IR degraded."""
    h_true = true_homography()
    pairs = []
    for i, to_vis in enumerate(board_placements(n, (board_img.shape[1], board_img.shape[0]))):
        vis = cv2.warpPerspective(board_img, to_vis, VIS_SIZE, flags=cv2.INTER_AREA, borderValue=200)
        to_ir = np.linalg.inv(h_true) @ to_vis
        ir = cv2.warpPerspective(board_img, to_ir, IR_SIZE, flags=cv2.INTER_AREA, borderValue=200)
        pairs.append((f"pair{i}", degrade_ir(ir, i), vis))
    return pairs


def shapes_scene(seed: int = 3, size: tuple[int, int] = VIS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A scene of random shapes as two 'modalities': each shape gets unrelated gray levels
    in the two pictures (so polarity flips from shape to shape), IR is blurrier and noisier."""
    rng = np.random.default_rng(seed)
    w, h = size
    vis = np.full((h, w), 120, np.float32)
    ir = np.full((h, w), 90, np.float32)
    for _ in range(45):
        kind = rng.integers(3)
        x, y = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        p, q = int(rng.uniform(15, 140)), int(rng.uniform(15, 140))
        x2, y2, thick = int(rng.uniform(0, w)), int(rng.uniform(0, h)), int(rng.uniform(3, 9))
        for img, level in ((vis, rng.uniform(0, 255)), (ir, rng.uniform(0, 255))):
            if kind == 0:
                cv2.rectangle(img, (x, y), (x + p, y + q), float(level), -1)
            elif kind == 1:
                cv2.circle(img, (x, y), p // 2, float(level), -1)
            else:
                cv2.line(img, (x, y), (x2, y2), float(level), thick)
    vis = np.clip(vis + rng.normal(0, 3, vis.shape), 0, 255).astype(np.uint8)
    ir = np.clip(cv2.GaussianBlur(ir, (0, 0), 1.5) + rng.normal(0, 5, ir.shape), 0, 255).astype(np.uint8)
    return ir, vis
