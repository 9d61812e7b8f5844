"""pf-bench: measure speed on this machine.

Model only (default)::

    pf-bench --model lite --backend onnxruntime --device cpu --size 640x512 --iters 100 --threads 2 --json out.json
    pf-bench --model lite --backend torch --device cuda --precision fp16 --cuda-graphs

Every backend x precision this machine offers (the rest listed with the reason they are skipped;
a table on stderr, JSON on stdout)::

    pf-bench --model lite --backend all --size 640x512

The whole pipeline on synthetic sources (see pf_stream/bench/pipeline_bench.py)::

    pf-bench --pipeline [pipeline options]

RTSP glass-to-glass latency with real viewers (see pf_stream/bench/rtsp_latency.py)::

    pf-bench --rtsp [--viewers 3 --seconds 10 --size 640x512 --encoder auto]

Numbers go to docs/BENCHMARKS.md with the machine named; tests never assert on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from pf_stream.backends.base import BACKENDS, DEVICES, PRECISIONS
from pf_stream.errors import EXIT_INTERRUPTED, ArgumentParser, UserError, check_choice, check_writable, cli_entry, parse_size
from pf_stream.model.registry import MODELS
from pf_stream.bench import machine_description, write_json_result


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pf-bench", description="Measure fusion speed (model only, --pipeline, or --rtsp).")
    p.add_argument("--pipeline", action="store_true", help="benchmark the whole pipeline instead (see --pipeline --help)")
    p.add_argument("--rtsp", action="store_true",
                   help="measure RTSP output latency with real viewers instead (see --rtsp --help)")
    p.add_argument("--model", default="lite", help="lite | full | classic")
    p.add_argument("--weights", help="weights file (default: shipped weights)")
    p.add_argument("--backend", default="onnxruntime",
                   help="torch | onnxruntime | tensorrt | all (all: every variant available here; ignores --device/--precision)")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16")
    p.add_argument("--cuda-graphs", action="store_true", help="replay the model as a CUDA graph (torch/tensorrt on cuda)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model first (--backend torch; compiling takes half a minute or more, not timed)")
    p.add_argument("--size", default="640x512", help="WIDTHxHEIGHT, default 640x512")
    p.add_argument("--iters", type=int, default=50, help="timed iterations (after warm-up)")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up iterations")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch / ONNX Runtime")
    p.add_argument("--opencv-baseline", action="store_true", help="also time a plain OpenCV Laplacian-pyramid fusion")
    p.add_argument("--json", help="write the result here as JSON")
    return p


def run_model_bench(args: argparse.Namespace) -> dict:
    from pf_stream.bench.model_bench import bench_model, opencv_laplacian_fusion_ms

    check_choice("model", args.model, MODELS)
    check_choice("backend", args.backend, [b for b in BACKENDS if b != "auto"] + ["all"])
    check_choice("device", args.device, DEVICES)
    check_choice("precision", args.precision, PRECISIONS)
    size = parse_size(args.size)
    if args.iters < 1 or args.warmup < 0:
        raise UserError("--iters must be >= 1 and --warmup >= 0")
    if args.threads is not None and args.threads < 1:
        raise UserError("--threads must be >= 1 (leave it out for the backend's default)")
    if args.backend == "all":
        from pf_stream.bench.model_bench import bench_all, format_table

        result = bench_all(args.model, size, args.iters, args.warmup, args.threads, args.weights)
        print(format_table(result), file=sys.stderr)
        result["machine"] = machine_description()
        return result
    result = bench_model(args.model, args.backend, args.device, args.precision, size, args.iters, args.warmup,
                         args.threads, args.weights, args.cuda_graphs, args.compile).to_dict()
    result["machine"] = machine_description()
    if args.opencv_baseline:
        result["opencv_laplacian_ms"] = round(opencv_laplacian_fusion_ms(size), 3)
    return result


@cli_entry("pf-bench")
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="pf-bench: %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    if "--rtsp" in argv:
        from pf_stream.bench.rtsp_latency import main as rtsp_latency_main

        return rtsp_latency_main([a for a in argv if a != "--rtsp"])
    if "--pipeline" in argv:
        from pf_stream.bench.pipeline_bench import run_pipeline_bench

        rest = [a for a in argv if a != "--pipeline"]
        result = run_pipeline_bench(rest)
        json_path = None
    else:
        args = build_parser().parse_args(argv)
        if args.json:
            check_writable(args.json, "--json")
        result = run_model_bench(args)
        json_path = args.json
    text = json.dumps(result, indent=2)
    print(text)
    if json_path:
        write_json_result(json_path, text)
    if result.get("interrupted"):
        print("pf-bench: interrupted; the figures above cover the time measured", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    main()
