"""Dense, modality-independent refinement for ``--method auto``: MIND-SSC + Gauss-Newton.

Why a second estimator next to the edge ICP (icp.py): the ICP sees only Canny edges,
which are a thin, thresholded sample of the picture; on real pairs its objective often
has two optima a few pixels apart and which one wins flips with details as small as the
resampling of the IR.  A dense descriptor uses every pixel's local structure, so its
objective is smoother.  auto.py refines the best distinct ICP ends with it and keeps the
one of lowest descriptor cost.

The descriptor is MIND-SSC (Heinrich et al., "Towards realtime multimodal fusion for
image-guided interventions using self-similarities", MICCAI 2013) in 2-D: for each pixel,
the patch distances between the pairs of its four neighbours, normalised by their local
mean and mapped through exp(-d / v).  It describes the *shape* of the local structure,
not its grey levels, so a warm wall that is bright in IR and dark in VIS gives the same
descriptor.  The transform is refined by ESM Gauss-Newton (compositional) on the sum of
squared descriptor differences, coarse to fine (a 3-level pyramid), with the same
normalised parameterisation as the ICP.

All coordinates are "work" pixels (see auto.py); transforms map IR work px to VIS work px.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pf_stream.calibration.geometry import N_PARAMS, corner_error, normaliser, param_jacobian, param_matrix

RADIUS = 2  # px at each pyramid level: offset of the four neighbours
PATCH_SIGMA = 1.0  # Gaussian patch size of the self-similarity distances
LEVELS = (4, 2, 1)  # pyramid downscale factors, coarse to fine
FINE_MAX_ITER = 60  # the finest level: it must settle, not stop at a cap mid-valley (see refine)
LONGER_STEPS = (2.0, 4.0, 8.0)  # multiples of a Gauss-Newton step tried while they fit better (see refine)


def mind_ssc(gray: np.ndarray) -> np.ndarray:
    """(6, H, W) float32 MIND-SSC descriptor of a gray picture, each pixel's vector in [0, 1]."""
    img = gray.astype(np.float32)
    r = RADIUS
    neighbours = [(r, 0), (0, r), (-r, 0), (0, -r)]
    pairs = [(a, b) for i, a in enumerate(neighbours) for b in neighbours[i + 1 :]]
    # Shifted copies with replicated borders; d(x) = G * (I(x + a) - I(x + b))^2.
    pad = cv2.copyMakeBorder(img, r, r, r, r, cv2.BORDER_REPLICATE)
    h, w = img.shape

    def shifted(o: tuple[int, int]) -> np.ndarray:
        return pad[r + o[1] : r + o[1] + h, r + o[0] : r + o[0] + w]

    dist = np.stack([cv2.GaussianBlur((shifted(a) - shifted(b)) ** 2, (0, 0), PATCH_SIGMA) for a, b in pairs])
    dist -= dist.min(axis=0, keepdims=True)
    var = dist.mean(axis=0, keepdims=True)
    var = np.clip(var, 1e-3 * float(var.mean()) + 1e-6, 1e3 * float(var.mean()) + 1e-6)
    desc = np.exp(-dist / var)
    return (desc / desc.max(axis=0, keepdims=True)).astype(np.float32)


