"""pf-train end to end on tiny synthetic data: weights, resume, Ctrl-C, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pf_stream.train import cli
from pf_stream.train.data import CropSampler
from tests.train_helpers import make_pairs, tiny_clip

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "configs" / "train" / "tiny.yaml")


def _train(args: list[str]) -> int:
    try:
        cli.main(["--config", TINY, "--no-progress", *args])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_pairs(tmp_path_factory.mktemp("data") / "set", ["a", "b", "c"])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "lite.safetensors"))


def test_trains_and_writes_loadable_weights(tmp_path, data):
    from pf_stream.model.registry import load_model

    run = tmp_path / "run"
    assert _train(["--data", str(data), "--out", str(run)]) == 0
    model, info = load_model("lite", run / "lite.safetensors")
    assert info.trained and info.meta["steps"]["stage2"] == 6 and "no CLIP" in info.meta["prompt"]
    assert info.config["global_context"] is True
    fused = model(torch.rand(1, 1, 40, 52), torch.rand(1, 1, 40, 52))
    assert fused.shape == (1, 1, 40, 52)
    rows = (run / "log_stage2.csv").read_text().splitlines()
    assert rows[0].startswith("stage,step,lr") and len(rows) == 1 + 6


def test_interrupt_keeps_a_checkpoint_and_resume_matches_an_uninterrupted_run(tmp_path, data, monkeypatch):
    straight = tmp_path / "straight"
    assert _train(["--data", str(data), "--out", str(straight)]) == 0

    real_batch = CropSampler.batch
    calls = {"n": 0}

    def flaky_batch(self, size):
        calls["n"] += 1
        if calls["n"] == 4:  # Ctrl-C during the 4th step
            raise KeyboardInterrupt
        return real_batch(self, size)

    run = tmp_path / "interrupted"
    monkeypatch.setattr(CropSampler, "batch", flaky_batch)
    assert _train(["--data", str(data), "--out", str(run)]) == 130
    monkeypatch.setattr(CropSampler, "batch", real_batch)

    from pf_stream.model.registry import load_model

    _, info = load_model("lite", run / "lite.safetensors")  # usable as is
    assert info.meta["steps"]["stage2"] == 3
    assert _train(["--data", str(data), "--out", str(run), "--resume"]) == 0
    a, b = _weights(straight), _weights(run)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_prompt_stage_runs_with_a_tiny_clip(tmp_path, data):
    cfg, weights = tiny_clip(tmp_path)
    run = tmp_path / "run"
    assert _train(["--data", str(data), "--out", str(run), "--steps", "3",
                   "--clip-weights", str(weights), "--clip-model", str(cfg)]) == 0
    header, *rows = (run / "log_stage2.csv").read_text().splitlines()
    assert {"prompt", "upper", "alpha"} <= set(header.split(","))
    alphas = [float(r.split(",")[header.split(",").index("alpha")]) for r in rows]
    assert alphas == sorted(alphas, reverse=True) and alphas[0] == pytest.approx(0.5)


def _run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "pf_stream.train.cli", "--config", TINY, "--no-progress", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)


def _one_line_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("pf-train: error:") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_input_missing_folder_is_one_line(tmp_path):
    _one_line_error(_run_cli("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run")), "not found")


def test_bad_input_clip_weights_for_another_model_is_one_line(tmp_path, data, capsys):
    _, weights = tiny_clip(tmp_path)
    assert _train(["--data", str(data), "--out", str(tmp_path / "run"), "--clip-weights", str(weights), "--clip-model", "ViT-B-32"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("pf-train: error:") and "do not fit --clip-model ViT-B-32" in err[0]
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


@pytest.mark.parametrize(
    "make_args, fragment",
    [
        (lambda t, d: ["--data", str(make_pairs(t / "odd", ["x"]) and t / "odd"), "--out", str(t / "r")], None),
        (lambda t, d: ["--data", str(d), "--out", str(_file(t) / "run")], "cannot write to run folder"),
        (lambda t, d: ["--data", str(d), "--out", str(t / "r"), "--set", "stage2.stepz=3"], "did you mean 'steps'"),
        # a misspelled target rule fails before the (here missing) data is looked at
        (lambda t, d: ["--data", str(t / "nope"), "--out", str(t / "r"), "--set", "loss.target_low=salinet"], "did you mean 'salient'"),
        (lambda t, d: ["--data", str(d), "--out", str(t / "empty"), "--resume"], "nothing to resume"),
    ],
)
def test_bad_input_in_process_is_one_line(tmp_path, data, capsys, make_args, fragment):
    args = make_args(tmp_path, data)
    if fragment is None:  # unmatched names: break the pair first
        (tmp_path / "odd" / "vi" / "x.png").rename(tmp_path / "odd" / "vi" / "z.png")
        fragment = "without a partner"
    assert _train(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("pf-train: error:")]
    assert len(err) == 1 and fragment in err[0]


def _file(tmp: Path) -> Path:
    f = tmp / "a_file"
    f.write_text("not a folder")
    return f


def test_ctrl_c_on_the_real_process_leaves_a_usable_checkpoint(tmp_path, data):
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "pf_stream.train.cli", "--config", TINY, "--no-progress", "--data", str(data),
         "--out", str(run), "--steps", "100000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )
    deadline = time.time() + 120
    while not (run / "checkpoint.safetensors").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "checkpoint saved" in err and "Traceback" not in err
    from pf_stream.train.checkpoint import load_checkpoint

    from pf_stream.model.registry import build_model, load_model

    _, info = load_model("lite", run / "lite.safetensors")
    state = load_checkpoint(run, build_model("lite", info.config), {})
    assert state.stage == 2 and state.step >= 2


def test_full_runs_both_stages_and_distils_into_lite(tmp_path, data):
    from pf_stream.model.registry import load_model

    full_run = tmp_path / "full"
    assert _train(["--config", str(REPO / "configs/train/tiny_full.yaml"), "--data", str(data), "--out", str(full_run)]) == 0
    stage1 = (full_run / "log_stage1.csv").read_text().splitlines()
    assert stage1[0].split(",")[-2:] == ["reconstruction", "decomposition"] and len(stage1) == 3
    _, info = load_model("full", full_run / "full.safetensors")
    assert info.meta["steps"] == {"stage1": 2, "stage2": 2}

    lite_run = tmp_path / "lite"
    assert _train(["--data", str(data), "--out", str(lite_run), "--steps", "2", "--teacher", str(full_run / "full.safetensors"),
                   "--init", str(tmp_path / "missing.safetensors")]) == 2  # --init must exist
    assert _train(["--data", str(data), "--out", str(lite_run), "--steps", "2", "--teacher", str(full_run / "full.safetensors")]) == 0
    header = (lite_run / "log_stage2.csv").read_text().splitlines()[0].split(",")
    assert "distill" in header


def test_config_values_read_like_the_run_config():
    """pf-train's config shares the run config's value checker: a YAML string such as 1e-3
    (YAML 1.1 reads it as text) is a number, list items are checked, nan is refused."""
    from pf_stream.errors import UserError
    from pf_stream.train.config import load_config

    repo = Path(__file__).resolve().parents[1]
    config = load_config(repo / "configs/train/tiny.yaml", ["stage2.lr=1e-3", "data.exclude=[a, 7]", "loss.target_fit=no"])
    assert config.stage2.lr == 0.001 and config.data.exclude == ["a", "7"] and config.loss.target_fit is False
    for bad, wants in [("stage2.lr=.nan", "a finite number"), ("data.folders=x", "a list"), ("run.log_every=2.5", "whole")]:
        with pytest.raises(UserError, match=wants):
            load_config(repo / "configs/train/tiny.yaml", [bad])


def test_bf16_autocast_trains_both_stages_close_to_fp32(tmp_path, data):
    """run.precision=bf16 (autocast, meant for GPUs; CPU autocast here): the same seeded steps
    give finite losses that differ from fp32 by rounding only — so autocast really ran — and
    the weights stay fp32 and load."""
    import csv

    from pf_stream.model.registry import load_model

    losses = {}
    for precision in ("fp32", "bf16"):
        run = tmp_path / precision
        assert _train(["--config", str(REPO / "configs/train/tiny_full.yaml"), "--data", str(data), "--out", str(run),
                       "--set", f"run.precision={precision}"]) == 0
        losses[precision] = [float(r["loss"]) for stage in (1, 2) for r in csv.DictReader((run / f"log_stage{stage}.csv").open())]
        model, info = load_model("full", run / "full.safetensors")
        assert info.meta["precision"] == precision and next(model.parameters()).dtype == torch.float32
    first_fp32, first_bf16 = losses["fp32"][0], losses["bf16"][0]
    assert all(torch.isfinite(torch.tensor(losses["bf16"])))
    assert first_bf16 != first_fp32 and abs(first_bf16 - first_fp32) < 0.05 * abs(first_fp32)
    assert _train(["--data", str(data), "--out", str(tmp_path / "x"), "--set", "run.precision=fp16"]) == 2  # bf16 or fp32 only
