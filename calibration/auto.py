"""``--method auto``: IR -> VIS transform from one ordinary scene pair, no target.

Why not plain ECC or intensity matching: IR and VIS grey levels are unrelated (and the
sign of their relation flips within one picture), so intensity correlation has a broad,
biased optimum.  What both cameras share is *where object outlines are and which way they
run*.  This module therefore registers oriented edges, in stages, each one seeding the next:

1. **Search** (half resolution): over a grid of scales and small rotations around the
   "same field of view" guess, an FFT correlation of the IR edge points with soft maps of
   direction-compatible VIS edges scores every translation at once.  Wide capture range,
   coarse answer, plus a list of the strongest *distinct* peaks.
2. **Refine** (working resolution): robust point-to-line ICP -- every IR edge point is
   pulled towards the nearest VIS edge of compatible direction, Tukey-weighted so edges
   seen by only one camera drop out -- through similarity, affine, then the requested
   model, with a shrinking capture radius and then finer edges.
3. **Vouch**: an estimate is accepted only if it passes every check in :func:`_vouch`
   (edges agree clearly better than chance, no distinct rival fits as well, perturbed
   restarts come back, small Gauss-Newton corner error, and a block bootstrap over the
   picture moves the corners less than ``max_error``, and every half of the frame holds
   edges that agree better than chance).  Otherwise
   :class:`RegistrationRefused` says which check failed: a refusal is one line and exit 2,
   never a transform written with a success code.

All internal work happens in "work" pixels (VIS resized so its longer side is at most
``work_size``, IR resized to the same scale under the same-field-of-view guess); the
result is converted back to full-size IR -> VIS pixels at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

from pf_stream.calibration.edges import NUM_BINS, EdgeField, EdgePoints, edge_points
from pf_stream.calibration.geometry import (
    N_PARAMS,
    corner_error,
    fit_model,
    image_corners,
    normaliser,
    param_jacobian,
    param_matrix,
    project,
    scale_matrix,
)
from pf_stream.errors import UserError, check_choice

MODEL_CHAIN = {"similarity": ["similarity"], "affine": ["similarity", "affine"], "homography": ["similarity", "affine", "homography"]}

# --- acceptance thresholds (work pixels); measured on real pairs, see docs/CALIBRATION.md --
MIN_EDGE_POINTS = 200  # fewer edges than this in either picture: nothing to register
MIN_LIFT = 0.12  # inlier share must beat chance by this fraction of the headroom
RIVAL_DISTANCE = 8.0  # half-size px (mean corner distance) for a search peak to count as distinct
MAX_RESTART_SPREAD = 1.0  # px: perturbed restarts must come back to the same answer
DEFAULT_MAX_ERROR = 0.005  # accept a bootstrap corner error up to 0.5 % of the VIS width (3.2 px at 640)
BOOTSTRAP_REPLICATES = 10
MAX_CORNER_SIGMA = 0.6  # px: predicted corner standard deviation of the final fit
RIVAL_SCORE = 0.95  # a far-away refined rival scoring this close to the winner: ambiguous
EDGE_CORRELATION = 4.0  # neighbouring edge pixels are not independent; inflate variances
MIN_HALF_LIFT = 0.08  # each half of the frame (top, bottom, left, right) must beat chance by this
HALVES = ("top", "bottom", "left", "right")


@dataclass
class AutoOptions:
    model: str = "homography"
    work_size: int = 640  # longer VIS side (px) the registration runs at
    max_scale: float = 1.25  # IR scale searched in [1/max_scale, max_scale] around the same-FOV guess
    max_shift: float = 0.12  # translation searched, as a fraction of the VIS width
    max_rotation_deg: float = 0.0  # the refinement absorbs a degree or two; search more if the rig is rolled
    max_error: float | None = None  # VIS px of estimated corner error to accept; None: 0.5 % of VIS width
    restarts: int = 4
    seed: int = 0


@dataclass
class AutoResult:
    homography: np.ndarray  # 3x3, full-size IR px -> VIS px
    score: float  # "lift": how much better than chance the edges agree, in [0, 1]
    error_px: float  # estimated mean corner error, VIS px (largest of the three estimates)
    checks: dict[str, float] = field(default_factory=dict)
    model: str = "homography"


class RegistrationRefused(UserError):
    """auto could not find a transform it can vouch for (one line, exit 2)."""


@dataclass
class _Work:
    ir: np.ndarray  # IR resized to work scale
    vis: np.ndarray  # VIS resized to work scale
    ir_to_work: np.ndarray  # full IR px -> work IR px
    vis_to_full: np.ndarray  # work VIS px -> full VIS px
    prior: np.ndarray  # work IR -> work VIS: same horizontal field of view, centred


def _prepare(ir: np.ndarray, vis: np.ndarray, work_size: int) -> _Work:
    vh, vw = vis.shape[:2]
    ih, iw = ir.shape[:2]
    sv = min(1.0, work_size / max(vw, vh))
    vis_w = cv2.resize(vis, (round(vw * sv), round(vh * sv)), interpolation=cv2.INTER_AREA) if sv < 1 else vis
    k = vis_w.shape[1] / iw  # IR resized so that equal fields of view give equal widths
    ir_w = cv2.resize(ir, (round(iw * k), round(ih * k)), interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    prior = np.eye(3)
    prior[1, 2] = (vis_w.shape[0] - ir_w.shape[0]) / 2.0
    return _Work(ir_w, vis_w, scale_matrix(k), scale_matrix(1.0 / sv), prior)


def _size(img: np.ndarray) -> tuple[int, int]:
    return img.shape[1], img.shape[0]


def _subsample(points: EdgePoints, n: int, seed: int) -> EdgePoints:
    if len(points) <= n:
        return points
    return points.subset(np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False)))


def inlier_fraction(vis_edges: EdgeField, ir_points: EdgePoints, g: np.ndarray, tol: float = 1.5) -> float:
    """Share of IR edge points landing within ``tol`` px of a compatible VIS edge under g."""
    dist, _, _ = vis_edges.nearest(project(g, ir_points.xy), ir_points.bins)
    return float(np.mean(dist <= tol)) if len(ir_points) else 0.0


# --- stage 1: search --------------------------------------------------------------------


@dataclass
class _Peak:
    g: np.ndarray  # work IR -> work VIS
    score: float


def _search(work: _Work, opts: AutoOptions) -> tuple[list[_Peak], dict[str, float]]:
    """FFT search over translation, for each scale and rotation on a grid (half resolution)."""
    half = scale_matrix(0.5)
    vis_h = cv2.resize(work.vis, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    ir_h = cv2.resize(work.ir, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    field_h = EdgeField(vis_h, sigma=1.5)
    pts = _subsample(edge_points(ir_h, sigma=1.5), 8000, opts.seed)
    if len(pts) < MIN_EDGE_POINTS // 2 or len(field_h.points) < MIN_EDGE_POINTS // 2:
        raise RegistrationRefused(
            f"refused: too few edges to register (IR {len(pts)}, VIS {len(field_h.points)} at half size): "
            "use a scene with more structure (buildings, road edges) or --method target"
        )
    hv, wv = vis_h.shape
    pad = int(math.ceil(opts.max_shift * wv))
    ph, pw = cv2.getOptimalDFTSize(hv + 2 * pad), cv2.getOptimalDFTSize(wv + 2 * pad)
    vis_spectra = []
    for soft in field_h.soft_maps(radius=1.5):
        canvas = np.zeros((ph, pw), np.float32)
        canvas[pad : pad + hv, pad : pad + wv] = soft
        vis_spectra.append(np.fft.rfft2(canvas))

    prior_h = half @ work.prior @ np.linalg.inv(half)
    cx, cy = ir_h.shape[1] / 2.0, ir_h.shape[0] / 2.0
    n_scales = max(1, int(round(math.log(opts.max_scale) / 0.02)))
    scales = np.exp(np.linspace(-math.log(opts.max_scale), math.log(opts.max_scale), 2 * n_scales + 1))
    rotations = [0.0] if opts.max_rotation_deg <= 0 else np.radians([-opts.max_rotation_deg, 0.0, opts.max_rotation_deg])
    shifts = np.arange(-pad, pad + 1)
    windows, gs = [], []
    for s in scales:
        for rot in rotations:
            c, sn = s * math.cos(rot), s * math.sin(rot)
            about_centre = np.array([[c, -sn, cx - c * cx + sn * cy], [sn, c, cy - sn * cx - c * cy], [0, 0, 1.0]])
            g = prior_h @ about_centre
            q = np.rint(project(g, pts.xy)).astype(np.int64) + pad
            ok = (q[:, 0] >= 0) & (q[:, 1] >= 0) & (q[:, 0] < pw) & (q[:, 1] < ph)
            flat = q[ok, 1] * pw + q[ok, 0]
            spectrum = 0
            for k in range(NUM_BINS):
                counts = np.bincount(flat[pts.bins[ok] == k], minlength=ph * pw).reshape(ph, pw).astype(np.float32)
                spectrum = spectrum + np.conj(np.fft.rfft2(counts)) * vis_spectra[k]
            corr = np.fft.irfft2(spectrum, s=(ph, pw))
            # corr[t] = sum_x counts(x) * soft(x + t); keep t in [-pad, pad]^2, t = 0 at [pad, pad]
            windows.append(np.roll(corr, (pad, pad), axis=(0, 1))[: 2 * pad + 1, : 2 * pad + 1] / len(pts))
            gs.append(g)

    best_i = int(np.argmax([w.max() for w in windows]))
    by, bx = np.unravel_index(int(np.argmax(windows[best_i])), windows[best_i].shape)
    to_work = np.linalg.inv(half)

    def shifted(g: np.ndarray, tx: float, ty: float) -> np.ndarray:
        return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1.0]]) @ g

    best_g = shifted(gs[best_i], shifts[bx], shifts[by])
    corners = image_corners(_size(ir_h))
    best_c = project(best_g, corners)
    # Distinct rivals: the best position of every candidate at least RIVAL_DISTANCE half-px
    # (mean corner distance) away from the winner.  They are refined too: a rival that
    # refines to a different answer scoring as well as the winner means ambiguity.
    peaks = [_Peak(to_work @ best_g @ half, float(windows[best_i][by, bx]))]
    tx, ty = np.meshgrid(shifts, shifts)
    rivals = []
    for window, g in zip(windows, gs):
        offs = best_c - project(g, corners)  # where this candidate must shift to match the winner
        dist = np.mean([np.hypot(tx - ox, ty - oy) for ox, oy in offs], axis=0)
        masked = np.where(dist > RIVAL_DISTANCE, window, -np.inf)
        ry, rx = np.unravel_index(int(np.argmax(masked)), masked.shape)
        rivals.append((float(masked[ry, rx]), shifted(g, shifts[rx], shifts[ry])))
    rivals.sort(key=lambda r: -r[0])
    kept: list[np.ndarray] = []
    for score, g in rivals:  # two mutually distinct rivals are enough to refine
        if len(kept) == 2:
            break
        if all(corner_error(g, k, _size(ir_h)) > RIVAL_DISTANCE for k in kept):
            kept.append(g)
            peaks.append(_Peak(to_work @ g @ half, score))
    all_scores = np.concatenate([w.ravel() for w in windows])
    checks = {
        "search_peak": peaks[0].score,
        "search_rival": rivals[0][0] if rivals else 0.0,
        "search_median": float(np.median(all_scores)),
    }
    checks["peak_ratio"] = checks["search_rival"] / max(checks["search_peak"], 1e-9)
    return peaks, checks


# --- stage 2: robust point-to-line ICP --------------------------------------------------


@dataclass
class _Fit:
    g: np.ndarray
    normal_matrix: np.ndarray | None = None  # J^T W J of the last step (for covariance)
    sigma2: float = float("inf")  # weighted residual variance
    model: str = "similarity"


def _icp(
    vis_edges: EdgeField,
    pts: EdgePoints,
    g: np.ndarray,
    model: str,
    radii: tuple[float, ...],
    size: tuple[int, int],
    max_iter: int = 15,
    weights: np.ndarray | None = None,
) -> _Fit:
    """Robust Gauss-Newton on point-to-line distances, one capture radius after another.

    Parameter steps act on VIS work coordinates (left-composed), normalised for conditioning.
    """
    nrm = normaliser((vis_edges.shape[1], vis_edges.shape[0]))
    nrm_inv = np.linalg.inv(nrm)
    s = nrm[0, 0]
    n_par = N_PARAMS[model]
    fit = _Fit(g, model=model)
    for c in radii:
        for _ in range(max_iter):
            q = project(g, pts.xy)
            dist, idx, inside = vis_edges.nearest(q, pts.bins)
            sel = inside & (dist < c)
            if sel.sum() < 4 * n_par:
                return _Fit(g, model=model)
            qs, near = q[sel], idx[sel]
            n = vis_edges.normals[near]
            r = np.sum(n * (qs - vis_edges.points.xy[near]), axis=1)
            u = r / c
            w = np.where(np.abs(u) < 1.0, (1.0 - u * u) ** 2, 0.0)  # Tukey: one-camera edges drop out
            if weights is not None:
                w = w * weights[sel]
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
            fit = _Fit(g, normal_matrix, float(np.sum(w * r * r) / max(np.sum(w) - n_par, 1.0)), model)
            if moved < 0.02:
                break
    return fit


def _refine(fields: dict[float, EdgeField], points: dict[float, EdgePoints], g: np.ndarray, model: str, size: tuple[int, int]) -> _Fit:
    """Coarse edges and wide capture through the model chain, then fine edges, final model."""
    fit = _Fit(g)
    for m in MODEL_CHAIN[model]:
        fit = _icp(fields[3.0], points[3.0], fit.g, m, (8.0, 5.0, 3.0), size)
    return _icp(fields[1.5], points[1.5], fit.g, model, (3.0, 2.0, 1.5), size)


def _corner_sigma(fit: _Fit, size: tuple[int, int], vis_size: tuple[int, int]) -> float:
    """Predicted mean standard deviation (px) of where the IR corners land, from the
    Gauss-Newton normal matrix of the last step."""
    if fit.normal_matrix is None or not np.isfinite(fit.sigma2):
        return float("inf")
    try:
        cov = EDGE_CORRELATION * fit.sigma2 * np.linalg.inv(fit.normal_matrix)
    except np.linalg.LinAlgError:
        return float("inf")
    nrm = normaliser(vis_size)
    s = nrm[0, 0]
    qn = project(nrm, project(fit.g, image_corners(size)))
    jx, jy = param_jacobian(fit.model, qn[:, 0], qn[:, 1])
    var = np.einsum("ip,pq,iq->i", jx, cov, jx) + np.einsum("ip,pq,iq->i", jy, cov, jy)
    return float(np.mean(np.sqrt(np.maximum(var, 0.0))) / s)


# --- stage 3: vouch ---------------------------------------------------------------------


def _chance_hits(vis_edges: EdgeField, pts: EdgePoints, g: np.ndarray, tol: float = 1.5) -> np.ndarray:
    """Per IR edge point: how often it lands near a compatible VIS edge when the transform
    is shifted well off the answer (8 directions, 8 and 12 px).  Its mean is the chance level."""
    hits = []
    for radius in (8.0, 12.0):
        for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):
            t = np.array([[1, 0, radius * np.cos(a)], [0, 1, radius * np.sin(a)], [0, 0, 1.0]])
            dist, _, _ = vis_edges.nearest(project(t @ g, pts.xy), pts.bins)
            hits.append(dist <= tol)
    return np.mean(hits, axis=0)


def _half_lifts(vis_edges: EdgeField, pts: EdgePoints, g: np.ndarray, chance: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    """Lift (edge agreement above chance) of the IR edge points in each half of the frame.

    Why: the other checks look at the picture as a whole.  When one part of the scene has
    no outline that both cameras see (TNO 24: barn and trees on top, bare grass below),
    the whole-picture lift is fine and the bootstrap is calm -- every replicate is pulled
    by the same top-half edges -- yet the corners over the empty part are pure
    extrapolation: a homography's perspective terms scale one half against the other, so
    the bottom corners there swung by up to 20 px unchecked.  Edges that agree clearly
    better than chance in *each* half (top, bottom, left, right) are what pins every
    corner; grass and sky match edges about as often as a shifted transform does.
    """
    dist, _, _ = vis_edges.nearest(project(g, pts.xy), pts.bins)
    hit = dist <= 1.5
    x, y = pts.xy[:, 0] / size[0], pts.xy[:, 1] / size[1]
    out = {}
    for name, mask in zip(HALVES, (y < 0.5, y >= 0.5, x < 0.5, x >= 0.5)):
        if mask.sum() < MIN_EDGE_POINTS // 4:
            out[name] = 0.0  # (almost) no edges at all there: nothing pins those corners
            continue
        c = float(chance[mask].mean())
        out[name] = (float(hit[mask].mean()) - c) / max(1.0 - c, 1e-9)
    return out


def _bootstrap_error(vis_edges: EdgeField, pts: EdgePoints, g: np.ndarray, model: str, size: tuple[int, int], seed: int) -> float:
    """Block bootstrap: refit with the picture's 6x6 blocks drawn with replacement; the RMS
    corner movement over the replicates estimates the error of the fit.

    Unlike the Gauss-Newton covariance this sees what matters on real pairs: errors that
    are correlated along edges and between neighbouring structures, edges that one camera
    sees and the other does not, and corners that are only extrapolated because the
    picture's edges are all in the middle.
    """
    blocks = 6
    bx = np.minimum((pts.xy[:, 0] * blocks / size[0]).astype(np.int64), blocks - 1)
    by = np.minimum((pts.xy[:, 1] * blocks / size[1]).astype(np.int64), blocks - 1)
    block = by * blocks + bx
    rng = np.random.default_rng(seed)
    corners = project(g, image_corners(size))
    sq = []
    for _ in range(BOOTSTRAP_REPLICATES):
        counts = np.bincount(rng.integers(0, blocks * blocks, blocks * blocks), minlength=blocks * blocks)
        rep = _icp(vis_edges, pts, g, model, (2.0, 1.5), size, max_iter=10, weights=counts[block].astype(np.float64))
        sq.append(np.sum((project(rep.g, image_corners(size)) - corners) ** 2, axis=1))
    return float(np.mean(np.sqrt(np.mean(sq, axis=0))))


def _vouch(checks: dict[str, float], max_error_work: float) -> str | None:
    """The first failed acceptance check, as the text of a refusal; None when all pass."""
    if checks["lift"] < MIN_LIFT:
        return f"edges agree barely better than chance (lift {checks['lift']:.2f} < {MIN_LIFT})"
    if checks["rival_ratio"] > RIVAL_SCORE:
        return f"a distinct alignment fits as well (rival/best {checks['rival_ratio']:.2f})"
    if checks["restart_spread_px"] > MAX_RESTART_SPREAD:
        return f"perturbed restarts disagree by {checks['restart_spread_px']:.1f} px (> {MAX_RESTART_SPREAD})"
    if checks["corner_sigma_px"] > MAX_CORNER_SIGMA:
        return f"the fit is loose: predicted corner error {checks['corner_sigma_px']:.1f} px (> {MAX_CORNER_SIGMA})"
    if checks["bootstrap_px"] > max_error_work:
        return (
            f"the answer depends on which parts of the picture are used: estimated corner error "
            f"{checks['bootstrap_px']:.1f} px (> {max_error_work:.1f}, see --max-error)"
        )
    weakest = min(HALVES, key=lambda h: checks[f"lift_{h}"])
    if checks[f"lift_{weakest}"] < MIN_HALF_LIFT:
        return (
            f"the {weakest} half of the picture has no edges both cameras agree on "
            f"(lift {checks[f'lift_{weakest}']:.2f} < {MIN_HALF_LIFT}), so its corners are guesswork; "
            "use a scene with shared outlines across the whole frame, or --method target"
        )
    return None


def estimate(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> AutoResult:
    """Best IR -> VIS transform of one gray pair with its checks, *without* vouching for it.

    Use :func:`register` unless you are measuring the method itself (the evaluation uses
    this to find each dataset pair's own residual misalignment).
    """
    result, _ = _estimate(ir, vis, options or AutoOptions())
    return result


def register(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> AutoResult:
    """IR -> VIS transform of one gray pair that passed every check, or RegistrationRefused."""
    opts = options or AutoOptions()
    result, to_full = _estimate(ir, vis, opts)
    max_error = opts.max_error if opts.max_error is not None else DEFAULT_MAX_ERROR * vis.shape[1]
    failed = _vouch(result.checks, max_error / to_full)
    if failed:
        # A simpler model does not help an empty half (its corners are extrapolated all the
        # same), so that refusal carries its own advice.
        advice = "" if "; " in failed else "; try a scene with more shared structure, --model affine, or --method target"
        raise RegistrationRefused(f"refused: {failed}{advice}")
    return result


def _estimate(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions) -> tuple[AutoResult, float]:
    check_choice("model", opts.model, MODEL_CHAIN)
    work = _prepare(ir, vis, opts.work_size)
    size = _size(work.ir)
    peaks, checks = _search(work, opts)

    fields = {sigma: EdgeField(work.vis, sigma) for sigma in (3.0, 1.5)}
    points = {sigma: _subsample(edge_points(work.ir, sigma), 20000, opts.seed) for sigma in (3.0, 1.5)}
    if len(points[1.5]) < MIN_EDGE_POINTS or len(fields[1.5].points) < MIN_EDGE_POINTS:
        raise RegistrationRefused("refused: too few edges to register: use a scene with more structure or --method target")

    # Refine every distinct search peak on a subsample; polish the winner with all points.
    few = {sigma: _subsample(p, 6000, opts.seed + 2) for sigma, p in points.items()}
    fits = [_refine(fields, few, p.g, opts.model, size) for p in peaks]
    scores = [inlier_fraction(fields[1.5], few[1.5], f.g) for f in fits]
    order = np.argsort(scores)[::-1]
    rival = max((scores[i] for i in order[1:] if corner_error(fits[i].g, fits[order[0]].g, size) > 2.0), default=0.0)
    best = _icp(fields[1.5], points[1.5], fits[order[0]].g, opts.model, (2.0, 1.5), size)
    best_score = inlier_fraction(fields[1.5], points[1.5], best.g)

    # Restarts: the same refinement from the answer with its corners pushed up to 1 % of
    # the width.  A well-determined optimum pulls every one of them back.
    rng = np.random.default_rng(opts.seed + 1)
    corners = image_corners(size)
    spread = 0.0
    for _ in range(opts.restarts):
        moved = project(best.g, corners) + rng.uniform(-1, 1, (4, 2)) * 0.01 * size[0]
        start, _ = fit_model(corners, moved, opts.model)  # a perturbation the model can undo
        spread = max(spread, corner_error(_refine(fields, few, start, opts.model, size).g, best.g, size))

    chance_hits = _chance_hits(fields[1.5], points[1.5], best.g)
    chance = float(chance_hits.mean())
    halves = _half_lifts(fields[1.5], points[1.5], best.g, chance_hits, size)
    checks.update(**{f"lift_{name}": value for name, value in halves.items()})
    checks.update(
        inliers=best_score,
        chance=chance,
        lift=(best_score - chance) / max(1.0 - chance, 1e-9),
        rival_ratio=rival / max(scores[order[0]], 1e-9),
        restart_spread_px=spread,
        corner_sigma_px=_corner_sigma(best, size, _size(work.vis)),
        bootstrap_px=_bootstrap_error(fields[1.5], few[1.5], best.g, opts.model, size, opts.seed + 3),
    )
    h = work.vis_to_full @ best.g @ work.ir_to_work
    to_full = float(work.vis_to_full[0, 0])
    # Reported error: the largest of the three independent error estimates, in VIS pixels.
    error_px = to_full * max(checks["corner_sigma_px"], checks["restart_spread_px"], checks["bootstrap_px"])
    result = AutoResult(
        homography=h / h[2, 2],
        score=round(float(np.clip(checks["lift"], 0.0, 1.0)), 4),
        error_px=round(error_px, 3),
        checks={k: round(float(v), 4) for k, v in checks.items()},
        model=opts.model,
    )
    return result, to_full
