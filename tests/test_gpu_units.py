"""GPU-path logic that runs on any machine: CUDA-graph bookkeeping, engine naming and reuse,
buffer binding, provider choice, variant planning, GPU colour/warp ops (on CPU tensors).

The same code runs on the GPU in tests/test_gpu_cuda.py (skipped without CUDA).
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from pf_stream.backends.cuda_graph import GraphRunner, eager_capture
from pf_stream.backends.engine_cache import (
    DeviceInfo,
    EngineKey,
    ShapeRange,
    gpu_slug,
    mismatch,
    other_device_engines,
    parse_engine_filename,
    read_engine_key,
    write_sidecar,
)
from pf_stream.errors import UserError

H100 = DeviceInfo("NVIDIA H100 80GB HBM3", (9, 0), "10.3.0")
ORIN = DeviceInfo("Orin", (8, 7), "10.3.0")


# -- CUDA-graph bookkeeping -----------------------------------------------------------------


def test_graph_runner_captures_once_per_shape_and_recaptures_on_change():
    calls = []

    def fn(a, b):
        calls.append(a.shape)
        return a * 2 + b

    released = []

    def capture(f, example):
        captured = eager_capture(f, example)
        captured.release = lambda: released.append(captured.key)
        return captured

    runner = GraphRunner(fn, capture=capture)
    for i in range(4):
        a, b = torch.full((1, 1, 4, 6), float(i)), torch.ones(1, 1, 4, 6)
        out = runner(a, b)
        assert torch.equal(out, a * 2 + b)  # fresh inputs are copied into the static buffers
    assert runner.captures == 1 and runner.replays == 4 and released == []

    a = torch.rand(1, 1, 8, 6)
    assert torch.allclose(runner(a, a), 3 * a)
    assert runner.captures == 2 and len(released) == 1  # old graph freed before the new capture
    runner(torch.rand(1, 1, 8, 6), torch.rand(1, 1, 8, 6))
    assert runner.captures == 2
    runner(torch.rand(1, 1, 8, 6, dtype=torch.float64), torch.rand(1, 1, 8, 6, dtype=torch.float64))
    assert runner.captures == 3  # dtype is part of the key too
    runner.close()
    assert len(released) == 3


def test_graph_runner_output_is_a_static_buffer():
    runner = GraphRunner(lambda a: a + 1, capture=eager_capture)
    first = runner(torch.zeros(2, 2))
    second = runner(torch.ones(2, 2))
    assert first is second and torch.equal(second, torch.full((2, 2), 2.0))


# -- engine names and reuse -----------------------------------------------------------------


def test_gpu_slug():
    assert gpu_slug("NVIDIA H100 80GB HBM3") == "h100-80gb-hbm3"
    assert gpu_slug("Orin") == "orin"
    assert gpu_slug("NVIDIA GeForce RTX 4090") == "geforce-rtx-4090"
    assert gpu_slug("  ") == "gpu"


def test_engine_name_round_trip_and_scheme():
    shapes = ShapeRange((160, 128), (640, 512), (1920, 1200))
    key = EngineKey.for_device("lite", "3f2a9c1d", H100, "fp16", shapes)
    name = key.filename()
    assert name == "lite-3f2a9c1d_h100-80gb-hbm3-sm90_trt10.3.0_fp16_160x128-640x512-1920x1200.engine"
    assert parse_engine_filename(name) == key
    static = EngineKey.for_device("full", "0011aabb", ORIN, "int8", ShapeRange.static((640, 512)))
    assert static.filename().endswith("_orin-sm87_trt10.3.0_int8_640x512.engine")
    assert parse_engine_filename(static.filename()) == static
    for other in ("lite.engine", "lite-3f2a9c1d_h100-sm90_trt10.3_fp8_640x512.engine", name.replace(".engine", ".onnx")):
        assert parse_engine_filename(other) is None


def test_engine_mismatch_reasons():
    key = EngineKey.for_device("lite", "3f2a9c1d", H100, "fp16", ShapeRange.static((640, 512)))
    assert mismatch(key, H100) is None
    assert "built for GPU h100-80gb-hbm3" in mismatch(key, ORIN)
    assert "TensorRT 10.3.0" in mismatch(key, DeviceInfo(H100.gpu, (9, 0), "10.4.1"))
    # Same name, other compute capability (e.g. a MIG/driver quirk): still refused.
    assert mismatch(key, DeviceInfo(H100.gpu, (8, 0), "10.3.0")) is not None


def test_sidecar_wins_over_name_and_other_device_engines(tmp_path):
    shapes = ShapeRange((160, 128), (640, 512), (1920, 1200))
    on_h100 = EngineKey.for_device("lite", "3f2a9c1d", H100, "fp16", shapes)
    on_orin = EngineKey.for_device("lite", "3f2a9c1d", ORIN, "fp16", shapes)
    for key in (on_h100, on_orin):
        (tmp_path / key.filename()).write_bytes(b"plan")
    renamed = tmp_path / "my.engine"
    renamed.write_bytes(b"plan")
    assert read_engine_key(renamed) is None  # unknown origin
    write_sidecar(renamed, on_orin, ORIN, onnx="x.onnx")
    assert read_engine_key(renamed) == on_orin
    assert json.loads((tmp_path / "my.engine.json").read_text())["gpu_name"] == "Orin"
    (tmp_path / "my.engine.json").write_text("{broken")
    assert read_engine_key(renamed) is None
    assert other_device_engines(tmp_path, "lite", "3f2a9c1d", H100) == [tmp_path / on_orin.filename()]


def test_shape_range():
    r = ShapeRange((160, 128), (640, 512), (1920, 1200))
    assert r.contains((1280, 1024)) and not r.contains((2048, 1024)) and not r.contains((100, 512))
    assert r.nchw((640, 512)) == (1, 1, 512, 640)
    assert ShapeRange.parse(r.text()) == r and ShapeRange.parse("64x48").is_static
    with pytest.raises(UserError, match="min <= size <= max"):
        ShapeRange((800, 600), (640, 512), (1920, 1200))


# -- TensorRT buffer binding, against a stand-in engine/context -----------------------------


class FakeEngine:
    """Speaks the TensorRT 10 engine methods EngineRunner uses; I/O as named tensors."""

    num_io_tensors = 3
    names = ["ir", "vis", "fused"]

    def get_tensor_name(self, i):
        return self.names[i]

    def get_tensor_mode(self, name):
        return SimpleNamespace(name="OUTPUT" if name == "fused" else "INPUT")

    def get_tensor_dtype(self, name):
        return SimpleNamespace(name="FLOAT")

    def get_tensor_profile_shape(self, name, profile):
        return [(1, 1, 16, 16), (1, 1, 64, 64), (1, 1, 128, 128)]


class FakeContext:
    """Records bindings; 'executes' by averaging the bound inputs into the bound output."""

    def __init__(self):
        self.shapes, self.addresses, self.address_calls = {}, {}, 0
        self.tensors = {}  # data_ptr -> tensor, what the 'GPU' can see

    def set_input_shape(self, name, shape):
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["ir"]

    def set_tensor_address(self, name, ptr):
        self.addresses[name] = ptr
        self.address_calls += 1

    def execute_async_v3(self, stream):
        bufs = {n: self.tensors[p] for n, p in self.addresses.items()}
        bufs["fused"].copy_((bufs["ir"] + bufs["vis"]) / 2)
        return True


def make_runner():
    from pf_stream.backends import tensorrt_backend as tb

    engine, ctx = FakeEngine(), FakeContext()
    runner = tb.EngineRunner(engine, ctx, stream=lambda: 0, device="cpu")
    original_bind = runner._bind

    def bind(shape):
        original_bind(shape)
        ctx.tensors = {t.data_ptr(): t for t in runner.buffers.values()}

    runner._bind = bind
    return runner, ctx


def test_engine_runner_binds_once_per_size():
    runner, ctx = make_runner()
    for _ in range(5):
        a, b = torch.rand(1, 1, 32, 48), torch.rand(1, 1, 32, 48)
        assert torch.allclose(runner(a, b), (a + b) / 2)
    assert runner.binds == 1 and ctx.address_calls == 3  # 2 inputs + 1 output, once
    a = torch.rand(1, 1, 64, 40)
    assert torch.allclose(runner(a, a), a)
    assert runner.binds == 2 and ctx.address_calls == 6
    with pytest.raises(UserError, match="outside this engine's range"):
        runner(torch.rand(1, 1, 256, 40), torch.rand(1, 1, 256, 40))


def test_engine_runner_rejects_foreign_engines():
    from pf_stream.backends.tensorrt_backend import EngineRunner

    engine = FakeEngine()
    engine.names = ["images", "vis", "fused"]
    with pytest.raises(UserError, match="pf-export --format engine"):
        EngineRunner(engine, FakeContext(), stream=lambda: 0, device="cpu")


# -- ONNX Runtime providers ----------------------------------------------------------------


def test_ort_gpu_providers(tmp_path):
    from pf_stream.backends.onnxruntime_backend import gpu_providers

    with pytest.raises(UserError, match="onnxruntime-gpu"):
        gpu_providers("fp32", ["CPUExecutionProvider"], tmp_path)
    cuda_only = gpu_providers("fp32", ["CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path)
    assert [p[0] if isinstance(p, tuple) else p for p in cuda_only] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    with pytest.raises(UserError, match="TensorRT provider"):
        gpu_providers("fp16", ["CUDAExecutionProvider", "CPUExecutionProvider"], tmp_path)
    with pytest.raises(UserError, match="bf16"):
        gpu_providers("bf16", ["TensorrtExecutionProvider", "CUDAExecutionProvider"], tmp_path)
    cache = tmp_path / "trt"
    full = gpu_providers("fp16", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"], cache)
    name, opts = full[0]
    assert name == "TensorrtExecutionProvider" and cache.is_dir()
    assert opts["trt_fp16_enable"] is True and opts["trt_engine_cache_enable"] is True
    assert opts["trt_engine_cache_path"] == str(cache)
    assert opts["trt_profile_opt_shapes"] == "ir:1x1x512x640,vis:1x1x512x640"
    assert full[1][0] == "CUDAExecutionProvider" and full[2] == "CPUExecutionProvider"
    fp32 = gpu_providers("fp32", ["TensorrtExecutionProvider", "CUDAExecutionProvider"], cache)
    assert fp32[0][1]["trt_fp16_enable"] is False


# -- pf-bench --backend all planning ------------------------------------------------------


def test_plan_variants_skip_reasons():
    from pf_stream.bench.model_bench import Capabilities, plan_variants

    cpu = {v.label: v.skip for v in plan_variants(Capabilities())}
    assert cpu["torch/cpu/fp32"] is None and cpu["onnxruntime/cpu/fp32"] is None
    assert "no CUDA GPU" in cpu["torch/cuda/fp16+graphs"]
    assert "pip install tensorrt" in cpu["tensorrt/cuda/fp16"]
    assert len(cpu) == 16

    gpu_box = Capabilities(cuda=True, gpu="NVIDIA H100", bf16=True,
                           ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
    plan = {v.label: v.skip for v in plan_variants(gpu_box)}  # the GPU machine of this project
    assert all(plan[f"torch/cuda/{p}{g}"] is None for p in ("fp32", "fp16", "bf16") for g in ("", "+graphs"))
    assert plan["onnxruntime/cuda/fp32"] is None and "TensorRT provider" in plan["onnxruntime/cuda/fp16"]
    assert "tensorrt" in plan["tensorrt/cuda/fp32"]

    old = Capabilities(cuda=True, gpu="Tesla V100", bf16=False, tensorrt="10.3.0",
                       ort_providers=("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"))
    plan = {v.label: v.skip for v in plan_variants(old)}
    assert "bf16" in plan["torch/cuda/bf16"] and "bf16" in plan["tensorrt/cuda/bf16+graphs"]
    assert plan["tensorrt/cuda/fp16+graphs"] is None and plan["onnxruntime/cuda/fp16"] is None


def test_orin_estimate_is_a_range_from_gmac_and_card_ratio():
    from pf_stream.bench.model_bench import card_dram_gbs, estimate_orin_nx_ms

    est = estimate_orin_nx_ms(1.5)  # 3 GFLOP at 25 % of 15 TFLOPS
    assert est["optimistic_ms"] == pytest.approx(0.8, rel=1e-3) and "pessimistic_ms" not in est
    assert card_dram_gbs("NVIDIA H100 80GB HBM3") == 3350 and card_dram_gbs("NVIDIA H200") == 4800
    assert card_dram_gbs("NVIDIA GeForce RTX 4090") is None
    est = estimate_orin_nx_ms(72.0, 2.0, card_dram_gbs("NVIDIA H100 80GB HBM3"))
    assert est["pessimistic_ms"] == pytest.approx(2.0 * 3350 / 102.4, rel=1e-3)
    assert est["fps_range"][0] < est["fps_range"][1]


# -- colour conversion and warp as torch ops (compared with OpenCV) -----------------------


def test_colour_ops_are_bit_exact_with_opencv():
    from pf_stream.backends.gpu_ops import bgr_to_ycrcb, ycrcb_to_bgr
    from pf_stream.model.colour import merge_luma_chroma, split_luma_chroma

    rng = np.random.default_rng(1)
    bgr = rng.integers(0, 256, (61, 83, 3), dtype=np.uint8)
    y, crcb = bgr_to_ycrcb(torch.from_numpy(bgr))
    y_ref, crcb_ref = split_luma_chroma(bgr)
    assert y.shape == (1, 1, 61, 83) and np.array_equal(y[0, 0].numpy(), y_ref)
    assert np.array_equal(crcb[0].permute(1, 2, 0).numpy(), crcb_ref)
    fused = rng.random((61, 83), dtype=np.float32)
    fused[0, :6] = [0.0, 1.0, 0.5 / 255, 1.5 / 255, 2.5 / 255, 254.5 / 255]  # edges and exact halves
    got = ycrcb_to_bgr(torch.from_numpy(fused)[None, None], crcb)
    assert got.dtype == torch.uint8 and np.array_equal(got.numpy(), merge_luma_chroma(fused, crcb_ref))
    gray = ycrcb_to_bgr(torch.from_numpy(fused)[None, None], None)
    assert np.array_equal(gray.numpy(), merge_luma_chroma(fused, None))


@pytest.mark.parametrize("pattern", ["smooth", "noise"])
def test_warp_matches_cv2_warp_perspective(pattern):
    from pf_stream.backends.gpu_ops import warp_perspective

    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:240, 0:320]
    if pattern == "smooth":
        img = (127 + 60 * np.sin(xx / 9.0) + 60 * np.cos(yy / 7.0)).astype(np.uint8)
    else:
        img = rng.integers(0, 256, (240, 320), dtype=np.uint8)
    homography = np.array([[1.05, 0.03, -6.0], [-0.02, 0.98, 4.0], [1e-5, 2e-5, 1.0]])
    ref = cv2.warpPerspective(img, homography, (300, 220), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0).astype(np.float32)
    got = warp_perspective(torch.from_numpy(img).float()[None, None], homography, (300, 220))[0, 0].numpy()
    err = np.abs(got - ref)
    # OpenCV rounds to 8 bits (0.5) and snaps positions to 1/32 pixel (a few levels on noise).
    assert err.mean() < (0.3 if pattern == "smooth" else 1.5)
    assert err.max() <= (0.51 if pattern == "smooth" else 12.0)
    # Pixels mapped from outside the image are 0, as with BORDER_CONSTANT.
    ones = np.ones(img.shape, np.float32)
    outside = cv2.warpPerspective(ones, homography, (300, 220), flags=cv2.INTER_LINEAR) == 0
    assert outside.sum() > 100 and np.all(got[outside] == 0)


def test_gpu_frame_fuser_on_cpu_matches_the_opencv_path():
    """The whole on-device frame path (warp, split, fuse, merge) vs OpenCV + numpy, on CPU tensors."""
    from pf_stream.backends.gpu_ops import GpuFrameFuser
    from pf_stream.backends.torch_backend import TorchBackend
    from pf_stream.model.colour import merge_luma_chroma, split_luma_chroma

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:96, 0:128]
    ir8 = (120 + 80 * np.sin(xx / 6.0) * np.cos(yy / 5.0)).astype(np.uint8)
    vis = np.dstack([(100 + 50 * np.cos(xx / (4.0 + c))).astype(np.uint8) for c in range(3)])
    vis = np.clip(vis.astype(int) + rng.integers(-10, 10, vis.shape), 0, 255).astype(np.uint8)
    homography = np.array([[1.02, 0.0, -2.0], [0.0, 1.02, -1.5], [0.0, 0.0, 1.0]])
    backend = TorchBackend("classic")

    y, chroma = split_luma_chroma(vis)
    for h in (None, homography):
        got = GpuFrameFuser(backend, h)(ir8, vis)
        # OpenCV path, warping in float (as the device does) so the fusion sees the same IR;
        # classic fusion picks coefficients by magnitude, so 8-bit rounding would flip picks.
        ir = ir8.astype(np.float32) if h is None else cv2.warpPerspective(ir8.astype(np.float32), h, (128, 96),
                                                                          flags=cv2.INTER_LINEAR)
        want = merge_luma_chroma(backend.fuse(ir / 255.0, y), chroma)
        assert got.shape == want.shape == (96, 128, 3) and got.dtype == np.uint8
        assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_torch_backend_submit_on_cpu():
    from pf_stream.backends.torch_backend import TorchBackend

    backend = TorchBackend("classic")
    rng = np.random.default_rng(4)
    ir, vis = rng.random((48, 64), dtype=np.float32), rng.random((48, 64), dtype=np.float32)
    pending = backend.submit(ir, vis)
    assert np.array_equal(pending.result(), backend.fuse(ir, vis))
    backend.close()
    backend.close()  # twice is fine


# -- int8 calibration frames ---------------------------------------------------------------


def test_calibration_frames_from_a_folder(tmp_path):
    from pf_stream.export.tensorrt import CalibrationFrames

    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    rng = np.random.default_rng(5)
    for i in range(5):
        cv2.imwrite(str(tmp_path / "ir" / f"f{i}.png"), rng.integers(0, 65535, (40, 50), dtype=np.uint16))
        cv2.imwrite(str(tmp_path / "vi" / f"f{i}.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(tmp_path / "ir" / "lonely.png"), np.zeros((40, 50), np.uint8))  # no VIS partner
    frames = CalibrationFrames(tmp_path, (32, 24), limit=3)
    batches = list(frames)
    assert len(batches) == 3
    for ir, vis in batches:
        assert ir.shape == vis.shape == (1, 1, 24, 32) and ir.dtype == np.float32
        assert 0.0 <= ir.min() and ir.max() <= 1.0 and vis.max() <= 1.0
        assert ir.std() > 0.01  # real content survived the 16-bit conversion
    with pytest.raises(UserError, match="ir/ and vi/"):
        list(CalibrationFrames(tmp_path / "ir", (32, 24)))


def test_calibration_frames_on_real_pairs(shared_data):
    from pf_stream.export.tensorrt import CalibrationFrames

    frames = CalibrationFrames(shared_data / "roadscene", (160, 128), limit=8)
    pairs = frames.pairs()
    assert len(pairs) == 8 and all(a.stem == b.stem for a, b in pairs)
    assert len({a.stem for a, _ in pairs}) == 8  # spread over the folder, no repeats
    ir, vis = next(iter(frames))
    assert ir.shape == (1, 1, 128, 160) and 0.05 < float(vis.mean()) < 0.95


# -- the engine builder's calls, against a stand-in tensorrt module ----------------------


class FakeTrt:
    """Just enough of the tensorrt module for build_engine's fp16 path; records what it is told."""

    __version__ = "10.3.0"

    def __init__(self):
        self.log = []
        fake = self

        class Flag:
            FP16, INT8, TF32, BF16 = "FP16", "INT8", "TF32", "BF16"

        self.BuilderFlag = Flag
        self.MemoryPoolType = SimpleNamespace(WORKSPACE="WORKSPACE")
        self.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})

        class Network:
            num_inputs = 2

            def get_input(self, i):
                return SimpleNamespace(name=["ir", "vis"][i])

        class Profile:
            def set_shape(self, name, lo, opt, hi):
                fake.log.append(("shape", name, lo, opt, hi))

        class Config:
            def set_memory_pool_limit(self, pool, size):
                fake.log.append(("pool", pool, size))

            def set_flag(self, flag):
                fake.log.append(("set", flag))

            def clear_flag(self, flag):
                fake.log.append(("clear", flag))

            def add_optimization_profile(self, profile):
                fake.log.append(("profile",))

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags):
                fake.log.append(("network", flags))
                return Network()

            def create_builder_config(self):
                return Config()

            def create_optimization_profile(self):
                return Profile()

            def build_serialized_network(self, network, config):
                return b"serialized-plan"

        class Parser:
            num_errors = 0

            def __init__(self, network, logger):
                pass

            def parse(self, data):
                fake.log.append(("parse", len(data)))
                return True

        self.Builder, self.OnnxParser = Builder, Parser


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
def test_build_engine_calls(tmp_path, monkeypatch, precision):
    from pf_stream.backends import base
    from pf_stream.backends.engine_cache import DeviceInfo
    from pf_stream.export import tensorrt as export_trt

    fake = FakeTrt()
    monkeypatch.setattr(export_trt, "require_tensorrt", lambda: fake)
    monkeypatch.setattr(base, "require_tensorrt", lambda: fake)
    monkeypatch.setattr(DeviceInfo, "current", classmethod(lambda cls, trt, index=0: H100))
    onnx_path = tmp_path / "lite.onnx"
    onnx_path.write_bytes(b"onnx-bytes")
    shapes = ShapeRange((160, 128), (640, 512), (1920, 1200))
    built = export_trt.build_engine(onnx_path, tmp_path / "out.engine", precision, shapes, model="lite", workspace_gb=2)
    assert built.path.read_bytes() == b"serialized-plan"
    assert ("network", 0) in fake.log and ("pool", "WORKSPACE", 2 << 30) in fake.log
    # Both inputs get the same N,C,H,W range: height before width.
    for name in ("ir", "vis"):
        assert ("shape", name, (1, 1, 128, 160), (1, 1, 512, 640), (1, 1, 1200, 1920)) in fake.log
    if precision == "fp16":
        assert ("set", "FP16") in fake.log and ("clear", "TF32") not in fake.log
    else:
        assert ("clear", "TF32") in fake.log and ("set", "FP16") not in fake.log
    key = read_engine_key(built.path)
    assert key == built.key and key.precision == precision and key.shapes == shapes and key.gpu == H100.slug
    with pytest.raises(UserError, match="--calib-dir"):
        export_trt.build_engine(onnx_path, tmp_path / "int8.engine", "int8", shapes, model="lite")


