"""Robust point-to-line ICP: the refinement stage of ``--method auto``.

Every IR edge point is pulled towards the nearest VIS edge of compatible direction, and
the transform is updated by Gauss-Newton on the point-to-line distances.  Tukey weights
make edges that only one camera sees drop out instead of dragging the fit.  The chain
similarity -> affine -> homography, with a shrinking capture radius and then finer
edges, gives a wide capture range and a precise end point.

All coordinates are "work" pixels (see auto.py); transforms map IR work px to VIS work px.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pf_stream.calibration.edges import EdgeField, EdgePoints
from pf_stream.calibration.geometry import (
    N_PARAMS,
    corner_error,
    normaliser,
    param_jacobian,
    param_matrix,
    project,
)

MODEL_CHAIN = {"similarity": ["similarity"], "affine": ["similarity", "affine"], "homography": ["similarity", "affine", "homography"]}
COARSE, FINE = 3.0, 1.5  # edge blur sigmas: coarse edges capture, fine edges settle


@dataclass
class Fit:
    g: np.ndarray
    model: str = "similarity"


def inlier_fraction(vis_edges: EdgeField, ir_points: EdgePoints, g: np.ndarray, tol: float = 1.5) -> float:
    """Share of IR edge points landing within ``tol`` px of a compatible VIS edge under g."""
    dist, _, _ = vis_edges.nearest(project(g, ir_points.xy), ir_points.bins)
    return float(np.mean(dist <= tol)) if len(ir_points) else 0.0


def icp(
    vis_edges: EdgeField,
    pts: EdgePoints,
    g: np.ndarray,
    model: str,
    radii: tuple[float, ...],
    size: tuple[int, int],
    max_iter: int = 15,
) -> Fit:
    """Robust Gauss-Newton on point-to-line distances, one capture radius after another.

    Parameter steps act on VIS work coordinates (left-composed), normalised for conditioning.
    """
    nrm = normaliser((vis_edges.shape[1], vis_edges.shape[0]))
    nrm_inv = np.linalg.inv(nrm)
    s = nrm[0, 0]
    n_par = N_PARAMS[model]
    fit = Fit(g, model=model)
    for c in radii:
        for _ in range(max_iter):
            q = project(g, pts.xy)
            dist, idx, inside = vis_edges.nearest(q, pts.bins)
            sel = inside & (dist < c)
            if sel.sum() < 4 * n_par:
                return Fit(g, model=model)
            qs, near = q[sel], idx[sel]
            n = vis_edges.normals[near]
            r = np.sum(n * (qs - vis_edges.points.xy[near]), axis=1)
            u = r / c
            w = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)  # Tukey: one-camera edges drop out
            qn = project(nrm, qs)
            jx, jy = param_jacobian(model, qn[:, 0], qn[:, 1])
            jac = (n[:, :1] * jx + n[:, 1:] * jy) / s
            normal_matrix = jac.T @ (jac * w[:, None])
            gradient = jac.T @ (w * r)
            step = -np.linalg.solve(normal_matrix + 1e-9 * np.trace(normal_matrix) * np.eye(n_par), gradient)
            g_new = nrm_inv @ param_matrix(model, step) @ nrm @ g
            g_new /= g_new[2, 2]
            moved = corner_error(g_new, g, size)
            g = g_new
            fit = Fit(g, model)
            if moved < 0.02:
                break
    return fit


def refine(fields: dict[float, EdgeField], points: dict[float, EdgePoints], g: np.ndarray, model: str, size: tuple[int, int]) -> Fit:
    """Coarse edges and wide capture through the model chain, then fine edges, final model."""
    fit = Fit(g)
    for m in MODEL_CHAIN[model]:
        fit = icp(fields[COARSE], points[COARSE], fit.g, m, (8.0, 5.0, 3.0), size)
    return icp(fields[FINE], points[FINE], fit.g, model, (3.0, 2.0, 1.5), size)
