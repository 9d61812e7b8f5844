"""Record the evidence ``auto`` judges on the known-warp evaluation; replay its rules offline.

    python -m pf_stream.calibration.record --data ../shared/data --seeds 196-205 --out runs/
    python -m pf_stream.calibration.record --replay runs/

Why: a change to an acceptance rule (vouch.py) has to be judged on hundreds of held-out
cases (docs/CALIBRATION.md), and each case costs a minute of registrations.  Recorded once --
each case's answer, its checks, every cell's block-matching costs, six self-check copies and
the reference's estimates (evaluate.py) -- the rules can be replayed on the very same
evidence in seconds, so two rule sets are compared on identical cases rather than on two
runs.  Replay reads vouch.py as it is in the working tree: record, change a threshold,
replay.  What replay cannot see is a change to the registration itself (auto.py): that
needs a new recording.

A record is a pickle of plain dicts and numpy arrays, one file per seed, written when the
seed is done (an interrupted run keeps the seeds it finished, and resumes after them).
Load only records you made.
"""

from __future__ import annotations

import argparse
import itertools
import math
import pickle
from pathlib import Path

import cv2
import numpy as np

from pf_stream.calibration import auto, evaluate, vouch
from pf_stream.calibration.auto import AutoOptions, RegistrationRefused
from pf_stream.calibration.geometry import corner_error, random_homography

COPIES_RECORDED = vouch.THIN_HALF_COPIES + auto.SELF_CHECK_MAX_LOST  # enough for any verdict the rules can reach
GOOD_PX = 2.0  # relative error (VIS px) within which an accepted answer is good (the bar)


def evidence(ir: np.ndarray, vis: np.ndarray, options: AutoOptions | None = None) -> dict:
    """What the verdict on ``auto``'s answer for this pair is made from.

    The answer (``h``, full-size IR -> VIS px) and its checks as ``assess`` computes them;
    the cell costs behind the ``local_*`` checks (vouch.cell_costs), so cell thresholds can
    change on replay; and, for an answer with enough confirming cells to ever pass,
    COPIES_RECORDED self-check distances (VIS px, in the order the self-check draws them).
    """
    opts = options or AutoOptions()
    h, parts, checks = auto.fit_and_checks(ir, vis, opts)  # the evaluation's look inside auto: the checks' inputs
    costs, covered, size = vouch.cell_costs(parts.work.ir, parts.work.vis, parts.ir_valid, parts.dense[0].g)
    copies = None
    if checks["local_agree"] >= vouch.MIN_AGREE:
        copies = list(itertools.islice(auto.copy_distances(ir, vis, opts, h), COPIES_RECORDED))
    to_full = float(parts.work.vis_to_full[0, 0])
    return {"h": h, "checks": checks, "costs": costs, "covered": covered, "size": size, "to_full": to_full, "copies": copies}


def record_seed(data: Path, seed: int, cases: int = 10, mismatched: int = 6, options: AutoOptions | None = None) -> list[dict]:
    """The cases of ``evaluate --seed`` (the same pairs, warps and reference copies), recorded."""
    opts = options or AutoOptions()
    rng, reference_rng = np.random.default_rng(seed + 1000), np.random.default_rng(seed + 2000)
    records = []
    for name, ir, vis in evaluate.pick_pairs(data, cases, seed):
        size = (ir.shape[1], ir.shape[0])
        warp = random_homography(size, rng)
        rec = {"kind": "warp", "seed": seed, "name": name, "ir_size": size, "truth": np.linalg.inv(warp)}
        rec["found"] = evaluate.reference_estimates(ir, vis, opts, evaluate.copy_warps(size, reference_rng))
        rec.update(_evidence_or_refusal(cv2.warpPerspective(ir, warp, size, flags=cv2.INTER_LINEAR), vis, opts))
        records.append(rec)
    for name, ir, vis in evaluate.mismatched_pairs(data, mismatched, seed):
        records.append({"kind": "mismatched", "seed": seed, "name": name, **_evidence_or_refusal(ir, vis, opts)})
    return records


