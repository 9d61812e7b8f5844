"""``pf-bench --pipeline``: the whole streaming pipeline on synthetic cameras, headless.

Two ``synthetic://`` sources paced like cameras (30 FPS by default, so the pipeline sees
what it would see live: a new frame every 33 ms, the older ones dropped if it falls
behind), the real pairer, AGC, alignment, fusion backend, colour and view, and a null
sink in its own thread.  Latency is glass-to-glass: from the capture timestamp each
frame carries to the moment the sink has it.  The backend is warmed up before the clock
starts (the first ONNX Runtime calls allocate).  Resident memory is sampled every few
seconds to show whether it stays flat over long runs.

Result (JSON): fps, latency_ms {p50, p95, p99}, stages_ms, dropped, cpu_percent (of one
core: 200 = both cores of a 2-core machine; includes rendering the synthetic scene),
rss_mb, and the machine and settings.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import signal
import threading
import time

import numpy as np

from pf_stream.config import RunConfig, validate
from pf_stream.errors import ArgumentParser, UserError, check_writable, parse_size
from pf_stream.stats import rss_mb
from pf_stream.bench import machine_description, write_json_result

log = logging.getLogger("pf_stream.bench")


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pf-bench --pipeline", description="Benchmark the whole pipeline on synthetic sources.")
    p.add_argument("--model", default="lite", help="classic | lite | full (default lite)")
    p.add_argument("--backend", default="auto", help="auto | torch | onnxruntime | tensorrt")
    p.add_argument("--device", default="cpu", help="cpu | cuda")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | bf16")
    p.add_argument("--weights", help="weights file (default: shipped weights)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for the backend")
    p.add_argument("--size", default="640x512", help="frame size WxH (default 640x512)")
    p.add_argument("--fps", type=float, default=30.0, help="camera rate of the synthetic sources (default 30)")
    p.add_argument("--ir-bits", type=int, default=8, choices=(8, 16), help="16: raw 16-bit thermal IR (exercises AGC)")
    p.add_argument("--duration", type=float, default=30.0, help="measured seconds (default 30)")
    p.add_argument("--warmup", type=int, default=5, help="backend calls before the clock starts (default 5)")
    p.add_argument("--view", default="fused", help="fused | side-by-side | quad")
    p.add_argument("--record", metavar="FILE.mp4", help="also record (measures the cost of encoding)")
    p.add_argument("--rss-every", type=float, default=5.0, help="seconds between memory samples")
    p.add_argument("--json", help="write the result here as JSON")
    return p


def run_pipeline_bench(args: list[str] | argparse.Namespace | None = None) -> dict:
    """Run the benchmark; ``args`` is the pf-bench command line after ``--pipeline`` (or a parsed Namespace)."""
    if not isinstance(args, argparse.Namespace):
        args = _parse(args or [])
    size = parse_size(args.size)
    if args.duration <= 0 or args.fps <= 0:
        raise UserError("--duration and --fps must be > 0")
    if getattr(args, "json", None):
        check_writable(args.json, "--json")

    cfg = RunConfig()
    query = f"?size={size[0]}x{size[1]}&fps={args.fps:g}&seed=1"
    cfg.sources.ir = f"synthetic://{query}&bits={args.ir_bits}"
    cfg.sources.vis = f"synthetic://{query}"
    cfg.fusion.model, cfg.fusion.backend, cfg.fusion.device = args.model, args.backend, args.device
    cfg.fusion.precision, cfg.fusion.weights, cfg.fusion.threads = args.precision, args.weights, args.threads
    cfg.view.mode = args.view
    cfg.outputs.null_sink = True
    cfg.outputs.record = args.record
    cfg.stats.log_interval_s = 0
    cfg.duration_s = args.duration
    from pf_stream.config import apply_override

    apply_override(cfg, "view.mode", args.view)  # checks the choice
    validate(cfg)

    from pf_stream.backends import create_backend
    from pf_stream.pipeline import Pipeline

    backend = create_backend(args.model, args.backend, args.device, args.precision, args.weights, args.threads)
    try:
        _warm_up(backend, size, args.warmup)
        pipeline = Pipeline(cfg, backend=backend)
        sampler = _RssSampler(args.rss_every)
        sampler.start()
        try:
            with _ctrl_c_stops(pipeline) as interrupted:
                report = pipeline.run()
        finally:
            sampler.stop()
    finally:
        backend.close()

    result = {
        "benchmark": "pipeline",
        "machine": machine_description(),
        "model": args.model,
        "backend": getattr(backend, "name", args.backend),
        "device": args.device,
        "precision": args.precision,
        "size": f"{size[0]}x{size[1]}",
        "source_fps": args.fps,
        "ir_bits": args.ir_bits,
        "view": args.view,
        "duration_s": report["elapsed_s"],
        "frames": report["frames"],
        "fps": report["fps"],
        "latency_ms": report["latency_ms"],
        "stages_ms": report["stages_ms"],
        "stages_p95_ms": report["stages_p95_ms"],
        "skew_ms": report["skew_ms"],
        "dropped": report["dropped"],
        "dropped_by": report["dropped_by"],
        "cpu_percent": report["cpu_percent"],
        "rss_mb": sampler.summary(),
        "interrupted": bool(interrupted),  # Ctrl-C: the figures cover the seconds measured
    }
    if getattr(args, "json", None):
        write_json_result(args.json, json.dumps(result, indent=2))
    return result


@contextlib.contextmanager
def _ctrl_c_stops(pipeline):
    """Ctrl-C ends the measurement like pf-stream's: the run stops cleanly and its figures are
    reported (a KeyboardInterrupt lost them all).  A second Ctrl-C quits at once."""
    interrupted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_sigint(_signum, _frame):
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)
        pipeline.stop("stopped by SIGINT")

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _warm_up(backend, size: tuple[int, int], calls: int) -> None:
    rng = np.random.default_rng(0)
    ir = rng.random((size[1], size[0]), dtype=np.float32)
    vis = rng.random((size[1], size[0]), dtype=np.float32)
    for _ in range(max(0, calls)):
        backend.fuse(ir, vis)


class _RssSampler:
    """Resident memory every few seconds, on a daemon thread."""

    def __init__(self, every_s: float):
        self.every_s = max(0.5, every_s)
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            value = rss_mb()
            if value is not None:
                self.samples.append((time.monotonic() - self._t0, value))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(1.0)

    def summary(self) -> dict:
        values = [v for _, v in self.samples]
        if not values:
            return {"now": _r(rss_mb())}
        # Growth after the first fifth of the run (allocations settle in the first seconds).
        settled = values[len(values) // 5 :]
        return {"first": _r(values[0]), "last": _r(values[-1]), "max": _r(max(values)),
                "growth_after_warmup": _r(settled[-1] - settled[0]), "samples": len(values)}


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 1)


if __name__ == "__main__":
    from pf_stream.errors import cli_entry

    @cli_entry("pf-bench")
    def _main() -> int:
        import sys

        logging.basicConfig(level=logging.WARNING, format="pf-bench: %(message)s")
        print(json.dumps(run_pipeline_bench(sys.argv[1:]), indent=2))
        return 0

    _main()
