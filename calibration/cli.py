"""pf-calibrate: estimate the IR -> VIS transform and write pf-stream's calibration YAML.

Examples::

    pf-calibrate --method target --board 9x6 --ir shots/ir --vis shots/vis -o rig.yaml --overlay check.png
    pf-calibrate --method target --board 9x6 --ir cam0 --vis rtsp://cam/vis --pairs 12 -o rig.yaml
    pf-calibrate --method auto --ir scene_ir.png --vis scene_vis.png -o rig.yaml
    pf-calibrate --method points clicks.csv --ir-size 640x512 --vis-size 1920x1080 -o rig.yaml

--ir/--vis take a picture, a folder of pictures (paired by file name), or any pf-stream
source (camera, RTSP, video file), from which --pairs pairs are grabbed.  With several
pairs, auto writes the answer a majority of the accepted pairs agree on.
Exit codes: 0 written; 2 bad input, nothing found, or auto refused (one line on stderr).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

from pf_stream.calibration.geometry import MIN_POINTS, MODELS, fit_model, folds, project, rms_error
from pf_stream.calibration.images import IMAGE_SUFFIXES, check_size, read_gray
from pf_stream.calibration.schema import Calibration, save_calibration
from pf_stream.errors import ArgumentParser, UserError, check_writable, cli_entry, parse_size

METHODS = ("target", "auto", "points")
Pair = tuple[str, np.ndarray, np.ndarray]


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="pf-calibrate", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1]
    )
    p.add_argument("--method", required=True, choices=METHODS, help="target: checkerboard/circle grid; auto: any scene; points: a CSV/YAML of point pairs")
    p.add_argument("points_file", nargs="?", help="with --method points: the CSV or YAML of ir_x, ir_y, vis_x, vis_y rows")
    p.add_argument("--ir", help="IR picture, folder of pictures, or live source URI")
    p.add_argument("--vis", help="VIS picture, folder of pictures, or live source URI")
    p.add_argument("--pairs", type=int, help="live sources: pairs to grab (target 10, auto 1)")
    p.add_argument("--interval", type=float, default=1.0, help="live sources: seconds between grabbed pairs (default 1)")
    p.add_argument("--board", default="9x6", help="target: inner corners (chessboard) or circles per row x column (default 9x6)")
    p.add_argument("--pattern", default="chessboard", choices=("chessboard", "circles"), help="target: chessboard or asymmetric circle grid")
    p.add_argument("--model", default="homography", choices=MODELS, help="transform model (default homography)")
    p.add_argument("--max-error", type=float, help="auto: how far (VIS px, mean corner distance) the self-check re-registrations may land from the answer (default 1 px at a 640 px working width, 1.25 px for a settled answer: docs/CALIBRATION.md)")
    p.add_argument("--ir-size", help="points: IR image size WxH (else from the file or --ir)")
    p.add_argument("--vis-size", help="points: VIS image size WxH (else from the file or --vis)")
    p.add_argument("-o", "--output", default="calibration.yaml", help="calibration YAML to write (default calibration.yaml)")
    p.add_argument("--overlay", help="also write a checkerboard/blend picture to judge the alignment (.png or .jpg)")
    return p


def check_numbers(args: argparse.Namespace) -> None:
    """Refuse numbers that make no sense before any work is done.

    Why: nan passes every "> 0" test, and a bad value used to surface only after a
    registration of several seconds, as a traceback (--max-error -1, --interval -1).
    An infinite --max-error would switch the self-check off: auto must not write what it
    cannot vouch for.
    """
    if args.max_error is not None and not (math.isfinite(args.max_error) and args.max_error > 0):
        raise UserError(f"--max-error must be a number of VIS pixels greater than 0, got {args.max_error}: e.g. --max-error 2")
    if args.pairs is not None and args.pairs < 1:
        raise UserError(f"--pairs must be at least 1, got {args.pairs}")
    if not (math.isfinite(args.interval) and 0 <= args.interval <= 3600):
        raise UserError(f"--interval must be 0 to 3600 seconds, got {args.interval}")


def _same_place(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def check_outputs(args: argparse.Namespace) -> None:
    """Refuse outputs that cannot be written, or that would replace an input, before any work.

    Why: ``-o`` or ``--overlay`` naming an input picture overwrote it with YAML or with the
    overlay (the pictures are often the only copy of a calibration session), and an
    unwritable place or a ``--overlay check.txt`` only failed after the whole registration.
    """
    from pf_stream.calibration.overlay import OVERLAY_SUFFIXES

    outputs = [("-o", Path(args.output))]
    if Path(args.output).suffix.lower() in IMAGE_SUFFIXES:
        raise UserError(f"-o {args.output} is a picture name but the calibration is YAML: name it .yaml, e.g. -o rig.yaml")
    if args.overlay:
        if Path(args.overlay).suffix.lower() not in OVERLAY_SUFFIXES:
            raise UserError(f"--overlay {args.overlay}: name it .png or .jpg, e.g. --overlay check.png")
        outputs.append(("--overlay", Path(args.overlay)))
    inputs = [(f"--{w}", Path(v)) for w, v in (("ir", args.ir), ("vis", args.vis)) if v] + ([("points file", Path(args.points_file))] if args.points_file else [])
    for flag, out in outputs:
        for what, given in inputs:
            inside = given.is_dir() and _same_place(out.parent, given) and out.suffix.lower() in IMAGE_SUFFIXES
            if _same_place(out, given) or inside:
                raise UserError(f"{flag} {out} would overwrite the {what} input{' folder' if inside else ''}: choose another {flag}")
        check_writable(out, flag)


# --- inputs --------------------------------------------------------------------------------


def _pictures(folder: Path, what: str) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES:
            if p.stem in found:  # which one would pair was up to the file system's order
                raise UserError(f"{what} folder {folder} holds two pictures named {p.stem!r} ({found[p.stem].name}, {p.name}): pairs are matched by name, keep one")
            found[p.stem] = p
    return found


def _folder_pairs(ir_dir: Path, vis_dir: Path) -> list[Pair]:
    ir_files, vis_files = _pictures(ir_dir, "IR"), _pictures(vis_dir, "VIS")
    common = sorted(ir_files.keys() & vis_files.keys())
    if not common:
        raise UserError(f"no picture names in common between {ir_dir} ({len(ir_files)} pictures) and {vis_dir} ({len(vis_files)}): pairs are matched by file name")
    alone = [f"IR {n}" for n in sorted(ir_files.keys() - vis_files.keys())] + [f"VIS {n}" for n in sorted(vis_files.keys() - ir_files.keys())]
    if alone:  # they used to be left out without a word
        more = f" and {len(alone) - 5} more" if len(alone) > 5 else ""
        print(f"pf-calibrate: warning: {len(alone)} pictures have no partner of the same name, left out: {', '.join(alone[:5])}{more}", file=sys.stderr)
    return [(name, read_gray(ir_files[name], "IR picture"), read_gray(vis_files[name], "VIS picture")) for name in common]


def _kind(text: str) -> str:
    path = Path(text)
    if path.is_dir():
        return "folder"
    if "://" not in text and path.suffix.lower() in IMAGE_SUFFIXES:
        return "picture"
    return "live source"


def load_pairs(ir: str | None, vis: str | None, live_count: int, interval: float, accept=None) -> list[Pair]:
    """(name, ir_gray, vis_gray) pairs from pictures, folders, or live sources."""
    if not ir or not vis:
        raise UserError("give both --ir and --vis (pictures, folders, or live sources)")
    ir_kind, vis_kind = _kind(ir), _kind(vis)
    if ir_kind != vis_kind:  # was "VIS picture synthetic: not found" for --ir a.png --vis synthetic://
        raise UserError(f"--ir {ir} is a {ir_kind} but --vis {vis} a {vis_kind}: give two pictures, two folders, or two live sources")
    if ir_kind == "folder":
        return _folder_pairs(Path(ir), Path(vis))
    if ir_kind == "picture":
        return [(Path(ir).name, read_gray(ir, "IR picture"), read_gray(vis, "VIS picture"))]
    from pf_stream.calibration.live import grab_pairs

    return grab_pairs(ir, vis, live_count, interval=interval, accept=accept)


def _sizes(pairs: list[Pair]) -> tuple[tuple[int, int], tuple[int, int]]:
    for name, ir, vis in pairs:  # pictures were checked when read; live frames are checked here
        check_size(ir, f"IR of {name}"), check_size(vis, f"VIS of {name}")
    ir_sizes = {(p[1].shape[1], p[1].shape[0]) for p in pairs}
    vis_sizes = {(p[2].shape[1], p[2].shape[0]) for p in pairs}
    if len(ir_sizes) > 1 or len(vis_sizes) > 1:
        raise UserError(f"all IR pictures must share one size and all VIS pictures another; got IR {sorted(ir_sizes)}, VIS {sorted(vis_sizes)}")
    return ir_sizes.pop(), vis_sizes.pop()


# --- methods -------------------------------------------------------------------------------


def _run_target(args) -> tuple[Calibration, Pair | None]:
    from pf_stream.calibration import target

    board = target.parse_board(args.board)

    def both_see_board(ir: np.ndarray, vis: np.ndarray) -> bool:
        return target.detect(ir, board, args.pattern) is not None and target.detect(vis, board, args.pattern) is not None

    pairs = load_pairs(args.ir, args.vis, args.pairs or 10, args.interval, accept=both_see_board)
    ir_size, vis_size = _sizes(pairs)
    res = target.calibrate(pairs, board, args.pattern, args.model)
    cal = Calibration(
        res.homography, ir_size, vis_size, method="target", error_px=res.rms_px, score=res.inliers / res.corners, model=args.model,
        details={"pairs_used": res.pairs_used, "corners": res.corners, "inliers": res.inliers, "board": args.board, "pattern": args.pattern},
    )
    return cal, pairs[0]


def _run_auto(args) -> tuple[Calibration, Pair | None]:
    from pf_stream.calibration.auto import AutoOptions, register_pairs

    pairs = load_pairs(args.ir, args.vis, args.pairs or 1, args.interval)
    ir_size, vis_size = _sizes(pairs)
    answer = register_pairs(pairs, AutoOptions(model=args.model, max_error=args.max_error))
    if answer.disagreeing:
        print(f"pf-calibrate: warning: outvoted: {', '.join(answer.disagreeing)} (accepted alone, but far from the majority's answer)", file=sys.stderr)
    res = answer.result
    details = {"pair": answer.pair, **res.checks}
    pair = next(p for p in pairs if p[0] == answer.pair)
    return Calibration(res.homography, ir_size, vis_size, method="auto", error_px=res.error_px, score=res.score, model=args.model, details=details), pair


def _run_points(args) -> tuple[Calibration, Pair | None]:
    from pf_stream.calibration.points import read_points

    if not args.points_file:
        raise UserError("--method points needs the points file: pf-calibrate --method points clicks.csv ...")
    pts = read_points(args.points_file)
    pair = None
    if args.ir and args.vis:
        pair = load_pairs(args.ir, args.vis, 1, args.interval)[0]
    ir_size = parse_size(args.ir_size) if args.ir_size else pts.ir_size or (pair and (pair[1].shape[1], pair[1].shape[0]))
    vis_size = parse_size(args.vis_size) if args.vis_size else pts.vis_size or (pair and (pair[2].shape[1], pair[2].shape[0]))
    if not ir_size or not vis_size:
        raise UserError("--method points needs both image sizes: --ir-size WxH --vis-size WxH, ir_size/vis_size in the YAML, or --ir/--vis pictures")
    if pair is not None:  # the YAML would describe other pictures than the overlay shows
        for what, given, img in (("IR", ir_size, pair[1]), ("VIS", vis_size, pair[2])):
            if tuple(given) != (img.shape[1], img.shape[0]):
                raise UserError(f"the {what} size {given[0]}x{given[1]} (from --{what.lower()}-size or the points file) differs from the {what} picture's {img.shape[1]}x{img.shape[0]}: drop one of them")
    h, _ = fit_model(pts.ir, pts.vis, args.model)
    if folds(h, tuple(ir_size)):
        # Four clicked pairs with two rows swapped fit such a transform exactly (exit 0 before).
        raise UserError(f"the {args.model} through these points sends part of the IR picture to infinity (folds it over): check {args.points_file} for swapped or mislabelled rows")
    error = None
    if len(pts.ir) > MIN_POINTS[args.model]:
        error = rms_error(h, pts.ir, pts.vis)
        misclick = _misclick(pts.ir, pts.vis, args.model, h, error)
        if misclick is not None:
            print(f"pf-calibrate: warning: point pair {misclick[0] + 1} is {misclick[1]:.1f} px off the fit of the others: a misclick?", file=sys.stderr)
    else:
        print(f"pf-calibrate: warning: {len(pts.ir)} pairs fit a {args.model} exactly: add more to measure the error", file=sys.stderr)
    cal = Calibration(h, tuple(ir_size), tuple(vis_size), method="points", error_px=error, score=None, model=args.model, details={"pairs": len(pts.ir)})
    return cal, pair


def _misclick(ir: np.ndarray, vis: np.ndarray, model: str, h: np.ndarray, error: float) -> tuple[int, float] | None:
    """The pair (index, px) that sits far off the fit, or None: one misclick among good clicks.

    Measured against the fit of the *other* pairs: a least-squares fit spreads one bad pair's
    error over all of them, and no pair can lie more than sqrt(n) x RMS off its own fit, so
    "3 x the RMS of the fit through it" never fired below 10 pairs (a 6-pair file with one
    pair 600 px off passed silently at 152 px RMS).  With just one pair to spare, every
    leave-one-out fit is exact and cannot tell which pair is wrong: then the fit through all.
    """
    residual = np.linalg.norm(project(h, ir) - vis, axis=1)
    worst, worst_px, rest_px = int(np.argmax(residual)), float(residual.max()), error
    if len(ir) - 1 > MIN_POINTS[model]:
        best = None
        for i in range(len(ir)):
            keep = np.arange(len(ir)) != i
            try:
                h_i, _ = fit_model(ir[keep], vis[keep], model)
            except UserError:  # the others alone are degenerate (e.g. on one line)
                continue
            rms_i = rms_error(h_i, ir[keep], vis[keep])
            if best is None or rms_i < best[1]:
                best = (i, rms_i, float(np.linalg.norm(project(h_i, ir[i : i + 1]) - vis[i])))
        if best is not None:
            worst, rest_px, worst_px = best
    return (worst, worst_px) if worst_px > max(3.0, 3.0 * rest_px) else None


@cli_entry("pf-calibrate")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_numbers(args)
    check_outputs(args)
    if args.points_file and args.method != "points":
        raise UserError(f"unexpected argument {args.points_file!r}: only --method points takes a file")
    run = {"target": _run_target, "auto": _run_auto, "points": _run_points}[args.method]
    cal, pair = run(args)
    if folds(cal.homography, cal.ir_size):  # pf-stream refuses to load such a file (schema.py)
        raise UserError(f"the {cal.model} found sends part of the IR picture to infinity (folds it over): the pictures do not show one scene; nothing written")
    if args.overlay:
        if pair is None:
            raise UserError("--overlay needs the pictures: give --ir and --vis")
        from pf_stream.calibration.overlay import write_overlay

        write_overlay(args.overlay, pair[1], pair[2], cal.homography)
    save_calibration(cal, args.output)
    err = "n/a" if cal.error_px is None else f"{cal.error_px:.2f} px"
    score = "" if cal.score is None else f", score {cal.score:.2f}"
    print(f"wrote {args.output}: {cal.method} {cal.model}, error {err}{score}, IR {cal.ir_size[0]}x{cal.ir_size[1]} -> VIS {cal.vis_size[0]}x{cal.vis_size[1]}")
    return 0


if __name__ == "__main__":
    main()
