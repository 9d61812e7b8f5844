"""Plane-to-plane transforms shared by every method: models, fitting, errors.

Every transform here is a 3x3 matrix mapping IR pixels to VIS pixels, whatever the model:
an affine or similarity transform is a homography whose last row is [0, 0, 1].  That keeps
one representation from the point fits to the YAML to pf-stream's warp.
"""

from __future__ import annotations

import cv2
import numpy as np

from pf_stream.errors import UserError

MODELS = ("homography", "affine", "similarity")
MIN_POINTS = {"homography": 4, "affine": 3, "similarity": 2}


def project(h: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Apply a 3x3 transform to (N, 2) points."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    w = xy @ h[2, :2] + h[2, 2]
    return (xy @ h[:2, :2].T + h[:2, 2]) / w[:, None]


def image_corners(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    return np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]])


def corner_error(h_a: np.ndarray, h_b: np.ndarray, size: tuple[int, int]) -> float:
    """Mean distance, in output pixels, between where two transforms put the corners of a
    ``size`` = (width, height) image: the usual yardstick for homography accuracy."""
    c = image_corners(size)
    return float(np.linalg.norm(project(h_a, c) - project(h_b, c), axis=1).mean())


def folds(h: np.ndarray, size: tuple[int, int]) -> bool:
    """True when ``h`` sends part of a ``size`` = (width, height) picture through infinity.

    The projective denominator h20 x + h21 y + h22 is linear, so over the picture it keeps
    one sign exactly when it has that sign at all four corners.  A sign change means the
    picture is torn along a line mapped to infinity and its far side folded over: no
    camera pair sees that, but four point pairs with two rows swapped fit it exactly.
    """
    w = image_corners(size) @ h[2, :2] + h[2, 2]
    return not (np.all(w > 0) or np.all(w < 0))


def random_homography(size: tuple[int, int], rng: np.random.Generator, fraction: float = 0.02) -> np.ndarray:
    """A homography moving each image corner by up to ``fraction`` of the width."""
    src = image_corners(size).astype(np.float32)
    angle = rng.uniform(0.0, 2.0 * np.pi, 4)
    radius = rng.uniform(0.0, fraction * size[0], 4)
    dst = src + np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)
    return cv2.getPerspectiveTransform(src, dst)


def scale_matrix(sx: float, sy: float | None = None) -> np.ndarray:
    return np.diag([sx, sx if sy is None else sy, 1.0])


def normalise(h: np.ndarray) -> np.ndarray:
    return h / h[2, 2]


def fit_model(src: np.ndarray, dst: np.ndarray, model: str, ransac_px: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``model`` to point pairs src -> dst; returns (3x3 transform, inlier mask).

    With ``ransac_px`` outliers further than that from the model are rejected (RANSAC);
    without it every pair is used (least squares, for hand-picked points).
    """
    src = np.asarray(src, dtype=np.float64).reshape(-1, 2)
    dst = np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    need = MIN_POINTS[model]
    if len(src) < need:
        raise UserError(f"a {model} needs at least {need} point pairs, got {len(src)}")
    if model == "homography":
        method = cv2.RANSAC if ransac_px else 0
        h, mask = cv2.findHomography(src, dst, method, ransac_px or 3.0)
    elif ransac_px:
        fit = cv2.estimateAffine2D if model == "affine" else cv2.estimateAffinePartial2D
        a, mask = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=ransac_px, refineIters=20)
        h = None if a is None else np.vstack([a, [0.0, 0.0, 1.0]])
    else:
        h, mask = _least_squares(src, dst, model), None
    if h is None or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        raise UserError(f"the point pairs do not determine one {model} transform (are they all on one line, or repeated?)")
    mask = np.ones(len(src), bool) if mask is None else mask.ravel().astype(bool)
    return normalise(h), mask


def _least_squares(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray | None:
    """Plain least-squares affine or similarity transform (every pair counts)."""
    x, y = src[:, 0], src[:, 1]
    z, o = np.zeros_like(x), np.ones_like(x)
    if model == "affine":  # x' = a x + b y + c, y' = d x + e y + f
        rows = np.vstack([np.stack([x, y, o, z, z, z], 1), np.stack([z, z, z, x, y, o], 1)])
    else:  # x' = a x - b y + c, y' = b x + a y + d
        rows = np.vstack([np.stack([x, -y, o, z], 1), np.stack([y, x, z, o], 1)])
    p, _, rank, _ = np.linalg.lstsq(rows, np.concatenate([dst[:, 0], dst[:, 1]]), rcond=None)
    if rank < rows.shape[1]:
        return None
    if model == "affine":
        return np.array([[p[0], p[1], p[2]], [p[3], p[4], p[5]], [0.0, 0.0, 1.0]])
    return np.array([[p[0], -p[1], p[2]], [p[1], p[0], p[3]], [0.0, 0.0, 1.0]])


def rms_error(h: np.ndarray, src: np.ndarray, dst: np.ndarray) -> float:
    """Root-mean-square distance between h(src) and dst, in dst pixels."""
    d = project(h, src) - np.asarray(dst, dtype=np.float64).reshape(-1, 2)
    return float(np.sqrt(np.mean(np.sum(d * d, axis=1)))) if len(d) else float("nan")


# --- small-motion parameterisations, used by the iterative refinement in auto.py ---------
# Parameters act in *normalised* coordinates (centred, divided by the longer side), so
# translation, rotation and perspective terms have comparable magnitudes.

N_PARAMS = {"translation": 2, "similarity": 4, "affine": 6, "homography": 8}


def normaliser(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    s = 1.0 / max(w, h)
    return np.array([[s, 0.0, -s * w / 2.0], [0.0, s, -s * h / 2.0], [0.0, 0.0, 1.0]])


def param_jacobian(model: str, xn: np.ndarray, yn: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d(x', y')/d(params) at the identity, for normalised points; each (N, n_params)."""
    z, o = np.zeros_like(xn), np.ones_like(xn)
    if model == "translation":
        return np.stack([o, z], 1), np.stack([z, o], 1)
    if model == "similarity":  # [[1+a, -b, tx], [b, 1+a, ty]]
        return np.stack([xn, -yn, o, z], 1), np.stack([yn, xn, z, o], 1)
    jx = [xn, yn, o, z, z, z]
    jy = [z, z, z, xn, yn, o]
    if model == "homography":
        jx += [-xn * xn, -xn * yn]
        jy += [-xn * yn, -yn * yn]
    return np.stack(jx, 1), np.stack(jy, 1)


def param_matrix(model: str, p: np.ndarray) -> np.ndarray:
    """The 3x3 transform for a parameter vector of ``model`` (identity at p = 0)."""
    if model == "translation":
        return np.array([[1.0, 0.0, p[0]], [0.0, 1.0, p[1]], [0.0, 0.0, 1.0]])
    if model == "similarity":
        return np.array([[1.0 + p[0], -p[1], p[2]], [p[1], 1.0 + p[0], p[3]], [0.0, 0.0, 1.0]])
    h = np.array([[1.0 + p[0], p[1], p[2]], [p[3], 1.0 + p[4], p[5]], [0.0, 0.0, 1.0]])
    if model == "homography":
        h[2, 0], h[2, 1] = p[6], p[7]
    return h
