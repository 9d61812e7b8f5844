"""pf-export: write a model as an ONNX file, or, on the target GPU, a TensorRT engine.

    pf-export --model lite --format onnx --size 640x512 [--dynamic] --out lite.onnx [--json report.json]
    pf-export --model lite --format engine --precision fp16 --size 640x512 \
              [--min-size 320x256 --max-size 1920x1200] --out engines/
    pf-export --model lite --format engine --precision int8 --calib-dir data/roadscene --out engines/
    pf-export --model lite --format torch-trt --precision fp16 --out engines/

Every step logs what it did, how long it took and, for files, their size; the JSON report
holds the same, plus ``max_abs_err`` of the exported file against torch on the same inputs.
Engines: ``--out`` a folder (or ending in /) names the file for this GPU, TensorRT version,
precision and sizes (see ``pf_stream.backends.engine_cache``); the engine build and the
torch-trt compile happen on the machine that will run them (engines do not move between GPUs).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

from pf_stream.errors import ArgumentParser, UserError, check_choice, check_writable, cli_entry, parse_size

log = logging.getLogger("pf_stream.export")

FORMATS = ("onnx", "engine", "torch-trt")
# The file suffix each format writes.  The backends pick how to load a file by this suffix
# (pf-stream --weights x.engine / x.ep / x.onnx), so a file named otherwise would not load as what it is.
SUFFIXES = {"onnx": ".onnx", "engine": ".engine", "torch-trt": ".ep"}
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
FP32_TOLERANCE = 1e-4


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pf-export", description="Export a fusion model to ONNX (or TensorRT on the target).")
    p.add_argument("--model", default="lite", help="lite | full | classic (default lite)")
    p.add_argument("--weights", help="safetensors weights (default: the weights shipped for --model)")
    p.add_argument("--trust-pickle", action="store_true", help="allow loading a pickled .pth weights file")
    p.add_argument("--format", default="onnx", help="onnx | engine | torch-trt (default onnx)")
    p.add_argument("--size", default="640x512", help="WIDTHxHEIGHT traced (and checked) size, default 640x512")
    p.add_argument("--dynamic", action="store_true", help="symbolic batch, height and width: one file for any size")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16 | int8 (engine / torch-trt only)")
    p.add_argument("--min-size", help="engine / torch-trt: smallest WIDTHxHEIGHT accepted (default: --size)")
    p.add_argument("--max-size", help="engine / torch-trt: largest WIDTHxHEIGHT accepted (default: --size)")
    p.add_argument("--onnx", help="engine: build from this ONNX file instead of exporting --model")
    p.add_argument("--calib-dir", help="int8: folder of real frame pairs, ir/<name> and vi/<name>")
    p.add_argument("--calib-frames", type=int, default=64, help="int8: pairs used for calibration (default 64)")
    p.add_argument("--calib-cache", help="int8: calibration cache file (default: next to the engine, .calib)")
    p.add_argument("--workspace-gb", type=float, default=4.0, help="engine: TensorRT builder workspace (default 4)")
    p.add_argument("--out", required=True, help="output file (.onnx, .engine, .ep by --format); for engine / torch-trt a folder names the file")
    p.add_argument("--json", help="write a JSON report here")
    return p


def _check_outputs_are_not_inputs(args: argparse.Namespace) -> None:
    """--out (or --json) naming the --weights / --onnx file would overwrite it, trained weights lost."""
    inputs = [(flag, value) for flag, value in (("--weights", args.weights), ("--onnx", args.onnx)) if value]
    outputs = [(flag, value) for flag, value in (("--out", args.out), ("--json", args.json)) if value]
    for out_flag, out in outputs:
        if not Path(out).is_file():
            continue
        for in_flag, source in inputs:
            if Path(source).is_file() and os.path.samefile(out, source):
                raise UserError(f"{out_flag} {out} is the {in_flag} file itself: exporting would overwrite it; "
                                f"choose another {out_flag}")
    if args.json and Path(args.json).is_file() and Path(args.out).is_file() and os.path.samefile(args.json, args.out):
        raise UserError("--json and --out name the same file: choose another --json")


def _names_a_folder(out: str) -> bool:
    """--out that is a folder, or ends in /: engine / torch-trt outputs then name the file themselves."""
    return out.endswith(("/", os.sep)) or Path(out).is_dir()


def _check_out_suffix(args: argparse.Namespace) -> None:
    """--out must end in the suffix of --format (or, for engines, be a folder): `--out x.txt`
    used to write an ONNX file named x.txt, which nothing would then load as ONNX."""
    want = SUFFIXES[args.format]
    if _names_a_folder(args.out):
        if args.format == "onnx":
            raise UserError(f"--out {args.out} is a folder: --format onnx writes one file; give a file name ending "
                            f"in .onnx, e.g. --out {Path(args.out) / (args.model + '.onnx')}")
        return
    if Path(args.out).suffix == want:
        return
    try:
        fixed = str(Path(args.out).with_suffix(want))
    except ValueError:  # a name with no stem to keep, e.g. "x."
        fixed = args.out.rstrip(".") + want
    folder = "" if args.format == "onnx" else ", or a folder (ending in /) in which the file is named for this GPU"
    raise UserError(f"--out {args.out} does not end in {want}, the file suffix --format {args.format} writes: "
                    f"use --out {fixed}{folder}")


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


def _shape_range(args: argparse.Namespace):
    from pf_stream.backends.engine_cache import DEFAULT_RANGE, ShapeRange

    size = parse_size(args.size)
    lo = parse_size(args.min_size) if args.min_size else None
    hi = parse_size(args.max_size) if args.max_size else None
    if args.dynamic and lo is None:
        lo = tuple(min(a, b) for a, b in zip(DEFAULT_RANGE.min, size))
    if args.dynamic and hi is None:
        hi = tuple(max(a, b) for a, b in zip(DEFAULT_RANGE.max, size))
    return ShapeRange(lo or size, size, hi or size)


def _out_path(args: argparse.Namespace, name: str) -> Path:
    out = Path(args.out)
    return out / name if _names_a_folder(args.out) else out


def _check_target_args(args: argparse.Namespace):
    """Everything about an engine / torch-trt request that can be checked without a GPU."""
    shapes = _shape_range(args)
    if args.format == "torch-trt" and args.precision == "int8":
        raise UserError("--format torch-trt builds fp32/fp16/bf16; for int8 use --format engine --calib-dir")
    calib = None
    if args.precision == "int8":
        from pf_stream.export.tensorrt import CalibrationFrames

        if not args.calib_dir:
            raise UserError("--precision int8 needs real frames to calibrate on: --calib-dir FOLDER (with ir/ and vi/)")
        if args.calib_frames < 1:
            raise UserError("--calib-frames must be >= 1")
        calib = CalibrationFrames(Path(args.calib_dir), shapes.opt, args.calib_frames)
        calib.pairs()  # fails now, in one line, if the folder is unusable
    elif args.calib_dir:
        raise UserError("--calib-dir is for --precision int8 only")
    if args.onnx and not Path(args.onnx).is_file():
        raise UserError(f"--onnx {args.onnx} not found")
    return shapes, calib


def _source_onnx(args: argparse.Namespace, folder: Path) -> Path:
    """The ONNX the engine is built from: --onnx, or the model exported (dynamic sizes) into
    ``folder`` as ``<model>-<digest>.onnx``, kept beside the engine for later rebuilds."""
    if args.onnx:
        return Path(args.onnx)
    from pf_stream.backends.engine_cache import source_digest
    from pf_stream.export.onnx import export_onnx
    from pf_stream.model.registry import load_model

    model, info = load_model(args.model, args.weights, trust_pickle=args.trust_pickle)
    t0 = time.perf_counter()
    tmp = export_onnx(model, folder / f".{args.model}.onnx.tmp", (64, 64), dynamic=True)
    path = tmp.replace(folder / f"{args.model}-{source_digest(tmp)}.onnx")
    log.info("exported %s -> %s (%.1f s)", info.describe(), path, time.perf_counter() - t0)
    return path


def _parity(run, model, shapes, seed: int = 0) -> dict:
    """Exported artefact vs torch fp32 at the profile's opt size on real-looking inputs."""
    import numpy as np
    import torch

    w, h = shapes.opt
    gen = torch.Generator().manual_seed(seed)
    ir, vis = torch.rand(1, 1, h, w, generator=gen), torch.rand(1, 1, h, w, generator=gen)
    with torch.no_grad():
        want = model.eval().cpu()(ir, vis).numpy()
        got = run(ir.cuda(), vis.cuda()).float().cpu().numpy()
    err = np.abs(got - want)
    return {"max_abs_err": float(err.max()), "rel_err": float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-12))}