def test_engine_source_onnx_kept_beside_the_engine(tmp_path):
    """pf-export --format engine keeps the ONNX it built from, named by its digest (for rebuilds)."""
    import argparse

    import onnxruntime as ort

    from pf_stream.backends.engine_cache import source_digest
    from pf_stream.export.cli import _out_path, _source_onnx

    args = argparse.Namespace(onnx=None, model="classic", weights=None, trust_pickle=False, out=f"{tmp_path}/")
    path = _source_onnx(args, _out_path(args, "x").parent)
    assert path.parent == tmp_path and path.name == f"classic-{source_digest(path)}.onnx"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary left behind
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 1, 96, 80), dtype=np.float32)  # dynamic size
    assert session.run(["fused"], {"ir": x, "vis": x})[0].shape == (1, 1, 96, 80)


def test_torch_compile_gives_the_eager_result():
    """``torch_compile=True`` (pf-bench --compile) runs the same model through Inductor: same
    output as eager, here on the CPU (the GPU run is in tests/test_gpu_cuda.py)."""
    from pf_stream.backends import create_backend
    from pf_stream.bench.model_bench import structured_pair

    ir, vis = structured_pair(48, 64)
    compiled = create_backend("lite", "torch", "cpu", torch_compile=True)
    eager = create_backend("lite", "torch", "cpu")
    got, want = compiled.fuse(ir, vis), eager.fuse(ir, vis)
    assert np.abs(got - want).max() <= 1e-5 and got.std() > 0.01
    assert compiled.model_module is not eager.model_module and hasattr(compiled.model_module, "_orig_mod")
