"""pf-eval: score fusion quality with the field's protocol (EN SD SF AG MI SCD VIF Qabf SSIM).

Image pairs (a folder with ir/ and vi/ of matching names)::

    pf-eval --data ../shared/data/tno --method max --json tno_max.json
    pf-eval --data ../shared/data/roadscene --list ../shared/data/roadscene/cddfuse_test50.txt \\
            --model lite --weights lite.safetensors --save-dir out/roadscene --json rs_lite.json

Temporal flicker of a fused video (a clip folder, a pair of mp4s, or a folder of those)::

    pf-eval --sequence ../shared/data/sequences/m3svd_clips --method classic --json flicker.json

Prints an aligned table on stdout; --json writes every row and the means.  What each
metric means, and the published numbers to compare with, are in docs/QUALITY.md.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path

from pf_stream.errors import EXIT_INTERRUPTED, ArgumentParser, UserError, cli_entry

PROG = "pf-eval"


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog=PROG, description="Score IR+VIS fusion quality (CDDFuse/PromptFusion protocol) or temporal flicker.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--data", metavar="DIR", help="folder with ir/ and vi/ subfolders of matching image names")
    what.add_argument("--sequence", metavar="DIR", help="sequence folder (ir/ + vi/ frames, or ir.mp4 + vi.mp4), or a folder of them")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--model", metavar="NAME", help="fusion model: lite | full | classic")
    how.add_argument("--method", metavar="NAME", help="weight-free baseline: average | max | classic")
    p.add_argument("--weights", metavar="FILE", help="weights for --model (default: the shipped ones)")
    p.add_argument("--device", default="cpu", help="cpu | cuda (models only; default cpu)")
    p.add_argument("--list", metavar="FILE", help="with --data: evaluate only these names (one per line, extension optional)")
    p.add_argument("--save-dir", metavar="DIR", help="with --data: write each fused image there as 8-bit PNG (same stem)")
    p.add_argument("--save-colour", action="store_true", help="with --save-dir: put the VIS colour back on (default: gray, the image scored)")
    p.add_argument("--max-frames", type=int, metavar="N", help="with --sequence: use at most N frames of each sequence")
    p.add_argument("--json", metavar="FILE", help="write the full report (per image and means) as JSON")
    return p


def _check_args(args: argparse.Namespace) -> None:
    if args.sequence is not None:
        for flag, value in (("--list", args.list), ("--save-dir", args.save_dir)):
            if value is not None:
                raise UserError(f"{flag} works with --data only")
    elif args.max_frames is not None:
        raise UserError("--max-frames works with --sequence only")
    if args.save_dir is not None and args.data is not None:
        save, data = Path(args.save_dir).resolve(), Path(args.data).resolve()
        if save in (data, data / "ir", data / "vi"):
            raise UserError(f"--save-dir {args.save_dir} would write over the inputs in {args.data}: choose another folder")
    if args.save_colour and args.save_dir is None:
        raise UserError("--save-colour needs --save-dir")
    if args.max_frames is not None and args.max_frames < 2:
        raise UserError("--max-frames must be at least 2 (flicker compares consecutive frames)")
    if args.weights is not None and args.model is None:
        raise UserError("--weights goes with --model, not --method")
    if args.json is not None:
        # Checked (and its folder made) before any work, so a long run cannot end unsaved.
        if Path(args.json).is_dir():
            raise UserError(f"--json {args.json} is a folder: give a file name")
        parent = Path(args.json).resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the folder of --json {args.json}: {exc.strerror or exc}") from None
        if not os.access(parent, os.W_OK):
            raise UserError(f"cannot write --json {args.json}: folder {parent} is not writable")


def _run_images(args: argparse.Namespace, fuser) -> tuple[dict, bool]:
    from pf_stream.quality.evaluate import EvalReport, TablePrinter, evaluate
    from pf_stream.quality.pairs import discover_pairs

    list_file = Path(args.list) if args.list else None
    pairs = discover_pairs(Path(args.data), list_file)
    source = args.data + (f" (list {args.list})" if args.list else "")
    table = TablePrinter([p.name for p in pairs])
    table.header()
    report = EvalReport(fuser=fuser, source=source)
    interrupted = False
    try:
        evaluate(
            pairs,
            fuser,
            source=source,
            save_dir=Path(args.save_dir) if args.save_dir else None,
            save_colour=args.save_colour,
            on_row=lambda r: table.row(r.name, r.scores.as_dict()),
            report=report,
        )
    except KeyboardInterrupt:  # Ctrl-C: keep the rows scored so far (means and --json over them)
        interrupted = True
    table.rule()
    table.row("mean", report.means())
    done = f"{len(report.images)} of {len(pairs)} pairs (interrupted)" if interrupted else f"{len(report.images)} pairs"
    print(f"{done} from {source}, {fuser.label}, {report.seconds:.1f} s")
    if args.save_dir:
        print(f"fused images written to {args.save_dir}")
    return report.to_json(), interrupted


def _run_sequences(args: argparse.Namespace, fuser) -> tuple[dict, bool]:
    from pf_stream.quality.evaluate import PROTOCOL
    from pf_stream.quality.flicker import find_sequences, measure_flicker, sequence_frames

    sequences = find_sequences(Path(args.sequence))
    width = max(len("sequence"), *(len(s.name) for s in sequences))
    print(f"{'sequence':<{width}}{'frames':>8}{'fused':>8}{'IR':>8}{'VIS':>8}{'inputs':>8}{'ratio':>8}")
    results = []
    interrupted = False
    try:
        for seq in sequences:
            r = measure_flicker(seq.name, sequence_frames(seq, args.max_frames), fuser)
            results.append(r)
            print(
                f"{r.name:<{width}}{r.frames:>8}{r.fused_change:>8.2f}{r.ir_change:>8.2f}{r.vis_change:>8.2f}"
                f"{r.input_change:>8.2f}{r.ratio:>8.3f}",
                flush=True,
            )
    except KeyboardInterrupt:  # Ctrl-C: keep the sequences measured so far
        interrupted = True
    ratios = [r.ratio for r in results if math.isfinite(r.ratio)]
    mean_ratio = sum(ratios) / len(ratios) if ratios else float("nan")
    done = f"{len(results)} of {len(sequences)} sequence(s) (interrupted)" if interrupted else f"{len(results)} sequence(s)"
    print(f"mean flicker ratio {mean_ratio:.3f} over {done}, {fuser.label}")
    print("(mean |frame-to-frame change| in gray levels; ratio = fused / per-pixel max of the IR and VIS changes)")
    return {
        "tool": PROG,
        "mode": "sequence",
        "source": args.sequence,
        "fuser": {"label": fuser.label, **fuser.details},
        "definition": "ratio = mean|F_t-F_t-1| / mean max(|IR_t-IR_t-1|, |VIS_t-VIS_t-1|), 8-bit gray levels",
        "gray": PROTOCOL.split(";")[0],
        "mean_ratio": mean_ratio,
        "sequences": [r.as_dict() for r in results],
    }, interrupted


@cli_entry(PROG)
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(message)s")
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    _check_args(args)

    from pf_stream.quality.evaluate import write_json
    from pf_stream.quality.fusers import make_fuser

    fuser = make_fuser(method=args.method, model=args.model, weights=args.weights, device=args.device)
    try:
        payload, interrupted = _run_sequences(args, fuser) if args.sequence else _run_images(args, fuser)
    finally:
        fuser.close()
    payload["interrupted"] = interrupted  # a partial report says so; its means cover the rows it holds
    if args.json:
        write_json(Path(args.json), payload)
        print(f"{'partial report' if interrupted else 'report'} written to {args.json}")
    if interrupted:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    main()