def fill_mask(gray: np.ndarray) -> np.ndarray:
    """True where the picture holds data: False on a constant fill reached from the border.

    Why: a picture warped in software (the self-check's copies, letterboxed or cropped
    frames) has flat black margins.  Their boundary is a strong, sharp structure that the
    other camera does not see, and it pulls a dense fit by a few pixels.
    """
    count, labels = cv2.connectedComponents((gray == 0).astype(np.uint8), connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    is_fill = np.zeros(count, bool)
    is_fill[border] = True
    is_fill[0] = False  # label 0: the non-zero pixels
    valid = ~is_fill[labels]
    # Warping with linear interpolation blends the fill into a 1-2 px rim of the picture.
    return cv2.erode(valid.astype(np.uint8), np.ones((5, 5), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=1) > 0


def _sobel(desc: np.ndarray, dx: int, dy: int) -> np.ndarray:
    return np.stack([cv2.Sobel(c, cv2.CV_32F, dx, dy, ksize=3, scale=0.125) for c in desc])


@dataclass
class _Level:
    """One pyramid level of a pair: descriptors, where the IR holds picture, and the VIS
    descriptors' gradients (the VIS never moves, so ESM's half of them is computed once)."""

    factor: int  # downscale factor
    ir: np.ndarray  # (6, h, w) IR descriptors
    vis: np.ndarray  # (6, h, w) VIS descriptors
    ir_valid: np.ndarray  # uint8 mask: IR descriptors that do not reach into a fill
    vis_dx: np.ndarray
    vis_dy: np.ndarray


@dataclass
class DenseFit:
    g: np.ndarray
    cost: float  # mean squared descriptor difference over the overlap at the finest level (lower is better)
    overlap: float  # share of VIS pixels the warped IR covers


class DenseAligner:
    """Descriptor pyramids of one pair, built once; refine many starts against them."""

    def __init__(self, ir: np.ndarray, vis: np.ndarray, ir_valid: np.ndarray | None = None):
        """``ir_valid``: IR pixels that hold picture (False on a constant fill, see
        :func:`fill_mask`); descriptors that reach into the fill are not compared."""
        self.ir_size = (ir.shape[1], ir.shape[0])
        valid = np.ones(ir.shape[:2], np.uint8) if ir_valid is None else ir_valid.astype(np.uint8)
        margin = np.ones((2 * (RADIUS + 2) + 1,) * 2, np.uint8)  # the descriptor's reach
        self.levels: list[_Level] = []
        self.iterations: list[int] = []  # per level of each refine call (diagnostics)
        for f in LEVELS:
            ir_l = cv2.resize(ir, None, fx=1.0 / f, fy=1.0 / f, interpolation=cv2.INTER_AREA) if f > 1 else ir
            vis_l = cv2.resize(vis, None, fx=1.0 / f, fy=1.0 / f, interpolation=cv2.INTER_AREA) if f > 1 else vis
            valid_l = cv2.resize(valid, (ir_l.shape[1], ir_l.shape[0]), interpolation=cv2.INTER_NEAREST)
            valid_l = cv2.erode(valid_l, margin, borderType=cv2.BORDER_CONSTANT, borderValue=0)
            vis_d = mind_ssc(vis_l)
            self.levels.append(_Level(f, mind_ssc(ir_l), vis_d, valid_l, _sobel(vis_d, 1, 0), _sobel(vis_d, 0, 1)))

    def _warp(self, desc: np.ndarray, valid_ir: np.ndarray, g: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        h, w = shape
        out = np.stack([cv2.warpPerspective(c, g, (w, h), flags=cv2.INTER_LINEAR, borderValue=0) for c in desc])
        valid = cv2.warpPerspective(valid_ir, g, (w, h), flags=cv2.INTER_NEAREST) > 0
        return out, valid

    def cost(self, g: np.ndarray) -> tuple[float, float]:
        """(mean squared descriptor difference, overlap) at the finest level for g."""
        top = self.levels[-1]
        ir_d, vis_d, valid_ir = top.ir, top.vis, top.ir_valid
        warped, valid = self._warp(ir_d, valid_ir, g, vis_d.shape[1:])
        if not valid.any():
            return float("inf"), 0.0
        diff = (warped - vis_d)[:, valid]
        return float(np.mean(diff * diff)), float(valid.mean())

    def refine(self, g: np.ndarray, model: str = "homography", max_iter: int = 25, stride: int = 2, levels: slice = slice(None)) -> DenseFit:
        """Coarse-to-fine ESM Gauss-Newton from ``g``; ``levels`` picks pyramid levels
        (default all; auto runs the coarse ones for every start, the finest for distinct ends)."""
        n_par = N_PARAMS[model]
        for level in self.levels[levels]:
            f, ir_d, vis_d, valid_ir = level.factor, level.ir, level.vis, level.ir_valid
            s_l = np.diag([1.0 / f, 1.0 / f, 1.0])
            g_l = s_l @ g @ np.linalg.inv(s_l)
            hv, wv = vis_d.shape[1:]
            nrm = normaliser((wv, hv))
            s = nrm[0, 0]
            grid = (slice(None), slice(0, hv, stride), slice(0, wv, stride))  # every stride-th pixel
            ys, xs = np.mgrid[grid[1], grid[2]]
            qn = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64) * s + nrm[:2, 2]
            jx, jy = (j / s for j in param_jacobian(model, qn[:, 0], qn[:, 1]))
            target = vis_d[grid].reshape(len(vis_d), -1)
            vis_gx = level.vis_dx[grid].reshape(len(vis_d), -1)
            vis_gy = level.vis_dy[grid].reshape(len(vis_d), -1)
            self.iterations.append(0)

            def residual(g_try: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
                """(warped descriptors, inside mask on the grid, residuals) at ``g_try``."""
                warped, valid = self._warp(ir_d, valid_ir, g_try, (hv, wv))
                return warped, valid[grid[1:]].ravel(), warped[grid].reshape(len(ir_d), -1) - target

            def lower(a: tuple, b: tuple) -> bool:
                """Does residual ``a`` fit better than ``b``?  Compared on the pixels inside
                both: the overlap shifts with the transform, and a mean over a different
                set of pixels moves more than a sub-pixel step changes the fit."""
                both = a[1] & b[1]
                return bool(both.sum() >= 50 * n_par) and float((a[2] * a[2]).sum(0) @ both) < float((b[2] * b[2]).sum(0) @ both)

            def moved_to(step: np.ndarray) -> np.ndarray:
                g_new = np.linalg.inv(nrm) @ param_matrix(model, step) @ nrm @ g_l
                return g_new / g_new[2, 2]

            current = residual(g_l)
            for _ in range(max_iter if f > 1 else max(max_iter, FINE_MAX_ITER)):
                warped, inside, r = current
                if inside.sum() < 50 * n_par:
                    break
                # ESM (Benhimane & Malis 2004): the mean of both pictures' gradients gives
                # near-second-order steps; plain Gauss-Newton crawled along flat valleys.
                gx = 0.5 * (_sobel(warped, 1, 0)[grid].reshape(len(ir_d), -1) + vis_gx)
                gy = 0.5 * (_sobel(warped, 0, 1)[grid].reshape(len(ir_d), -1) + vis_gy)
                # warped_new(x) = warped(A^-1 x) with A = N^-1 P(p) N: d/dp = -grad . dx/dp.
                # Per channel c the Jacobian row is -(gx_c jx + gy_c jy) / s; summed over the
                # channels, J^T J and J^T r only need the per-pixel structure tensor
                # (sum_c gx^2, gx gy, gy^2) and sum_c g r: four weighted products, not six.
                # Pixels outside the warped IR get weight 0 (cheaper than compacting arrays).
                sxx, sxy, syy = ((a * b).sum(0) * inside for a, b in ((gx, gx), (gx, gy), (gy, gy)))
                cross = jx.T @ (jy * sxy[:, None])
                normal_matrix = jx.T @ (jx * sxx[:, None]) + jy.T @ (jy * syy[:, None]) + cross + cross.T
                gradient = -(jx.T @ ((gx * r).sum(0) * inside) + jy.T @ ((gy * r).sum(0) * inside))
                step = -np.linalg.solve(normal_matrix + 1e-6 * np.trace(normal_matrix) / n_par * np.eye(n_par), gradient)
                # Longer steps while they fit better.  Why: the Gauss-Newton step is
                # consistently too short here (the blurred descriptors make the normal matrix
                # overstate the curvature along some directions), so the finest level crept
                # along a flat valley by a shrinking fraction of a pixel per step and stopped
                # at the iteration cap wherever it was: the answer depended on the start.
                # The plain step is always taken (near the minimum, interpolation noise in
                # the cost would otherwise stop the descent early).
                g_new = moved_to(step)
                current = residual(g_new)
                for alpha in LONGER_STEPS:
                    g_try = moved_to(alpha * step)
                    trial = residual(g_try)
                    if not lower(trial, current):
                        break
                    g_new, current = g_try, trial
                moved = corner_error(g_new, g_l, (wv, hv))
                g_l = g_new
                self.iterations[-1] += 1
                if moved < 0.01:
                    break
            g = np.linalg.inv(s_l) @ g_l @ s_l
            g /= g[2, 2]
        cost, overlap = self.cost(g)
        return DenseFit(g, cost, overlap)
