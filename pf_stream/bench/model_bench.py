"""Model-only speed: one model, one backend, one size, timed with the right clock.

CPU timings use ``time.perf_counter`` around each call; CUDA timings use CUDA events on
the stream (a host clock would measure kernel launches, not the kernels).  Warm-up runs
come first so one-off costs (allocation, graph optimisation) are not counted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from pf_stream.backends import create_backend
from pf_stream.model.registry import build_model, count_gmac, count_params


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
    trained: bool

    def to_dict(self) -> dict:
        return asdict(self)


def percentiles(samples_ms: list[float], qs=(50, 90, 99)) -> dict:
    arr = np.asarray(samples_ms)
    return {f"p{q}": round(float(np.percentile(arr, q)), 3) for q in qs}


def bench_model(
    model: str, backend: str, device: str, precision: str, size: tuple[int, int], iters: int = 50,
    warmup: int = 5, threads: int | None = None, weights: str | None = None,
) -> ModelBenchResult:
    w, h = size
    engine = create_backend(model, backend, device, precision, weights=weights, threads=threads)
    rng = np.random.default_rng(0)
    ir = rng.random((h, w), dtype=np.float32)
    vis = rng.random((h, w), dtype=np.float32)
    samples = _time_cuda(engine, ir, vis, iters, warmup) if device == "cuda" else _time_cpu(engine, ir, vis, iters, warmup)
    module = build_model(model)
    info = getattr(engine, "info", None)
    return ModelBenchResult(
        model=model, backend=engine.name, device=device, precision=precision, size=f"{w}x{h}", threads=threads,
        params=count_params(module), gmac=round(count_gmac(module, h, w), 4),
        fps=round(1000.0 / float(np.mean(samples)), 2), latency_ms=percentiles(samples), iters=iters,
        trained=bool(info.trained) if info is not None else model == "classic",
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
