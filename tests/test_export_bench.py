"""pf-export (ONNX, checked in ONNX Runtime) and pf-bench model-only, through their CLIs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from pf_stream.model.registry import load_model


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("name", ["lite", "classic"])
def test_export_dynamic_onnx_runs_at_other_sizes(tmp_path, name):
    out, report = tmp_path / f"{name}.onnx", tmp_path / "report.json"
    proc = run("pf_stream.export.cli", "--model", name, "--format", "onnx", "--size", "160x128", "--dynamic",
               "--out", str(out), "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(report.read_text())
    assert data["max_abs_err"] <= 1e-4 and data["dynamic"] is True
    assert len(data["checked_sizes"]) == 3
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["ir", "vis"]
    assert [o.name for o in session.get_outputs()] == ["fused"]
    model, _ = load_model(name)
    torch.manual_seed(0)
    for h, w in [(480, 640), (513, 641)]:
        ir, vis = torch.rand(1, 1, h, w), torch.rand(1, 1, h, w)
        got = session.run(["fused"], {"ir": ir.numpy(), "vis": vis.numpy()})[0]
        with torch.no_grad():
            assert np.abs(got - model(ir, vis).numpy()).max() <= 1e-4


def test_export_full_static(tmp_path):
    out = tmp_path / "full.onnx"
    proc = run("pf_stream.export.cli", "--model", "full", "--size", "64x48", "--out", str(out), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "r.json").read_text())["max_abs_err"] <= 1e-4


@pytest.mark.parametrize(
    "args, words",
    [
        (["--model", "nope", "--out", "x.onnx"], "unknown model"),
        (["--format", "tflite", "--out", "x.onnx"], "unknown format"),
        (["--size", "640by512", "--out", "x.onnx"], "malformed size"),
        (["--out", "/proc/forbidden/x.onnx"], "cannot write"),
        (["--format", "engine", "--out", "x.engine"], "TensorRT"),
    ],
)
def test_export_bad_input_one_line(tmp_path, args, words):
    proc = subprocess.run([sys.executable, "-m", "pf_stream.export.cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert words in lines[-1]


def test_bench_model_json(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("pf_stream.cli.bench", "--model", "classic", "--backend", "torch", "--size", "96x64", "--iters", "3",
               "--threads", "1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    for key in ["model", "backend", "device", "precision", "size", "params", "gmac", "fps", "latency_ms"]:
        assert key in data
    assert data["size"] == "96x64" and data["gmac"] > 0 and data["fps"] > 0
    assert set(data["latency_ms"]) == {"p50", "p90", "p99"}
    assert data["latency_ms"]["p50"] <= data["latency_ms"]["p99"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--backend", "tensorflow"], "unknown backend"),
        (["--precision", "fp8"], "unknown precision"),
        (["--device", "cuda"], "cuda"),
        (["--size", "0x0"], "out of range"),
        (["--json", "/proc/forbidden/x.json"], "cannot write"),
    ],
)
def test_bench_bad_input_one_line(args, words):
    proc = run("pf_stream.cli.bench", "--iters", "1", *args, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert words in proc.stderr.strip().splitlines()[-1]
