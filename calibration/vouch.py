"""The last stage of ``--method auto``: may the answer be written?  Each check, and the verdict.

An estimate is accepted only if *every* check passes; :func:`failed_check` returns the
first one that fails, worded as the refusal the user reads.  The thresholds were set on
real pairs (roadscene, TNO, known warps and mismatched pairs, many seeds): see the
"Measured accuracy" section of docs/CALIBRATION.md before changing one.

All distances are "work" pixels (see auto.py).
"""

from __future__ import annotations

import numpy as np

from pf_stream.calibration.edges import EdgeField, EdgePoints
from pf_stream.calibration.geometry import project

MIN_EDGE_POINTS = 200  # fewer edges than this in either picture: nothing to register
MIN_LIFT = 0.12  # inlier share must beat chance by this fraction of the headroom
RIVAL_SCORE = 0.9  # a distinct dense end gaining this much of the winner's gain over chance: ambiguous
MAX_SELF_CHECK = 1.0  # work px: re-registrations of known-warped copies of the IR must come back this close
MIN_HALF_LIFT = 0.08  # each half of the frame (top, bottom, left, right) must beat chance by this
HALVES = ("top", "bottom", "left", "right")


def chance_hits(vis_edges: EdgeField, pts: EdgePoints, g: np.ndarray, tol: float = 1.5) -> np.ndarray:
    """Per IR edge point: how often it lands near a compatible VIS edge when the transform
    is shifted well off the answer (8 directions, 8 and 12 px).  Its mean is the chance level."""
    hits = []
    for radius in (8.0, 12.0):
        for a in np.linspace(0, 2 * np.pi, 8, endpoint=False):
            t = np.array([[1, 0, radius * np.cos(a)], [0, 1, radius * np.sin(a)], [0, 0, 1.0]])
            dist, _, _ = vis_edges.nearest(project(t @ g, pts.xy), pts.bins)
            hits.append(dist <= tol)
    return np.mean(hits, axis=0)


def half_lifts(vis_edges: EdgeField, pts: EdgePoints, g: np.ndarray, chance: np.ndarray, size: tuple[int, int]) -> dict[str, float]:
    """Lift (edge agreement above chance) of the IR edge points in each half of the frame.

    Why: the other checks look at the picture as a whole.  When one part of the scene has
    no outline that both cameras see (TNO 24: barn and trees on top, bare grass below),
    the whole-picture lift is fine and re-registrations agree -- every one is pulled
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


def failed_check(checks: dict[str, float], max_self_check: float = MAX_SELF_CHECK) -> str | None:
    """The first failed acceptance check, as the text of a refusal; None when all pass.
    ``max_self_check``: work px (``--max-error`` converted, else MAX_SELF_CHECK).

    The self-check (``self_check_px``) is the most expensive, so auto computes it last,
    only for estimates that passed everything else; it is read here when present.
    """
    if checks["lift"] < MIN_LIFT:
        return f"edges agree barely better than chance (lift {checks['lift']:.2f} < {MIN_LIFT})"
    if checks["rival_ratio"] > RIVAL_SCORE:
        return f"a distinct alignment fits as well (rival/best {checks['rival_ratio']:.2f})"
    weakest = min(HALVES, key=lambda h: checks[f"lift_{h}"])
    if checks[f"lift_{weakest}"] < MIN_HALF_LIFT:
        return (
            f"the {weakest} half of the picture has no edges both cameras agree on "
            f"(lift {checks[f'lift_{weakest}']:.2f} < {MIN_HALF_LIFT}), so its corners are guesswork; "
            "use a scene with shared outlines across the whole frame, or --method target"
        )
    if checks.get("self_check_px", 0.0) > max_self_check:
        return (
            f"the answer is not reproducible: the same IR, warped by a known small homography and "
            f"registered again, lands {checks['self_check_px']:.1f} px away (> {max_self_check:.1f}, see --max-error)"
        )
    return None
