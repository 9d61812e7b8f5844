"""The GPU path on a real GPU: half precision and CUDA graphs against fp32 eager, re-capture on
a size change, pinned/side-stream frames in flight, on-device colour + warp, and (where
installed) TensorRT engines and ONNX Runtime's CUDA provider.

Every test here skips, saying why, on a machine without what it needs; scripts/gpu_check.sh
runs them on the GPU machine.  Accuracy is relative error ||a - b|| / ||b|| against the fp32
model on the CPU (no TF32 there) on structured frames (gradients, edges, texture), plus the
worst pixel.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from pf_stream.bench.model_bench import structured_pair

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="needs an NVIDIA GPU and a CUDA build of torch (run scripts/gpu_check.sh there)")

# Worst pixel and relative error allowed against fp32 eager (outputs are in [0, 1]).
TOLERANCE = {"fp16": (0.03, 0.01), "bf16": (0.08, 0.03)}


def errors(got: np.ndarray, want: np.ndarray) -> tuple[float, float]:
    return float(np.abs(got - want).max()), float(np.linalg.norm(got - want) / np.linalg.norm(want))


def backend(model, precision="fp32", device="cuda", **kw):
    from pf_stream.backends import create_backend

    return create_backend(model, "torch", device, precision, **kw)


def reference(model, ir, vis):
    """fp32 on the CPU: cuDNN's fp32 convolutions use TF32 on Ampere+ by default."""
    return backend(model, device="cpu").fuse(ir, vis)


def needs_bf16(precision):
    if precision == "bf16" and torch.cuda.get_device_capability(0) < (8, 0):
        pytest.skip(f"{torch.cuda.get_device_name(0)} has no bf16 (compute capability < 8.0)")


@pytest.mark.parametrize("model", ["lite", "full"])
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_and_graphs_close_to_fp32(model, precision):
    needs_bf16(precision)
    ir, vis = structured_pair(512, 640)
    want = reference(model, ir, vis)
    worst, rel = TOLERANCE[precision]
    eager = backend(model, precision)
    got = eager.fuse(ir, vis)
    assert errors(got, want)[0] <= worst and errors(got, want)[1] <= rel, errors(got, want)
    graphed = backend(model, precision, cuda_graphs=True)
    replayed = graphed.fuse(ir, vis)
    # Same kernels, same inputs: a graph replay gives the eager result (cuDNN may pick another
    # algorithm for the capture, so allow last-bit differences).
    assert errors(replayed, got)[1] <= 1e-3, errors(replayed, got)
    assert graphed.graph_captures == 1


def test_compiled_lite_in_a_graph_close_to_fp32():
    """torch.compile (Inductor's fused kernels) captured in our CUDA graph: the route to fewer
    kernels per frame (docs/GPU.md); same tolerance as plain fp16."""
    ir, vis = structured_pair(512, 640)
    want = reference("lite", ir, vis)
    b = backend("lite", "fp16", cuda_graphs=True, torch_compile=True)
    got = b.fuse(ir, vis)
    worst, rel = TOLERANCE["fp16"]
    assert errors(got, want)[0] <= worst and errors(got, want)[1] <= rel, errors(got, want)
    assert b.graph_captures == 1


def test_graph_recaptured_on_size_change_and_still_right():
    graphed, eager = backend("lite", "fp16", cuda_graphs=True), backend("lite", "fp16")
    for (h, w), captures in [((512, 640), 1), ((512, 640), 1), ((1024, 1280), 2), ((480, 640), 3)]:
        ir, vis = structured_pair(h, w, seed=h)
        out = graphed.fuse(ir, vis)
        assert out.shape == (h, w) and graphed.graph_captures == captures
        assert errors(out, eager.fuse(ir, vis))[1] <= 1e-3


def test_frames_in_flight_come_back_in_order():
    """Two frames submitted before either is collected (double-buffered pinned I/O)."""
    b = backend("lite", "fp16", cuda_graphs=True)
    pairs = [structured_pair(512, 640, seed=s) for s in range(5)]
    want = [b.fuse(*p) for p in pairs]
    pending = [b.submit(*pairs[0]), b.submit(*pairs[1])]
    results = []
    for nxt in pairs[2:]:
        results.append(pending.pop(0).result())
        pending.append(b.submit(*nxt))
    results += [p.result() for p in pending]
    for got, expected in zip(results, want):
        assert np.array_equal(got, expected)
    # A size change with a frame still in flight.
    first = b.submit(*pairs[0])
    small = structured_pair(256, 320)
    second = b.submit(*small)
    assert np.array_equal(first.result(), want[0]) and second.result().shape == (256, 320)


def test_channels_last_gives_the_same_result():
    ir, vis = structured_pair(512, 640)
    plain = backend("full", "fp16").fuse(ir, vis)
    nhwc = backend("full", "fp16", channels_last=True).fuse(ir, vis)
    assert errors(nhwc, plain)[1] <= 5e-3


