"""Model-only speed: one model, one backend, one size, timed with the right clock.

CPU timings use ``time.perf_counter`` around each call; CUDA timings use CUDA events on
the stream (a host clock would measure kernel launches, not the kernels).  Warm-up runs
come first so one-off costs (allocation, graph optimisation) are not counted.  On CUDA a
second figure, ``host_roundtrip_ms``, times ``fuse()`` on numpy frames: upload, model and
download, what a pipeline without on-GPU pre/post-processing pays.

``plan_variants`` lists every backend x device x precision (x CUDA graphs) pf-bench knows,
each either runnable on this machine or skipped with the reason (``pf-bench --backend all``).
"""

from __future__ import annotations

import time
from pathlib import Path
from dataclasses import asdict, dataclass, field

import numpy as np

from pf_stream.backends import create_backend
from pf_stream.model.registry import count_gmac, count_params, load_model


@dataclass
class ModelBenchResult:
    model: str
    backend: str
    device: str
    precision: str
    size: str
    threads: int | None
    params: int
    gmac: float
    fps: float
    latency_ms: dict
    iters: int
    trained: bool | None  # ran trained weights (False: untrained or weight-free; None: a compiled file, unknown)
    weights: str  # what ran, e.g. 'lite (.../lite.safetensors)', 'classic (fixed rules, no weights)', 'lite.onnx'
    cuda_graphs: bool = False
    torch_compile: bool = False
    host_roundtrip_ms: dict | None = None
    gpu: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def structured_pair(h: int, w: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic IR/VIS pair with image-like structure, float32 [0, 1]: IR warm blobs on a
    gradient, VIS texture and hard edges.  For accuracy checks (fp16 vs fp32, graph vs eager)
    where uniform noise would hide errors on smooth areas and edges."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ir = 0.3 + 0.2 * xx / w
    for _ in range(6):
        cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(8, max(h / 6, 9))
        ir += 0.4 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    vis = 0.5 + 0.25 * np.sin(xx / 7.0) * np.cos(yy / 11.0) + 0.2 * ((xx // 40 + yy // 40) % 2)
    vis += rng.normal(0, 0.02, vis.shape)
    return np.clip(ir, 0, 1).astype(np.float32), np.clip(vis, 0, 1).astype(np.float32)


def percentiles(samples_ms: list[float], qs=(50, 90, 99)) -> dict:
    arr = np.asarray(samples_ms)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


def bench_model(
    model: str, backend: str, device: str, precision: str, size: tuple[int, int], iters: int = 50,
    warmup: int = 5, threads: int | None = None, weights: str | None = None, cuda_graphs: bool = False,
    torch_compile: bool = False,
) -> ModelBenchResult:
    w, h = size
    if torch_compile:
        warmup = max(warmup, 1)  # the first call compiles (seconds to a minute): never timed
    engine = create_backend(model, backend, device, precision, weights=weights, threads=threads, cuda_graphs=cuda_graphs,
                            torch_compile=torch_compile)
    rng = np.random.default_rng(0)
    ir = rng.random((h, w), dtype=np.float32)
    vis = rng.random((h, w), dtype=np.float32)
    roundtrip, gpu = None, None
    try:
        if device == "cuda":
            import torch

            samples = _time_cuda(engine, ir, vis, iters, warmup)
            roundtrip = percentiles(_time_cpu(engine, ir, vis, max(10, iters // 4), 2))
            gpu = torch.cuda.get_device_name(0)
        else:
            samples = _time_cpu(engine, ir, vis, iters, warmup)
    finally:
        engine.close()
    # Count the architecture that actually ran: shipped/given weights carry their own config.
    # (.onnx/.engine/.ep files are compiled already; count the default architecture then.)
    compiled = bool(weights) and Path(str(weights)).suffix in (".onnx", ".engine", ".ep")
    module, info = load_model(model, None if compiled else weights)
    # The report names the file that ran, not the shipped weights its cost was counted on.
    ran, trained = (str(weights), None) if compiled else (info.describe(), info.trained)
    return ModelBenchResult(
        model=model, backend=engine.name, device=device, precision=precision, size=f"{w}x{h}", threads=threads,
        params=count_params(module), gmac=round(count_gmac(module, h, w), 4),
        fps=round(1000.0 / float(np.mean(samples)), 2), latency_ms=percentiles(samples), iters=iters,
        trained=trained, weights=ran,
        cuda_graphs=cuda_graphs, torch_compile=torch_compile, host_roundtrip_ms=roundtrip, gpu=gpu,
    )


def _time_cpu(engine, ir, vis, iters: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        engine.fuse(ir, vis)
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        engine.fuse(ir, vis)
        samples.append((time.perf_counter() - t0) * 1000.0)
    return samples


def _time_cuda(engine, ir, vis, iters: int, warmup: int) -> list[float]:
    """Device time of the model on tensors already on the GPU (host copies are the pipeline's)."""
    import torch

    ir_t = torch.from_numpy(ir)[None, None].cuda()
    vis_t = torch.from_numpy(vis)[None, None].cuda()
    run = engine.fuse_tensor if hasattr(engine, "fuse_tensor") else (lambda a, b: engine.fuse(ir, vis))
    for _ in range(warmup):
        run(ir_t, vis_t)
    torch.cuda.synchronize()
    samples = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        run(ir_t, vis_t)
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end))
    return samples


# -- every variant this machine can run (pf-bench --backend all) --------------------------


@dataclass
class Capabilities:
    """What this machine offers, probed once; plain data so plans are tested anywhere."""

    cuda: bool = False
    gpu: str | None = None
    bf16: bool = False  # compute capability >= 8.0
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    tensorrt: str | None = None  # version, None when not importable
    notes: dict = field(default_factory=dict)


def probe_capabilities() -> Capabilities:
    import importlib

    import torch

    caps = Capabilities()
    caps.cuda = torch.cuda.is_available()
    if caps.cuda:
        caps.gpu = torch.cuda.get_device_name(0)
        caps.bf16 = torch.cuda.get_device_capability(0) >= (8, 0)
    try:
        import onnxruntime as ort

        caps.ort_providers = tuple(ort.get_available_providers())
    except ImportError:
        caps.ort_providers = ()
    try:
        caps.tensorrt = importlib.import_module("tensorrt").__version__
    except (ImportError, OSError):
        caps.tensorrt = None
    return caps


@dataclass
class Variant:
    backend: str
    device: str
    precision: str
    cuda_graphs: bool = False
    skip: str | None = None  # why it cannot run here; None = runnable

    @property
    def label(self) -> str:
        return f"{self.backend}/{self.device}/{self.precision}" + ("+graphs" if self.cuda_graphs else "")


NO_CUDA = "no CUDA GPU visible to torch (needs an NVIDIA GPU and a CUDA build of torch)"


def plan_variants(caps: Capabilities) -> list[Variant]:
    """Every backend x device x precision (x CUDA graphs) pf-bench knows, with skip reasons."""
    plan = [Variant("torch", "cpu", "fp32"), Variant("onnxruntime", "cpu", "fp32")]
    if "CPUExecutionProvider" not in caps.ort_providers:
        plan[1].skip = "onnxruntime is not installed: pip install onnxruntime"
    for precision in ("fp32", "fp16", "bf16"):
        for graphs in (False, True):
            v = Variant("torch", "cuda", precision, graphs)
            if not caps.cuda:
                v.skip = NO_CUDA
            elif precision == "bf16" and not caps.bf16:
                v.skip = f"{caps.gpu} has no bf16 (needs compute capability 8.0+)"
            plan.append(v)
    for precision in ("fp32", "fp16"):
        v = Variant("onnxruntime", "cuda", precision)
        if not caps.cuda:
            v.skip = NO_CUDA
        elif "CUDAExecutionProvider" not in caps.ort_providers:
            v.skip = "onnxruntime has no CUDA provider: pip install onnxruntime-gpu"
        elif precision == "fp16" and "TensorrtExecutionProvider" not in caps.ort_providers:
            v.skip = "fp16 in onnxruntime needs its TensorRT provider (onnxruntime-gpu with TensorRT)"
        plan.append(v)
    for precision in ("fp32", "fp16", "bf16"):
        for graphs in (False, True):
            v = Variant("tensorrt", "cuda", precision, graphs)
            if caps.tensorrt is None:
                v.skip = "TensorRT is not installed: pip install tensorrt (Jetson: JetPack's python3-libnvinfer)"
            elif not caps.cuda:
                v.skip = NO_CUDA
            elif precision == "bf16" and not caps.bf16:
                v.skip = f"{caps.gpu} has no bf16 (needs compute capability 8.0+)"
            plan.append(v)
    return plan


def bench_all(model: str, size: tuple[int, int], iters: int, warmup: int, threads: int | None = None,
              weights: str | None = None, caps: Capabilities | None = None) -> dict:
    """Run every runnable variant; a variant that fails at run time is reported, not fatal."""
    from pf_stream.errors import UserError

    caps = caps or probe_capabilities()
    results, skipped = [], []
    for v in plan_variants(caps):
        if v.skip:
            skipped.append({"variant": v.label, "reason": v.skip})
            continue
        try:
            r = bench_model(model, v.backend, v.device, v.precision, size, iters, warmup,
                            threads if v.device == "cpu" else None, weights, v.cuda_graphs)
        except Exception as exc:  # noqa: BLE001 - one broken variant must not hide the others' numbers
            kind = "" if isinstance(exc, UserError) else f"{type(exc).__name__}: "
            skipped.append({"variant": v.label, "reason": f"failed: {kind}{(str(exc).splitlines() or [''])[0]}"})
            continue
        results.append({"variant": v.label, **r.to_dict()})
    return {"model": model, "size": f"{size[0]}x{size[1]}", "gpu": caps.gpu, "results": results, "skipped": skipped}


def format_table(report: dict) -> str:
    """A short text table of a bench_all report (for people; the JSON is for programs)."""
    lines = [f"{report['model']} at {report['size']}" + (f" on {report['gpu']}" if report.get("gpu") else ""),
             f"{'variant':<28} {'FPS':>9} {'p50 ms':>8} {'p99 ms':>8}  host round trip p50"]
    for r in report["results"]:
        rt = r.get("host_roundtrip_ms")
        roundtrip = "" if rt is None else f"{rt['p50']:.3f} ms"
        lines.append(f"{r['variant']:<28} {r['fps']:>9.1f} {r['latency_ms']['p50']:>8.3f} {r['latency_ms']['p99']:>8.3f}"
                     f"  {roundtrip}")
    for s in report["skipped"]:
        lines.append(f"{s['variant']:<28} skipped: {s['reason']}")
    return "\n".join(lines)


# -- Jetson estimate ------------------------------------------------------------------------

# Published figures (NVIDIA data sheets).  Orin NX 16GB GPU: 8 SMs (1024 CUDA cores, 32 tensor
# cores) at 918 MHz -> 1024 fp16 FMA/clk/SM dense = 15.0 TFLOPS; 102.4 GB/s LPDDR5.
ORIN_NX_16GB = {"fp16_tflops": 15.0, "dram_gbs": 102.4}
# DRAM bandwidth of the cards the measurements come from, by the name the driver reports.
CARD_DRAM_GBS = {"H100 80GB HBM3": 3350.0, "H100 PCIe": 2000.0, "H100 NVL": 3900.0, "H200": 4800.0}


def card_dram_gbs(gpu_name: str) -> float | None:
    return next((gbs for key, gbs in CARD_DRAM_GBS.items() if key.lower() in gpu_name.lower()), None)


def estimate_orin_nx_ms(gmac: float, measured_ms: float | None = None, card_gbs: float | None = None,
                        efficiency: float = 0.25) -> dict:
    """ESTIMATED Orin NX 16GB milliseconds per frame, as a range (never a measurement).

    * optimistic, from counted GMAC: 2*GMAC flops at ``efficiency`` of the Orin NX's fp16
      tensor peak (small conv nets with depthwise layers rarely get more than a quarter);
    * pessimistic, from the card ratio: the time measured on a big card times its DRAM
      bandwidth over the Orin NX's (H100 SXM: ~33x): small-batch conv nets are memory-bound,
      and the measured time also holds fixed per-kernel costs that do not grow that much.
    Confirm on the device with pf-bench.
    """
    out = {"optimistic_ms": round(2.0 * gmac * 1e9 / (ORIN_NX_16GB["fp16_tflops"] * 1e12 * efficiency) * 1e3, 3)}
    if measured_ms is not None and card_gbs:
        out["pessimistic_ms"] = round(measured_ms * card_gbs / ORIN_NX_16GB["dram_gbs"], 3)
    out["fps_range"] = [round(1000.0 / out.get("pessimistic_ms", out["optimistic_ms"]), 1),
                        round(1000.0 / out["optimistic_ms"], 1)]
    return out


def opencv_laplacian_fusion_ms(size: tuple[int, int], levels: int = 4, iters: int = 30) -> float:
    """Median time of a plain OpenCV Laplacian-pyramid fusion (max-abs details, mean base).

    The reference point for "what does classic fusion cost in OpenCV on this CPU".
    """
    import cv2

    w, h = size
    rng = np.random.default_rng(0)
    ir = rng.random((h, w), dtype=np.float32)
    vis = rng.random((h, w), dtype=np.float32)

    def fuse() -> np.ndarray:
        pyr = []
        a, b = ir, vis
        for _ in range(levels):
            da, db = cv2.pyrDown(a), cv2.pyrDown(b)
            la = a - cv2.pyrUp(da, dstsize=(a.shape[1], a.shape[0]))
            lb = b - cv2.pyrUp(db, dstsize=(b.shape[1], b.shape[0]))
            pyr.append(np.where(np.abs(la) >= np.abs(lb), la, lb))
            a, b = da, db
        out = 0.5 * (a + b)
        for lap in reversed(pyr):
            out = cv2.pyrUp(out, dstsize=(lap.shape[1], lap.shape[0])) + lap
        return np.clip(out, 0, 1)

    for _ in range(3):
        fuse()
    samples = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fuse()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(samples))
