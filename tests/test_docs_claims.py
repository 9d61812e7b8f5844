"""Claims the user docs (README, docs/STREAMING, RTSP, BENCHMARKS, GPU) make about the tools,
checked against the tools themselves: a doc walk found each of these drifted once."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from pf_stream.bench.model_bench import bench_model
from tests.conftest import REPO


def run_cli(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=timeout)


def test_bench_report_names_the_compiled_file_that_ran(tmp_path):
    # `pf-bench --weights lite.onnx` timed that file but its JSON said the shipped
    # lite.safetensors ran (and that it was trained), so a table built from it named the wrong weights.
    onnx = tmp_path / "mine.onnx"
    proc = run_cli("pf_stream.export.cli", "--model", "classic", "--size", "64x48", "--out", str(onnx))
    assert proc.returncode == 0, proc.stderr
    result = bench_model("classic", "onnxruntime", "cpu", "fp32", (64, 48), iters=1, warmup=0, weights=str(onnx))
    assert result.weights == str(onnx)
    assert result.trained is None  # a compiled file does not say how its weights were made
    shipped = bench_model("classic", "onnxruntime", "cpu", "fp32", (64, 48), iters=1, warmup=0)
    assert shipped.weights == "classic (fixed rules, no weights)" and shipped.trained is False
    assert result.params == shipped.params and result.gmac == shipped.gmac  # cost: the shipped architecture


def test_bench_help_lists_rtsp_mode():
    # docs/RTSP.md and BENCHMARKS.md measure with `pf-bench --rtsp`; it ran but --help never said so.
    proc = run_cli("pf_stream.cli.bench", "--help")
    assert proc.returncode == 0 and "--rtsp" in proc.stdout
    sub = run_cli("pf_stream.cli.bench", "--rtsp", "--help")
    assert sub.returncode == 0 and "--viewers" in sub.stdout and "default 1" in sub.stdout


@pytest.mark.parametrize("args", [["--viewers", "0"], ["--seconds", "0"], ["--size", "big"]])
def test_bench_rtsp_bad_input_one_line(args):
    proc = run_cli("pf_stream.cli.bench", "--rtsp", *args)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr


def test_print_config_matches_pipeline_yaml(tmp_path):
    # README/STREAMING: configs/pipeline.yaml lists every key with its default; --print-config shows the result.
    proc = run_cli("pf_stream.cli.stream", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout) == yaml.safe_load((REPO / "configs" / "pipeline.yaml").read_text())
    shown = run_cli("pf_stream.cli.stream", "--config", str(REPO / "configs" / "pipeline.yaml"), "--set",
                    "normalise.clahe=true", "--set", "pairing.max_skew_ms=30", "--print-config")
    cfg = yaml.safe_load(shown.stdout)
    assert cfg["normalise"]["clahe"] is True and cfg["pairing"]["max_skew_ms"] == 30.0
    bad = tmp_path / "bad.yaml"
    bad.write_text("fusion:\n  modle: lite\n")
    err = run_cli("pf_stream.cli.stream", "--config", str(bad), "--print-config")
    assert err.returncode == 2
    assert err.stderr.strip() == f"pf-stream: error: {bad}: unknown key 'fusion.modle' (did you mean 'fusion.model'?)"
    err = run_cli("pf_stream.cli.stream", "--set", "fusion.modle=lite", "--print-config")
    assert err.returncode == 2 and "(did you mean 'fusion.model'?)" in err.stderr


def test_stats_json_has_the_documented_keys(tmp_path):
    # docs/STREAMING.md, section Stats: the keys of --stats-json.
    out = tmp_path / "s.json"
    proc = run_cli("pf_stream.cli.stream", "--ir", "synthetic://?size=160x128", "--vis", "synthetic://?size=160x128",
                   "--model", "classic", "--frames", "5", "--null", "--stats-json", str(out))
    assert proc.returncode == 0, proc.stderr
    # The summary line: the seconds include start-up, the fps is first-to-last frame, and it says so.
    summary = proc.stderr.strip().splitlines()[-1]
    assert re.search(r"5 frames in [\d.]+ s \([\d.]+ fps once running\); glass-to-glass p50 \d+ ms p95 \d+ ms; "
                     r"dropped \d+ \(capture \d+, pairing \d+, sinks \d+\); 5 frames done$", summary), summary
    stats = json.loads(out.read_text())
    for key in ("frames", "fused", "single_side", "no_signal", "elapsed_s", "fps", "latency_ms", "latency_mean_ms",
                "stages_ms", "stages_p95_ms", "skew_ms", "dropped", "dropped_by", "corrupt_frames", "sources", "sinks",
                "cpu_percent", "rss_mb", "stop_reason", "config"):
        assert key in stats, key
    assert set(stats["latency_ms"]) == {"p50", "p95", "p99"}
    assert set(stats["stages_ms"]) == {"capture", "pair", "normalise", "align", "fuse", "compose", "output"}
    assert set(stats["dropped_by"]) == {"capture", "pairing", "sinks"}
    assert stats["frames"] == 5 and stats["stop_reason"] == "5 frames done"


# -- claims of the GPU session (docs/GPU.md, TRAINING.md, BENCHMARKS.md) that a CPU machine can check --


def test_pf_stream_asks_for_cuda_graphs_by_default_and_can_turn_them_off():
    # docs/GPU.md, "In the pipeline": fusion.cuda_graphs is true by default; --set ...=false turns it off.
    # (That the pipeline then passes it to the torch backend on cuda only: tests/test_stream_config.py.)
    from pf_stream.config import FusionConfig

    assert FusionConfig().cuda_graphs is True
    proc = run_cli("pf_stream.cli.stream", "--set", "fusion.cuda_graphs=false", "--print-config")
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(proc.stdout)["fusion"]["cuda_graphs"] is False


def test_lite_runs_one_contourlet_transform_for_both_cameras():
    # BENCHMARKS/GPU session: both cameras go through one decomposition, stacked on the batch axis.
    import torch

    from pf_stream.model.registry import load_model

    model, _ = load_model("lite", None)
    calls = []
    decompose = model.contourlet.decompose

    def counted(x):
        calls.append(tuple(x.shape))
        return decompose(x)

    model.contourlet.decompose = counted
    with torch.inference_mode():
        out = model(torch.rand(1, 1, 64, 80), torch.rand(1, 1, 64, 80))
    assert out.shape == (1, 1, 64, 80)
    assert calls == [(2, 1, 64, 80)], calls


def test_orin_estimates_in_gpu_md_follow_from_the_h100_table():
    # docs/GPU.md's Jetson table = estimate_orin_nx_ms(GMAC, the H100 fp16 + graphs p50 in BENCHMARKS.md).
    from pf_stream.bench.model_bench import card_dram_gbs, estimate_orin_nx_ms

    bench = (REPO / "docs" / "BENCHMARKS.md").read_text()
    bench = bench[bench.index("## GPU: NVIDIA H100, second slot"):]  # the H100 table of session 9 ...
    bench = bench[: bench.index("\n## ", 1)]  # ... not the H200's of session 11 after it
    h100 = {(m, s): float(ms) for m, s, ms in re.findall(
        r"^\| (lite|full) \| (\d+×\d+) \| \**fp16 \+ graphs\** \| [^|]+ \| ([\d.]+) \|", bench, re.M)}
    assert len(h100) == 4, h100
    rows = re.findall(r"^\| (lite|full)[^|]* \| (\d+×\d+) \| ([\d.]+) \| ([\d.]+) ms[^|]* \| ([\d.]+) ms",
                      (REPO / "docs" / "GPU.md").read_text(), re.M)
    assert len(rows) == 4, rows
    gbs = card_dram_gbs("NVIDIA H100 80GB HBM3")
    for model, size, gmac, optimistic, pessimistic in rows:
        est = estimate_orin_nx_ms(float(gmac), h100[(model, size)], gbs)
        assert est["optimistic_ms"] == pytest.approx(float(optimistic), rel=0.01), (model, size)
        assert est["pessimistic_ms"] == pytest.approx(float(pessimistic), rel=0.01), (model, size)


def test_gpu_slot_schedules_in_the_docs_are_the_configs():
    # TRAINING.md's table ("steps trained (config)") and its 30-minute sum assume these
    # schedules (gpu_train.py reads them from the configs).
    full = yaml.safe_load((REPO / "configs" / "train" / "full.yaml").read_text())
    lite = yaml.safe_load((REPO / "configs" / "train" / "lite.yaml").read_text())
    assert (full["stage1"]["steps"], full["stage2"]["steps"], lite["stage2"]["steps"]) == (4000, 8000, 7000)
    training = (REPO / "docs" / "TRAINING.md").read_text()
    assert "294 (4000)" in training and "588 (8000)" in training and "1125 (7000)" in training


def _script(name: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([str(REPO / "scripts" / name), *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHON": sys.executable, **env})


def test_gpu_check_without_a_gpu_exits_2_saying_so(tmp_path):
    # docs/GPU.md: `GPU_CHECK_BUDGET_S=250 scripts/gpu_check.sh` ... without a GPU it exits 2.
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible here: gpu_check would run for minutes")
    proc = _script("gpu_check.sh", str(tmp_path), GPU_CHECK_BUDGET_S="250")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "torch sees no CUDA GPU; nothing to check here" in proc.stdout
    assert "no CUDA GPU" in (tmp_path / "gpu_check.log").read_text()


def test_gpu_train_with_a_missing_data_folder_is_one_line(tmp_path):
    # docs/TRAINING.md / scripts/gpu_train.sh: a failed run is one line and exit 1, naming the folder.
    missing = tmp_path / "no_such_folder"
    proc = _script("gpu_train.sh", "--data", str(missing), "--out", str(tmp_path / "out"), "--device", "cpu")
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 1, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("gpu_train: pf-train failed") and str(missing) in lines[0], lines
