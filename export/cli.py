"""pf-export: write a model as an ONNX file (or, on the target GPU, a TensorRT engine).

    pf-export --model lite --format onnx --size 640x512 [--dynamic] --out lite.onnx [--json report.json]

Every step logs what it did, how long it took and, for files, their size; the JSON report
holds the same, plus ``max_abs_err`` of ONNX Runtime against torch on the same inputs.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from pf_stream.errors import UserError, check_choice, cli_entry, parse_size

log = logging.getLogger("pf_stream.export")

FORMATS = ("onnx", "engine", "torch-trt")
FP32_TOLERANCE = 1e-4


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pf-export", description="Export a fusion model to ONNX (or TensorRT on the target).")
    p.add_argument("--model", default="lite", help="lite | full | classic (default lite)")
    p.add_argument("--weights", help="safetensors weights (default: the weights shipped for --model)")
    p.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled .pth weights file")
    p.add_argument("--format", default="onnx", help="onnx | engine | torch-trt (default onnx)")
    p.add_argument("--size", default="640x512", help="WIDTHxHEIGHT traced (and checked) size, default 640x512")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width: one file for any size")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 (engines only)")
    p.add_argument("--out", required=True, help="output file")
    p.add_argument("--json", help="write a JSON report here")
    return p


def _check_writable(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise UserError(f"cannot write {path}: {parent} is not a folder")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".pf-export-{path.name}.probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}; choose another --out") from None


def export_onnx_report(args: argparse.Namespace) -> dict:
    from pf_stream.export.onnx import check_onnx, export_onnx
    from pf_stream.model.registry import load_model

    size = parse_size(args.size)
    out = Path(args.out)
    model, info = load_model(args.model, args.weights, trust_pickle=args.trust_pickle)
    t0 = time.perf_counter()
    export_onnx(model, out, size, dynamic=args.dynamic)
    t_export = time.perf_counter() - t0
    log.info("exported %s -> %s (%.1f s, %.2f MB)", info.describe(), out, t_export, out.stat().st_size / 1e6)

    w, h = size
    sizes = [size] + ([(w + 1 if w % 2 == 0 else w - 1, h + 1 if h % 2 == 0 else h - 1), (h, w)] if args.dynamic else [])
    t0 = time.perf_counter()
    checks = check_onnx(out, model, sizes)
    worst = max(c.max_abs_err for c in checks)
    log.info(
        "onnx.checker passed; ONNX Runtime vs torch max |err| %.2e over sizes %s (%.1f s)",
        worst, ", ".join(f"{c.size[0]}x{c.size[1]}" for c in checks), time.perf_counter() - t0,
    )
    return {
        "model": args.model,
        "weights": info.weights,
        "trained": info.trained,
        "format": "onnx",
        "file": str(out),
        "file_mb": round(out.stat().st_size / 1e6, 3),
        "size": f"{w}x{h}",
        "dynamic": bool(args.dynamic),
        "opset": 17,
        "export_s": round(t_export, 3),
        "checked_sizes": [f"{c.size[0]}x{c.size[1]}" for c in checks],
        "max_abs_err": worst,
        "max_abs_err_ok": worst <= FP32_TOLERANCE,
    }


@cli_entry("pf-export")
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="pf-export: %(message)s")
    args = build_parser().parse_args(argv)
    check_choice("format", args.format, FORMATS)
    check_choice("precision", args.precision, ("fp32", "fp16", "int8"))
    parse_size(args.size)
    _check_writable(Path(args.out))
    if args.json:
        _check_writable(Path(args.json))
    if args.format != "onnx":
        raise UserError(
            f"--format {args.format} builds on the target GPU with TensorRT, which is not installed here: "
            "pip install 'pf-stream[gpu]' on the Jetson/GPU machine, or export --format onnx"
        )
    if args.precision != "fp32":
        raise UserError("ONNX files are exported in fp32 (engines choose fp16/int8 when built); drop --precision")
    report = export_onnx_report(args)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    if not report["max_abs_err_ok"]:
        raise UserError(f"ONNX Runtime differs from torch by {report['max_abs_err']:.2e} (> {FP32_TOLERANCE}): do not ship this file")
    return 0


if __name__ == "__main__":
    main()