def _require_target_packages(fmt: str) -> None:
    """Fail in one line, before touching files, when this machine cannot build ``fmt``."""
    from pf_stream.backends.base import require_cuda, require_tensorrt

    if fmt == "engine":
        require_tensorrt()
    else:
        from pf_stream.export.torch_trt import require_torch_tensorrt

        require_torch_tensorrt()
    require_cuda()


def export_engine_report(args: argparse.Namespace, shapes, calib) -> dict:
    from pf_stream.backends.base import require_cuda, require_tensorrt
    from pf_stream.backends.engine_cache import DeviceInfo, EngineKey, source_digest
    from pf_stream.export.tensorrt import build_engine
    from pf_stream.model.registry import load_model

    trt = require_tensorrt()
    require_cuda()
    folder = _out_path(args, "x").parent
    onnx_path = _source_onnx(args, folder)
    key = EngineKey.for_device(args.model, source_digest(onnx_path), DeviceInfo.current(trt.__version__),
                               args.precision, shapes)
    out = _out_path(args, key.filename())
    built = build_engine(onnx_path, out, args.precision, shapes, model=args.model, calib_frames=calib,
                         calib_cache=args.calib_cache, workspace_gb=args.workspace_gb)
    from pf_stream.backends.tensorrt_backend import EngineRunner, load_engine

    engine, _runtime = load_engine(trt, out)
    runner = EngineRunner(engine, engine.create_execution_context())
    model = None if args.onnx else load_model(args.model, args.weights, trust_pickle=args.trust_pickle)[0]
    checks = {} if model is None else _parity(runner, model, shapes)
    return {"model": args.model, "format": "engine", "file": str(out), "file_mb": round(out.stat().st_size / 1e6, 3),
            "onnx": str(onnx_path),
            "precision": args.precision, "shapes": shapes.text(), "gpu": built.device.gpu, "tensorrt": trt.__version__,
            "build_s": round(built.build_s, 1), "calibration_cache": str(built.calibration_cache or "") or None, **checks}


