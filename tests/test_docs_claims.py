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