def test_gpu_frame_fuser_on_cuda_matches_cpu():
    import cv2

    from pf_stream.backends.gpu_ops import GpuFrameFuser
    from pf_stream.backends.torch_backend import TorchBackend

    rng = np.random.default_rng(7)
    ir, vis = structured_pair(480, 640)
    ir8 = (ir * 255).astype(np.uint8)
    vis_bgr = np.dstack([np.clip(vis * 255 + rng.normal(0, 8, vis.shape), 0, 255).astype(np.uint8) for _ in range(3)])
    homography = np.array([[1.01, 0.01, -3.0], [-0.01, 1.0, 2.0], [0.0, 0.0, 1.0]])
    on_gpu = GpuFrameFuser(TorchBackend("lite", device="cuda"), homography)(ir8, vis_bgr)
    on_cpu = GpuFrameFuser(TorchBackend("lite", device="cpu"), homography)(ir8, vis_bgr)
    diff = np.abs(on_gpu.astype(int) - on_cpu.astype(int))
    # fp32 on both, but cuDNN convolutions use TF32 by default on Ampere+: a level or so.
    assert on_gpu.shape == (480, 640, 3) and diff.mean() < 0.2 and diff.max() <= 3
    assert cv2.cvtColor(on_gpu, cv2.COLOR_BGR2GRAY).std() > 5  # a picture, not a flat field


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT is not installed (pip install tensorrt)")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_build_name_and_run(tmp_path, precision):
    import tensorrt as trt

    from pf_stream.backends.engine_cache import DeviceInfo, ShapeRange, mismatch, read_engine_key
    from pf_stream.backends.tensorrt_backend import TensorRTBackend
    from pf_stream.export.onnx import export_onnx
    from pf_stream.export.tensorrt import build_engine
    from pf_stream.model.registry import load_model

    model, _ = load_model("lite")
    onnx_path = export_onnx(model, tmp_path / "lite.onnx", (64, 64), dynamic=True)
    shapes = ShapeRange((320, 256), (640, 512), (1280, 1024))
    built = build_engine(onnx_path, tmp_path / "e.engine", precision, shapes, model="lite")
    key = read_engine_key(built.path)
    assert key == built.key and mismatch(key, DeviceInfo.current(trt.__version__)) is None
    b = TensorRTBackend("lite", weights=str(built.path))
    ir, vis = structured_pair(512, 640)
    want = reference("lite", ir, vis)
    worst, rel = (1e-3, 1e-4) if precision == "fp32" else TOLERANCE["fp16"]
    for _ in range(3):
        got = b.fuse(ir, vis)
    assert errors(got, want)[0] <= worst and errors(got, want)[1] <= rel
    assert b.runner.binds == 1  # buffers bound once for three frames
    b.fuse(*structured_pair(1024, 1280))
    assert b.runner.binds == 2


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None
                    or "CUDAExecutionProvider" not in __import__("onnxruntime").get_available_providers(),
                    reason="onnxruntime has no CUDA provider here (pip install onnxruntime-gpu)")
def test_onnxruntime_cuda_provider_matches_torch():
    from pf_stream.backends import create_backend

    b = create_backend("lite", "onnxruntime", "cuda", "fp32")
    ir, vis = structured_pair(512, 640)
    want = reference("lite", ir, vis)
    assert errors(b.fuse(ir, vis), want)[0] <= 1e-3
    t = b.fuse_tensor(torch.from_numpy(ir)[None, None].cuda(), torch.from_numpy(vis)[None, None].cuda())
    assert errors(t[0, 0].cpu().numpy(), want)[0] <= 1e-3


def test_pf_train_runs_full_then_distils_lite_on_cuda(tmp_path):
    """pf-train on the GPU: `full` through both stages with the tiny CLIP prompt stage, then `lite`
    distilled from it; the weights load and fuse on the CPU."""
    from pathlib import Path

    for package in ("open_clip", "kornia"):  # the `train` extra; the GPU machine has neither unless carried
        pytest.importorskip(package, reason=f"pf-train needs {package}: pip install -e '.[train]' (or carry its wheel)")

    from pf_stream.model.registry import load_model
    from pf_stream.train import cli
    from tests.train_helpers import make_pairs, tiny_clip

    repo = Path(__file__).resolve().parents[1]
    data = make_pairs(tmp_path / "set", ["a", "b", "c"])
    clip_cfg, clip_weights = tiny_clip(tmp_path)

    def train(*args):
        try:
            cli.main(["--no-progress", "--device", "cuda", "--data", str(data), *map(str, args)])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    full = tmp_path / "full"
    assert train("--config", repo / "configs/train/tiny_full.yaml", "--out", full,
                 "--clip-weights", clip_weights, "--clip-model", clip_cfg) == 0
    header, *rows = (full / "log_stage2.csv").read_text().splitlines()
    assert {"prompt", "upper", "alpha"} <= set(header.split(",")) and rows
    lite = tmp_path / "lite"
    assert train("--config", repo / "configs/train/tiny.yaml", "--out", lite, "--steps", 2, "--teacher", full / "full.safetensors") == 0
    for name, run in (("full", full), ("lite", lite)):
        model, info = load_model(name, run / f"{name}.safetensors")
        assert info.trained
        out = model(torch.rand(1, 1, 40, 52), torch.rand(1, 1, 40, 52))
        assert out.shape == (1, 1, 40, 52) and torch.isfinite(out).all()