def export_torch_trt_report(args: argparse.Namespace, shapes) -> dict:
    import torch

    from pf_stream.backends.base import require_cuda
    from pf_stream.backends.engine_cache import gpu_slug
    from pf_stream.backends.torch_backend import load_torch_trt_program
    from pf_stream.export.torch_trt import compile_torch_trt, require_torch_tensorrt
    from pf_stream.model.registry import load_model

    torch_tensorrt = require_torch_tensorrt()
    require_cuda()
    gpu = torch.cuda.get_device_name(0)
    name = f"{args.model}_{gpu_slug(gpu)}_torchtrt{torch_tensorrt.__version__}_{args.precision}_{shapes.text()}.ep"
    out = _out_path(args, name)
    model, _ = load_model(args.model, args.weights, trust_pickle=args.trust_pickle)
    compile_s = compile_torch_trt(model, out, args.precision, shapes)
    loaded = load_torch_trt_program(out)
    checks = _parity(loaded, load_model(args.model, args.weights, trust_pickle=args.trust_pickle)[0], shapes)
    return {"model": args.model, "format": "torch-trt", "file": str(out), "file_mb": round(out.stat().st_size / 1e6, 3),
            "precision": args.precision, "shapes": shapes.text(), "gpu": gpu,
            "torch_tensorrt": torch_tensorrt.__version__, "compile_s": round(compile_s, 1), **checks}


@cli_entry("pf-export")
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="pf-export: %(message)s")
    args = build_parser().parse_args(argv)
    check_choice("format", args.format, FORMATS)
    check_choice("precision", args.precision, PRECISIONS)
    parse_size(args.size)
    _check_outputs_are_not_inputs(args)
    _check_out_suffix(args)
    if args.format != "onnx":
        shapes, calib = _check_target_args(args)
        _require_target_packages(args.format)
        folder = Path(args.out) if _names_a_folder(args.out) else Path(args.out).parent
        check_writable(folder / "probe", "--out")
        if args.json:
            check_writable(args.json, "--json")
        if args.format == "engine":
            report = export_engine_report(args, shapes, calib)
        else:
            report = export_torch_trt_report(args, shapes)
        log.info("%s: max |err| vs torch fp32 %s, relative %s", report["file"], report.get("max_abs_err"), report.get("rel_err"))
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        return 0
    check_writable(args.out, "--out")
    if args.json:
        check_writable(args.json, "--json")
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
