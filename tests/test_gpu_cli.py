"""GPU options through the command lines, on whatever machine runs the tests.

Where the hardware or package is missing, each GPU-only request must end in one line that
says what to install, exit code 2, no traceback.  Those cases only exist on machines without
them, so each test skips (saying why) where the thing *is* available.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
HAS_TORCH_TRT = importlib.util.find_spec("torch_tensorrt") is not None


def run(module, *args, timeout=180, cwd=None):
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


def one_line_error(proc, *words):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, last
    return last


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here; the missing-package message cannot be shown")
def test_bench_tensorrt_without_tensorrt_says_what_to_install():
    one_line_error(run("pf_stream.cli.bench", "--backend", "tensorrt", "--device", "cuda", "--iters", "1"),
                   "pip install tensorrt")


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA GPU is visible here")
def test_device_cuda_without_gpu_says_what_to_install():
    last = one_line_error(run("pf_stream.cli.bench", "--backend", "torch", "--device", "cuda", "--precision", "fp16",
                              "--iters", "1"), "CUDA build of torch")
    assert "--device cpu" in last


def test_cuda_graphs_on_cpu_is_refused():
    one_line_error(run("pf_stream.cli.bench", "--backend", "torch", "--cuda-graphs", "--iters", "1"), "--device cuda")


def test_compile_with_another_backend_is_refused():
    one_line_error(run("pf_stream.cli.bench", "--backend", "onnxruntime", "--compile", "--iters", "1"), "--backend torch")


@pytest.mark.skipif(HAS_TRT, reason="TensorRT is installed here")
def test_export_engine_without_tensorrt(tmp_path):
    one_line_error(run("pf_stream.export.cli", "--format", "engine", "--precision", "fp16", "--out", "engines/",
                       cwd=tmp_path), "pip install tensorrt")
    assert not (tmp_path / "engines").exists()  # nothing written before the check


@pytest.mark.skipif(HAS_TORCH_TRT, reason="torch-tensorrt is installed here")
def test_export_torch_trt_without_package(tmp_path):
    one_line_error(run("pf_stream.export.cli", "--format", "torch-trt", "--out", "out/", cwd=tmp_path),
                   "pip install torch-tensorrt")


@pytest.mark.parametrize(
    "args, words",
    [
        (["--precision", "int8"], "--calib-dir"),
        (["--precision", "int8", "--calib-dir", "nowhere"], "not found"),
        (["--precision", "fp16", "--calib-dir", "."], "int8 only"),
        (["--min-size", "800x600"], "min <= size <= max"),
        (["--max-size", "64by48"], "malformed size"),
        (["--onnx", "missing.onnx"], "not found"),
    ],
)
def test_export_engine_arguments_checked_before_any_gpu_work(tmp_path, args, words):
    one_line_error(run("pf_stream.export.cli", "--format", "engine", "--out", "engines/", *args, cwd=tmp_path), *words)


def test_bench_all_lists_every_variant_with_reasons(tmp_path):
    out = tmp_path / "all.json"
    proc = run("pf_stream.cli.bench", "--backend", "all", "--model", "classic", "--size", "64x48", "--iters", "2",
               "--warmup", "1", "--threads", "1", "--json", str(out), timeout=300)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    ran = {r["variant"] for r in report["results"]}
    skipped = {s["variant"]: s["reason"] for s in report["skipped"]}
    assert {"torch/cpu/fp32", "onnxruntime/cpu/fp32"} <= ran
    assert len(ran) + len(skipped) == 16 and not ran & set(skipped)
    assert all(reason for reason in skipped.values())
    for r in report["results"]:
        assert r["fps"] > 0 and r["size"] == "64x48"
    if not HAS_CUDA:
        assert "no CUDA GPU" in skipped["torch/cuda/fp16+graphs"]
    if not HAS_TRT:
        assert "pip install tensorrt" in skipped["tensorrt/cuda/fp16"]
    # The human table goes to stderr, one row per variant.
    assert sum(line.startswith(("torch/", "onnxruntime/", "tensorrt/")) for line in proc.stderr.splitlines()) == 16
