"""The run config: defaults = configs/pipeline.yaml, YAML + CLI overrides, did-you-mean, --print-config."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pf_stream.cli.stream import build_parser, config_from_args
from pf_stream.config import RunConfig, load_config, to_yaml
from pf_stream.errors import UserError

REPO = Path(__file__).resolve().parents[1]
DEFAULT_YAML = REPO / "configs" / "pipeline.yaml"


def _cfg(argv: list[str]) -> RunConfig:
    return config_from_args(build_parser().parse_args(argv))


def test_default_yaml_equals_dataclass_defaults_and_documents_every_key():
    assert load_config(DEFAULT_YAML) == RunConfig()
    text = DEFAULT_YAML.read_text()
    data = yaml.safe_load(text)
    for section, value in data.items():
        keys = value.keys() if isinstance(value, dict) else [section]
        for key in keys:
            line = next(line for line in text.splitlines() if line.strip().startswith(f"{key}:"))
            assert "#" in line, f"{section}.{key} has no comment in configs/pipeline.yaml"


def test_yaml_then_flags_then_set(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("fusion:\n  model: classic\n  threads: 2\nview:\n  mode: quad\nsources:\n  ir: 0\n")
    cfg = _cfg(["--config", str(path), "--view", "side-by-side", "--set", "fusion.threads=1", "--vis", "synthetic://"])
    assert cfg.fusion.model == "classic"  # from the file
    assert cfg.view.mode == "side-by-side"  # flag beats file
    assert cfg.fusion.threads == 1  # --set beats file
    assert cfg.sources.ir == "0"  # a camera index written as a number in YAML is a URI string
    assert cfg.sources.vis == "synthetic://"
    assert cfg.pairing.max_skew_ms == 20.0  # untouched default


def test_unknown_yaml_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("fusion:\n  modle: lite\n")
    with pytest.raises(UserError, match=r"unknown key 'fusion.modle' \(did you mean 'fusion.model'\?\)"):
        load_config(path)
    path.write_text("fuson:\n  model: lite\n")
    with pytest.raises(UserError, match=r"did you mean 'fusion'"):
        load_config(path)


def test_set_typo_type_and_choice_errors():
    with pytest.raises(UserError, match=r"did you mean 'pairing.max_skew_ms'"):
        _cfg(["--set", "pairing.max_skew=10"])
    with pytest.raises(UserError, match="wants a number"):
        _cfg(["--set", "pairing.max_skew_ms=fast"])
    with pytest.raises(UserError, match=r"is not one of fused, side-by-side, quad \(did you mean 'quad'\?\)"):
        _cfg(["--view", "quadd"])
    with pytest.raises(UserError, match="low_percentile < high_percentile"):
        _cfg(["--set", "normalise.low_percentile=99.5"])


def test_unknown_flag_is_one_line_with_hint():
    with pytest.raises(UserError, match=r"unknown option --recrod \(did you mean '--record'\?\)"):
        build_parser().parse_args(["--recrod", "x.mp4"])


def test_print_config_round_trips(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pf_stream.cli.stream", "--print-config", "--ir", "cam0", "--model", "classic",
                           "--null", "--max-skew-ms", "15"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    printed = tmp_path / "printed.yaml"
    printed.write_text(proc.stdout)
    cfg = load_config(printed)
    assert (cfg.sources.ir, cfg.fusion.model, cfg.outputs.null_sink, cfg.pairing.max_skew_ms) == ("cam0", "classic", True, 15.0)
    assert to_yaml(cfg) == proc.stdout


def test_output_config_carries_the_rtsp_seam():
    cfg = _cfg(["--rtsp", "rtsp://0.0.0.0:8554/fused", "--rtsp-user", "op", "--encoder", "x264", "--bitrate", "2500",
                "--keyframe-interval", "0.5"])
    out = cfg.outputs
    assert (out.rtsp, out.rtsp_user, out.encoder, out.bitrate_kbps, out.keyframe_interval_s) == (
        "rtsp://0.0.0.0:8554/fused", "op", "x264", 2500, 0.5)
    with pytest.raises(UserError, match="did you mean 'nvenc'"):
        _cfg(["--encoder", "nvnec"])


@pytest.mark.parametrize("overrides, graphs", [
    ({"fusion.device": "cuda"}, True),                                  # auto = torch on cuda
    ({"fusion.device": "cuda", "fusion.backend": "torch"}, True),
    ({"fusion.device": "cuda", "fusion.cuda_graphs": False}, False),
    ({"fusion.device": "cuda", "fusion.backend": "onnxruntime"}, False),
    ({}, False),                                                        # the CPU never asks for graphs
    ({"fusion.device": "cuda", "fusion.weights": "lite-fp16.ep"}, False),  # torch-tensorrt: its own runtime
])
def test_pipeline_asks_for_cuda_graphs_on_the_gpu_only(monkeypatch, overrides, graphs):
    import pf_stream.backends as backends
    from pf_stream.pipeline import _create_backend

    seen = {}
    monkeypatch.setattr(backends, "create_backend", lambda *a, **kw: seen.update(kw) or "engine")
    assert _create_backend(load_config(None, overrides)) == "engine"
    assert seen["cuda_graphs"] is graphs