def _evidence_or_refusal(ir: np.ndarray, vis: np.ndarray, opts: AutoOptions) -> dict:
    try:
        return evidence(ir, vis, opts)
    except RegistrationRefused as refusal:  # too few edges: refused before any answer
        return {"refused": str(refusal)}


def verdict(rec: dict, max_self_check: float | None = None) -> str | None:
    """The working tree's rules on a recorded case: the refusal ``assess`` would give, or None.
    ``max_self_check``: work px, as in vouch.failed_check."""
    if "refused" in rec:
        return rec["refused"]
    checks = dict(rec["checks"])
    checks.update(vouch.summarise_cells(rec["costs"], rec["covered"], rec["size"]))
    failed = vouch.failed_check(checks, max_self_check)
    if failed or rec["copies"] is None:
        return failed or "no self-check copies were recorded (too few confirming cells when recorded)"
    copies, bar = vouch.self_check_plan(checks, max_self_check)
    worst, lost, back = auto.judge_copies([d / rec["to_full"] for d in rec["copies"]], bar, copies)
    if back < copies and worst <= bar and lost <= auto.SELF_CHECK_MAX_LOST:
        return f"the rules ask for more self-check copies than the {len(rec['copies'])} recorded"
    checks.update(self_check_px=worst, self_check_lost=lost)
    return vouch.failed_check(checks, max_self_check)


def grade(rec: dict) -> tuple[float, float]:
    """(relative error, reference spread), VIS px: as evaluate.known_warp_cases measures them."""
    if "h" not in rec:
        return math.inf, math.nan
    own, spread = evaluate.medoid(rec["found"], rec["ir_size"])
    return corner_error(rec["h"], own @ rec["truth"], rec["ir_size"]), spread


def replay(records: list[dict]) -> str:
    """A summary of the working tree's rules on the records (markdown)."""
    good: dict[int, int] = {}
    notes, n_warp, n_mismatched, accepted_mismatched = [], 0, 0, 0
    for rec in records:
        accepted = verdict(rec) is None
        if rec["kind"] == "mismatched":
            n_mismatched += 1
            accepted_mismatched += accepted
            if accepted:
                notes.append(f"- **mismatched pair accepted**: seed {rec['seed']} {rec['name']}")
            continue
        n_warp += 1
        rel, spread = grade(rec)
        good[rec["seed"]] = good.get(rec["seed"], 0) + int(accepted and rel <= GOOD_PX)
        if accepted and rel > GOOD_PX:
            label = "**wrong**" if spread <= GOOD_PX else "ungradeable (judge against more estimates)"
            notes.append(f"- {label}: seed {rec['seed']} {rec['name']}, relative {rel:.2f} px, reference spread {spread:.2f} px")
    total = sum(good.values())
    lines = [
        "| seeds | good (accepted, within 2 px) | seeds with >= 6 good | mismatched accepted |",
        "|---|---|---|---|",
        f"| {len(good)} | {total} of {n_warp} ({100 * total / max(n_warp, 1):.1f} %) | {sum(v >= 6 for v in good.values())} of {len(good)} "
        f"| {accepted_mismatched} of {n_mismatched} |",
    ]
    return "\n".join(lines + notes)


def _seeds(text: str) -> list[int]:
    seeds = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        seeds += list(range(int(first), int(last or first) + 1))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--seeds", type=_seeds, default=[0], help="e.g. 196-205 or 0,3,7")
    parser.add_argument("--out", type=Path, default=Path("records"), help="folder for the records (one file per seed)")
    parser.add_argument("--replay", type=Path, metavar="FOLDER", help="replay the working tree's rules on the records in FOLDER")
    args = parser.parse_args()
    if args.replay:
        records = [rec for path in sorted(args.replay.glob("seed_*.pkl")) for rec in pickle.loads(path.read_bytes())]
        print(replay(records))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        path = args.out / f"seed_{seed}.pkl"
        if path.exists():
            continue  # recorded by an earlier run
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(record_seed(args.data, seed)))
        tmp.replace(path)
        print(f"seed {seed} recorded: {path}", flush=True)


if __name__ == "__main__":
    main()
