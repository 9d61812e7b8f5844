"""``--method auto``: IR -> VIS transform from one ordinary scene pair, no target.

Why not plain ECC or intensity matching: IR and VIS grey levels are unrelated (and the
sign of their relation flips within one picture), so intensity correlation has a broad,
biased optimum.  What both cameras share is *where object outlines are and which way they
run*.  This module therefore registers oriented edges, in stages, each one seeding the next:

1. **Search** (half resolution): over a grid of scales and small rotations around the
   "same field of view" guess, an FFT correlation of the IR edge points with soft maps of
   direction-compatible VIS edges scores every translation at once.  Wide capture range,
   coarse answer, plus a list of the strongest *distinct* peaks.
2. **Refine** (working resolution, ``icp.py``): robust point-to-line ICP -- every IR edge
   point is pulled towards the nearest VIS edge of compatible direction, Tukey-weighted
   so edges seen by only one camera drop out -- through similarity, affine, then the
   requested model, with a shrinking capture radius and then finer edges.
3. **Explore**: refinement again from restarts around the winner (corners pushed 1-2 % of
   the width).  Real pairs have several edge optima a few pixels apart (parallax).
4. **Dense** (``dense.py``): the best distinct ICP ends (up to four) are refined again by
   Gauss-Newton on a dense modality-independent descriptor (MIND-SSC); the lowest
   descriptor cost is the answer.  The dense objective uses every pixel's local
   structure, so warped and unwarped copies of a pair land on the same answer far more
   often than with edges alone (see docs/CALIBRATION_HISTORY.md for the numbers).
5. **Vouch** (``vouch.py``): the answer is accepted only if it passes every check --
   no distinct dense end gains nearly as much over chance; block matching cell by cell
   around the answer confirms it in enough of the picture, and in every half of the
   frame (so no corner is extrapolated); and, last, a *self-check*: copies of the IR
   warped by known small homographies are registered again from scratch and must come
   back within ``max_error``.  Otherwise
   :class:`RegistrationRefused` says which check failed: a refusal is one line and exit 2,
   never a transform written with a success code.

All internal work happens in "work" pixels (VIS resized so its longer side is at most
``work_size``, IR resized to the same scale under the same-field-of-view guess); the
result is converted back to full-size IR -> VIS pixels at the end.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from pf_stream.calibration import vouch
from pf_stream.calibration.dense import DenseAligner, DenseFit, fill_mask
from pf_stream.calibration.edges import NUM_BINS, EdgeField, EdgePoints, edge_points
from pf_stream.calibration.geometry import corner_error, fit_model, image_corners, project, random_homography, scale_matrix
from pf_stream.calibration.icp import COARSE, FINE, MODEL_CHAIN, Fit, inlier_fraction, refine
from pf_stream.calibration.vouch import MIN_EDGE_POINTS
from pf_stream.errors import UserError, check_choice

# --- search and exploration settings (work pixels) ------------------------------------
RIVAL_DISTANCE = 8.0  # half-size px (mean corner distance) for a search peak to count as distinct
DENSE_STARTS = 4  # distinct refined ICP ends that the dense refinement starts from
DENSE_MERGE_PX = 0.5  # work px: dense starts this close after the coarse levels share the finest one
RIVAL_PX = 2.0  # work px (mean corner distance) for a refined end to count as a distinct answer
SELF_CHECK_WARP = 0.02  # their corners move up to this fraction of the IR width (as in the evaluation)
SELF_CHECK_LOST = 5.0  # a copy landing more than this many self-check bars away lost its own search (see _self_check)
SELF_CHECK_MAX_LOST = 1  # lost copies replaced by a fresh one; one more and the answer is refused
MIN_WORK_SIDE = 16  # px: smallest side either picture may have at the working scale (input check)
AGREEMENT = 2.0  # several pairs: accepted answers may lie this many self-check bars apart (see register_pairs)


@dataclass
class AutoOptions:
    model: str = "homography"
    work_size: int = 640  # longer VIS side (px) the registration runs at
    max_scale: float = 1.25  # IR scale searched in [1/max_scale, max_scale] around the same-FOV guess
    max_shift: float = 0.12  # translation searched, as a fraction of the VIS width
    max_rotation_deg: float = 0.0  # the refinement absorbs a degree or two; search more if the rig is rolled
    max_error: float | None = None  # VIS px a self-check re-registration may land away; None: vouch.self_check_plan's choice
    restarts: int = 8  # perturbed restarts around the best refined search peak
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


def _vis_to_work(vis: np.ndarray, work_size: int) -> float:
    """Scale from VIS px to work px: the longer side at most ``work_size``, never enlarged."""
    return min(1.0, work_size / max(vis.shape[:2]))


def _prepare(ir: np.ndarray, vis: np.ndarray, work_size: int) -> _Work:
    vh, vw = vis.shape[:2]
    ih, iw = ir.shape[:2]
    sv = _vis_to_work(vis, work_size)
    k = round(vw * sv) / iw  # IR resized so that equal fields of view give equal widths
    sides = (round(vw * sv), round(vh * sv), round(iw * k), round(ih * k))
    if min(sides) < MIN_WORK_SIDE:  # an input check: cv2.resize failed on a 0-px side with a traceback
        raise RegistrationRefused(
            f"refused: IR {iw}x{ih} and VIS {vw}x{vh} differ too much in shape to register at a {work_size} px working size "
            f"(IR {sides[2]}x{sides[3]}, VIS {sides[0]}x{sides[1]} there): crop them to similar fields of view, or use --method target"
        )
    vis_w = cv2.resize(vis, sides[:2], interpolation=cv2.INTER_AREA) if sv < 1 else vis
    ir_w = cv2.resize(ir, sides[2:], interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR)
    prior = np.eye(3)
    prior[1, 2] = (vis_w.shape[0] - ir_w.shape[0]) / 2.0
    return _Work(ir_w, vis_w, scale_matrix(k), scale_matrix(1.0 / sv), prior)


def _size(img: np.ndarray) -> tuple[int, int]:
    return img.shape[1], img.shape[0]


def _subsample(points: EdgePoints, n: int, seed: int) -> EdgePoints:
    if len(points) <= n:
        return points
    return points.subset(np.sort(np.random.default_rng(seed).choice(len(points), n, replace=False)))


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


@dataclass
class _End:
    fit: Fit
    score: float  # inlier share of all IR edge points
    distance: float = 0.0  # mean corner distance (work px) from the best end
    restart: bool = False  # came from a perturbed restart (not a search peak)


def _explore(fields: dict[float, EdgeField], points: dict[float, EdgePoints], fits: list[Fit], opts: AutoOptions, size: tuple[int, int]) -> list[_End]:
    """Where refinement ends from many starts: the refined search peaks, then restarts from
    the best of them with its corners pushed by 1 % and 2 % of the width.

    Why: on real pairs the edge objective has several optima a few pixels apart (parallax:
    the road and the buildings behind it want different homographies).  The best-scoring
    end is the answer, whichever start reached it; every other end is a candidate rival,
    and the vouch stage asks whether any distinct one scores nearly as well.  Sorted best
    first; distances are measured from the best end.
    """
    ends = [_End(f, inlier_fraction(fields[FINE], points[FINE], f.g)) for f in fits]
    start_from = max(ends, key=lambda e: e.score).fit
    rng = np.random.default_rng(opts.seed + 1)
    corners = image_corners(size)
    for k in range(opts.restarts):
        push = (0.01 if k % 2 == 0 else 0.02) * size[0]
        moved = project(start_from.g, corners) + rng.uniform(-1, 1, (4, 2)) * push
        start, _ = fit_model(corners, moved, opts.model)  # a perturbation the model can undo
        fit = refine(fields, points, start, opts.model, size)
        ends.append(_End(fit, inlier_fraction(fields[FINE], points[FINE], fit.g), restart=True))
    ends.sort(key=lambda e: -e.score)
    for e in ends:
        e.distance = corner_error(e.fit.g, ends[0].fit.g, size)
    return ends


# --- the whole estimate, and the verdict -------------------------------------------------


def estimate(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> np.ndarray:
    """Best IR -> VIS homography of one gray pair (full-size px), *without* checks or vouching.

    Use :func:`register` unless you are measuring the method itself (the evaluation uses
    this to find each dataset pair's own residual misalignment).
    """
    return _best_fit(ir, vis, options or AutoOptions())[0]


def register(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> AutoResult:
    """IR -> VIS transform of one gray pair that passed every check, or RegistrationRefused."""
    result, refusal = assess(ir, vis, options)
    if refusal:
        raise RegistrationRefused(refusal)
    return result


@dataclass
class PairsAnswer:
    result: AutoResult
    pair: str  # name of the pair whose answer it is
    disagreeing: list[str]  # accepted pairs whose answers lie elsewhere (outvoted)


def register_pairs(pairs: list[tuple[str, np.ndarray, np.ndarray]], options: AutoOptions | None = None) -> PairsAnswer:
    """One transform from several (name, ir, vis) pairs of the same rig, or RegistrationRefused.

    Each pair is registered and vouched for on its own.  Accepted answers then vote: two
    agree when they lie within AGREEMENT self-check bars of each other (mean corner
    distance, VIS px).  The answer with the most agreeing others wins (ties: the smaller
    self-check distance), but only when they are a majority of the accepted answers.

    Why: one rig has one transform, so independent scenes give a check no single pair can
    give itself.  Correct answers each lie within the bar of the truth, hence within twice
    the bar of each other; auto's rare accepted miss (docs/CALIBRATION.md) is outvoted.
    Two answers that disagree cannot be told apart, so nothing is written.  Scenes at
    different distances disagree too (a homography is exact for one plane; across a 5 cm
    baseline, 10 m against 50 m is about 2 px): calibrate on scenes at the working
    distance.  Pairs grabbed a second apart from a still scene are nearly the same
    picture: they agree without proving much; different scenes are the real test.
    """
    opts = options or AutoOptions()
    accepted, refusals = [], []
    for name, ir, vis in pairs:
        result, refusal = assess(ir, vis, opts)
        if refusal:
            refusals.append(f"{name}: {refusal}" if len(pairs) > 1 else refusal)
        else:
            accepted.append((result, name))
    if not accepted:
        more = f" (and {len(refusals) - 1} more pairs refused)" if len(refusals) > 1 else ""
        raise RegistrationRefused(refusals[0] + more)
    ir_size = (pairs[0][1].shape[1], pairs[0][1].shape[0])
    to_full = 1.0 / _vis_to_work(pairs[0][2], opts.work_size)  # work -> VIS px
    bar = AGREEMENT * (opts.max_error if opts.max_error is not None else vouch.MAX_SELF_CHECK * to_full)
    apart = np.array([[corner_error(a.homography, b.homography, ir_size) for b, _ in accepted] for a, _ in accepted])
    votes = (apart <= bar).sum(axis=1)
    win = min(range(len(accepted)), key=lambda i: (-votes[i], accepted[i][0].error_px))
    if 2 * votes[win] <= len(accepted):
        i, j = np.unravel_index(int(np.argmax(apart)), apart.shape)
        raise RegistrationRefused(
            f"refused: pairs {accepted[i][1]} and {accepted[j][1]} were each accepted but their answers are "
            f"{apart[i, j]:.1f} px apart (> {bar:.1f}) and no majority agrees: one is wrong, or the scenes lie at "
            "different distances (a homography fits one); calibrate on scenes at your working distance, or use --method target"
        )
    best, name = accepted[win]
    agree = apart[win] <= bar
    best.checks.update(pairs_tried=len(pairs), pairs_accepted=len(accepted), pairs_agreeing=int(votes[win]), agreement_px=round(float(apart[win][agree].max()), 3))
    return PairsAnswer(best, name, [n for (_, n), ok in zip(accepted, agree) if not ok])


def assess(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> tuple[AutoResult, str | None]:
    """The best estimate and, when it cannot be vouched for, the one-line refusal (else None)."""
    opts = options or AutoOptions()
    result, to_full = _estimate(ir, vis, opts)
    max_error = opts.max_error / to_full if opts.max_error is not None else None
    failed = vouch.failed_check(result.checks, max_error)
    if not failed:  # the costly check last, only for an answer that passed the rest
        copies, bar = vouch.self_check_plan(result.checks, max_error)
        self_px, lost = _self_check(ir, vis, opts, result.homography, bar * to_full, copies)
        self_px /= to_full
        result.checks["self_check_px"] = round(self_px, 4)
        result.checks["self_check_lost"] = lost
        # The self-check is the direct measurement of how far a re-registration lands.
        result.error_px = round(self_px * to_full, 3)
        failed = vouch.failed_check(result.checks, max_error)
    if not failed:
        return result, None
    # A simpler model does not help an empty half (its corners are extrapolated all the
    # same), so that refusal carries its own advice.
    simpler = ", --model affine" if opts.model == "homography" else ""  # not advice to give an affine run
    advice = "" if "; " in failed else f"; try a scene with more shared structure{simpler}, or --method target"
    return result, f"refused: {failed}{advice}"


def _self_check(
    ir: np.ndarray, vis: np.ndarray, opts: AutoOptions, h: np.ndarray, bar: float, copies: int = vouch.SELF_CHECK_COPIES
) -> tuple[float, int]:
    """How far re-registrations of known-warped copies of the IR land from the answer ``h``.

    Returns (distance, lost): the largest distance (mean corner error, VIS px) among the
    ``copies`` copies that came back (vouch.self_check_plan says how many), and how many
    copies were *lost* on the way.
    A copy is lost when it lands more than SELF_CHECK_LOST x ``bar`` away (or has too few
    edges left to register); it is replaced by a fresh copy, once.  A second lost copy
    ends the check with that copy's distance, as does the first copy landing between
    ``bar`` and the lost distance: either way the verdict is settled.

    Why re-register at all: the edge objective of a real pair can have two optima of
    nearly equal score a few pixels apart (parallax, repeated structure), and which one
    the search and the restarts reach depends on details as small as the resampling of
    the picture.  Re-running the *whole* pipeline on a picture whose correct answer is
    known in advance (``h`` composed with the warp) asks directly whether the method would
    give the same answer again.  An answer that does not survive this is not one the
    method can vouch for.

    Why one lost copy is forgiven: a copy landing tens of pixels away is a copy whose own
    coarse search failed (the warp pushed its best peak out of reach), which says little
    about the answer's precision, while a copy landing 1-5 px away says the answer sits in
    a valley the method does not come back to.  Seeds 0-17 of the known-warp evaluation
    held 3 correct answers refused only for one lost copy (15-74 px; the other two copies
    within 0.3 px) and no wrong answer that this lets through (docs/CALIBRATION_HISTORY.md).
    """
    return judge_copies(copy_distances(ir, vis, opts, h), bar, copies)[:2]


def copy_distances(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions, h: np.ndarray) -> Iterator[float]:
    """The self-check's copies, registered one at a time: how far each lands from ``h`` (mean
    corner error, VIS px; infinite for a copy with too few edges left).  Endless and lazy, so
    the self-check registers only the copies its verdict needs."""
    size = (ir.shape[1], ir.shape[0])
    rng = np.random.default_rng(opts.seed + 7)
    corners = image_corners(size)
    while True:
        warp = random_homography(size, rng, SELF_CHECK_WARP)
        if opts.model != "homography":  # a warp the model cannot undo would land off by its own residual
            warp, _ = fit_model(corners, project(warp, corners), opts.model)
        copy = cv2.warpPerspective(ir, warp, size, flags=cv2.INTER_LINEAR)
        try:
            yield corner_error(_best_fit(copy, vis, opts)[0] @ warp, h, size)
        except RegistrationRefused:  # a copy with too few edges left: nothing comes back
            yield math.inf


def judge_copies(distances: Iterable[float], bar: float, copies: int) -> tuple[float, int, int]:
    """The self-check's verdict on its copies' distances, in order (see _self_check):
    (largest distance, copies lost, copies back).  Fewer than ``copies`` back with the
    largest distance within ``bar`` means ``distances`` ran out (a recorded, finite list)."""
    worst, lost, back = 0.0, 0, 0
    for distance in distances:
        if distance > SELF_CHECK_LOST * bar:
            lost += 1
            if lost > SELF_CHECK_MAX_LOST:
                return distance, lost, back
            continue
        back += 1
        worst = max(worst, distance)
        if worst > bar or back == copies:
            break
    return worst, lost, back


def _best_fit(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions) -> tuple[np.ndarray, _Parts]:
    """Stages 1-4 (search, refine, explore, dense): the best full-size IR -> VIS homography
    and the pieces the checks need."""
    check_choice("model", opts.model, MODEL_CHAIN)
    work = _prepare(ir, vis, opts.work_size)
    size = _size(work.ir)
    peaks, search_checks = _search(work, opts)
    fields = {sigma: EdgeField(work.vis, sigma) for sigma in (COARSE, FINE)}
    points = {sigma: _subsample(edge_points(work.ir, sigma), 20000, opts.seed) for sigma in (COARSE, FINE)}
    if len(points[FINE]) < MIN_EDGE_POINTS or len(fields[FINE].points) < MIN_EDGE_POINTS:
        raise RegistrationRefused("refused: too few edges to register: use a scene with more structure or --method target")
    ends = _explore(fields, points, [refine(fields, points, p.g, opts.model, size) for p in peaks], opts, size)
    ir_valid = fill_mask(work.ir)
    aligner = DenseAligner(work.ir, _dense_vis(work), ir_valid)
    dense = _dense_ends(aligner, ends, opts.model, size)
    h = work.vis_to_full @ dense[0].g @ work.ir_to_work
    return h / h[2, 2], _Parts(work, size, fields, points, ends, search_checks, ir_valid, aligner, dense)


def _dense_vis(work: _Work) -> np.ndarray:
    """The VIS picture the dense stage compares with: blurred to the IR's sharpness when
    the IR was enlarged to work scale.

    Why: an enlarged IR lacks the fine detail the VIS still has, and the descriptors see
    that difference as structure; once the dense fit runs to convergence it settles on a
    minimum biased by up to a pixel (synthetic 320x240 IR enlarged 2x: 0.9 px off, copies
    1.7 px apart).  Same-size pairs (k <= 1) are left as they are.
    """
    k = work.ir_to_work[0, 0]
    if k <= 1.0:
        return work.vis
    # Linear enlargement by k smooths like a triangle of width k (sigma ~ 0.4 k) against
    # ~0.4 px for a native pixel; the VIS gets the difference.
    return cv2.GaussianBlur(work.vis, (0, 0), 0.4 * float(np.sqrt(k * k - 1.0)))


def _dense_ends(aligner: DenseAligner, ends: list[_End], model: str, size: tuple[int, int]) -> list[DenseFit]:
    """Dense refinement from the best distinct ICP ends, lowest descriptor cost first.

    Why: the edge objective often has two near-equal optima a few pixels apart, and which
    one wins flips with the resampling of the picture; the dense descriptor objective is
    smoother and pulls both to the same place far more often (see dense.py).

    Every start runs the coarse pyramid levels; only starts still distinct after them
    (> DENSE_MERGE_PX apart) run the finest level, which costs most.  Starts that met
    on the coarse levels end within a few tenths of a pixel of each other anyway, far
    below RIVAL_PX, so merging them changes neither the answer nor the rival check.
    """
    starts: list[np.ndarray] = []
    for e in ends:  # ends are sorted best edge score first
        if len(starts) == DENSE_STARTS:
            break
        if all(corner_error(e.fit.g, g, size) > 1.0 for g in starts):
            starts.append(e.fit.g)
    coarse: list[np.ndarray] = []
    for g in starts:
        g = aligner.refine(g, model, levels=slice(0, -1)).g
        if all(corner_error(g, c, size) > DENSE_MERGE_PX for c in coarse):
            coarse.append(g)
    return sorted((aligner.refine(g, model, levels=slice(-1, None)) for g in coarse), key=lambda f: f.cost)


@dataclass
class _Parts:
    work: _Work
    size: tuple[int, int]  # work IR size
    fields: dict[float, EdgeField]
    points: dict[float, EdgePoints]
    ends: list[_End]
    search_checks: dict[str, float]
    ir_valid: np.ndarray  # work IR pixels that hold picture (dense.fill_mask)
    aligner: DenseAligner
    dense: list[DenseFit]  # lowest cost first; dense[0].g is the answer


def _checks(parts: _Parts) -> dict[str, float]:
    """The numbers the verdict reads (vouch.failed_check), all at the answer dense[0].g."""
    fields, points, size = parts.fields, parts.points, parts.size
    best = parts.dense[0]
    # Dense "lift": how much lower the descriptor cost is than with the answer shifted
    # 8 px off in 8 directions.  A distinct dense end with nearly the same gain is a rival.
    shifted_costs = []
    for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        t = np.array([[1, 0, 8.0 * np.cos(a)], [0, 1, 8.0 * np.sin(a)], [0, 0, 1.0]])
        shifted_costs.append(parts.aligner.cost(t @ best.g)[0])
    chance_cost = float(np.mean(shifted_costs))
    gain = max(chance_cost - best.cost, 1e-12)
    rival = max((chance_cost - f.cost for f in parts.dense[1:] if corner_error(f.g, best.g, size) > RIVAL_PX), default=0.0)
    chance = vouch.chance_level(fields[FINE], points[FINE], best.g)
    inliers = inlier_fraction(fields[FINE], points[FINE], best.g)
    checks = vouch.local_agreement(parts.work.ir, parts.work.vis, parts.ir_valid, best.g)
    checks.update(
        inliers=inliers,
        chance=chance,
        lift=(inliers - chance) / max(1.0 - chance, 1e-9),
        rival_ratio=rival / gain,
        dense_cost=best.cost,
        dense_lift=gain / max(chance_cost, 1e-12),
        # reported, not checks: how far the edge ICP's own best end is from the answer,
        # and how many distinct dense ends reached the finest level
        icp_distance_px=corner_error(parts.ends[0].fit.g, best.g, size),
        dense_starts=len(parts.dense),
    )
    return checks


def fit_and_checks(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions) -> tuple[np.ndarray, _Parts, dict[str, float]]:
    """The best fit (full-size IR -> VIS px), what it was made from, and every check but the self-check."""
    h, parts = _best_fit(ir, vis, opts)
    checks = dict(parts.search_checks)
    checks.update(_checks(parts))
    return h, parts, checks


def _estimate(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions) -> tuple[AutoResult, float]:
    """The best fit with every check except the self-check; also returns work -> VIS px."""
    h, parts, checks = fit_and_checks(ir, vis, opts)
    to_full = float(parts.work.vis_to_full[0, 0])
    # Reported error until the self-check replaces it: the distance between the two
    # estimators' answers, a conservative stand-in.
    error_px = to_full * checks["icp_distance_px"]
    result = AutoResult(
        homography=h,
        score=round(float(np.clip(checks["lift"], 0.0, 1.0)), 4),
        error_px=round(error_px, 3),
        checks={k: round(float(v), 4) for k, v in checks.items()},
        model=opts.model,
    )
    return result, to_full
