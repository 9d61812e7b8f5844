"""Regression tests from adversarial use of the command-line tools.

Each test is a defect a user hit: bad input must end in one line on stderr, exit code 2,
no traceback; what was asked for (a recording, a report) must not silently go missing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.cli_helpers import REPO, assert_user_error, run_tool

SYN = ["--ir", "synthetic://", "--vis", "synthetic://", "--size", "64x48", "--model", "classic", "--frames", "2"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc as a place no one can write a file")
def test_record_to_an_unwritable_place_is_an_error_before_the_run(tmp_path):
    # PyAV opens the file at the first frame: this used to log "output record failed",
    # run on and exit 0 with no recording at all.
    proc = run_tool("pf_stream.cli.stream", *SYN, "--record", "/proc/pf-stream-qa.mp4")
    assert_user_error(proc, "pf-stream", "--record", "/proc/pf-stream-qa.mp4")


def test_record_probe_leaves_no_file_behind_and_keeps_an_existing_one(tmp_path):
    from pf_stream.sinks.record import RecordSink

    RecordSink(tmp_path / "new.mp4")
    assert not (tmp_path / "new.mp4").exists()
    old = tmp_path / "old.mp4"
    old.write_bytes(b"previous recording")
    RecordSink(old)
    assert old.read_bytes() == b"previous recording"  # overwritten only once frames come


@pytest.mark.parametrize("flag, value", [("--fps", "nan"), ("--duration", "nan"), ("--fps", "inf"),
                                         ("--max-skew-ms", "nan")])
def test_non_finite_numbers_are_refused(flag, value):
    # nan passed every "> 0" check: --duration nan never stopped, --fps nan ran a folder flat out.
    proc = run_tool("pf_stream.cli.stream", *SYN, flag, value, "--print-config")
    assert_user_error(proc, "pf-stream", "finite")


@pytest.mark.parametrize("flag, value", [("--keyframe-interval", "1e9"), ("--bitrate", "100000000000000000")])
def test_encoder_settings_beyond_what_encoders_take_are_refused(flag, value):
    # --keyframe-interval 1e9 ended in "OverflowError: value too large to convert to int".
    proc = run_tool("pf_stream.cli.stream", *SYN, flag, value, "--print-config")
    assert_user_error(proc, "pf-stream", "at most")


def test_eval_sequence_of_non_videos_is_one_line(tmp_path):
    # A text file named ir.mp4 used to add FFmpeg's own "moov atom not found" lines to the error.
    seq = tmp_path / "seqs" / "s1"
    seq.mkdir(parents=True)
    for name in ("ir.mp4", "vi.mp4"):
        (seq / name).write_text("not a video\n")
    proc = run_tool("pf_stream.cli.eval", "--sequence", str(tmp_path / "seqs"), "--method", "max")
    assert_user_error(proc, "pf-eval", "cannot open video", "ir.mp4")


def test_eval_ctrl_c_keeps_the_rows_scored_so_far_in_the_json(tmp_path):
    # Ctrl-C used to lose the whole --json report of a long run.
    rng = np.random.default_rng(0)
    for side in ("ir", "vi"):
        (tmp_path / "data" / side).mkdir(parents=True)
    # Enough rows (~100 bytes each) to overfill a 64 KiB pipe: once the test stops reading, the
    # tool blocks on its output and cannot finish before the Ctrl-C, however loaded the machine.
    total = 1500
    for i in range(total):
        for side in ("ir", "vi"):
            cv2.imwrite(str(tmp_path / "data" / side / f"p{i:04d}.png"), rng.integers(0, 256, (64, 80), np.uint8))
    out = tmp_path / "eval.json"
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pf_stream.cli.eval", "--data", str(tmp_path / "data"),
                             "--method", "max", "--json", str(out)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            # A shell's background job inherits SIGINT ignored, and Python then never
                            # turns it into KeyboardInterrupt: give the tool a terminal's default.
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    rows = 0
    for line in proc.stdout:  # wait for real progress (header + 3 rows), then press Ctrl-C
        rows += line.startswith("p")
        if rows == 3:
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "pf-eval: interrupted"
    assert "(interrupted)" in rest and f"partial report written to {out}" in rest
    report = json.loads(out.read_text())
    assert report["interrupted"] is True
    assert 3 <= report["count"] == len(report["images"]) < total
    ssim = [row["SSIM"] for row in report["images"]]
    assert report["mean"]["SSIM"] == pytest.approx(sum(ssim) / len(ssim))


@pytest.mark.parametrize("argv, words", [
    (["--bogus"], ["unknown option --bogus"]),
    (["--iters", "abc"], ["--iters", "invalid int value"]),
    (["--rtsp", "--bogus"], ["pf-bench --rtsp --help", "unknown option --bogus"]),
    (["--rtsp", "--viewers", "x"], ["--viewers", "invalid int value"]),
    (["--threads", "0"], ["--threads must be >= 1"]),  # was accepted, and -3 too
    (["--rtsp", "--viewers", "0"], ["--viewers must be >= 1"]),  # measured nothing for 10 s, exit 0
    (["--rtsp", "--seconds", "-1"], ["--seconds"]),
])
def test_bench_bad_command_line_is_one_line(argv, words):
    # argparse used to print its usage block (6 lines) before the error.
    assert_user_error(run_tool("pf_stream.cli.bench", *argv), "pf-bench", *words)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc as a place no one can write a file")
@pytest.mark.parametrize("mode", [[], ["--pipeline", "--duration", "1"]])
def test_bench_json_that_cannot_be_written_fails_before_measuring(tmp_path, mode):
    # Used to measure first, then end in a traceback (FileNotFoundError / IsADirectoryError), the result lost.
    base = [*mode, "--model", "classic", "--size", "64x48"]
    proc = run_tool("pf_stream.cli.bench", *base, "--json", "/proc/pf-bench-qa.json")
    assert_user_error(proc, "pf-bench", "cannot write --json")
    assert proc.stdout == ""  # refused before any measurement
    proc = run_tool("pf_stream.cli.bench", *base, "--json", str(tmp_path))
    assert_user_error(proc, "pf-bench", "is a folder")


@pytest.mark.parametrize("argv, words", [
    ([], ["required", "--out"]),  # argparse printed its usage block first
    (["--out", "x.onnx", "--bogus"], ["unknown option --bogus"]),
    (["--out", "{tmp}"], ["--out", "is a folder"]),  # exported, then IsADirectoryError (and a stray {tmp}.tmp)
    (["--out", "{tmp}/x.onnx", "--json", "{tmp}"], ["--json", "is a folder"]),  # traceback after the export
    (["--out", "{tmp}/x.onnx", "--json", "/proc/pf-export-qa.json"], ["choose another --json"]),
])
def test_export_bad_outputs_are_one_line_before_exporting(tmp_path, argv, words):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    proc = run_tool("pf_stream.export.cli", "--model", "classic", "--size", "64x48", *argv)
    assert_user_error(proc, "pf-export", *words)
    assert not any(tmp_path.iterdir()) and not Path(f"{tmp_path}.tmp").exists()  # nothing exported


@pytest.mark.parametrize("setting, wants", [("stage2.lr=abc", "a number"), ("stage2.lr=.nan", "a finite number"),
                                            ("stage2.steps=2.5", "a whole number"), ("data.folders=x", "a list")])
def test_train_set_with_a_wrong_type_is_one_line(tmp_path, setting, wants):
    # --set stage2.lr=abc reached the range check as a string: TypeError traceback.
    proc = run_tool("pf_stream.train.cli", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "run"),
                    "--set", setting)
    assert_user_error(proc, "pf-train", setting.split("=")[0], wants)


@pytest.mark.parametrize("argv, words", [([], ["required", "--out"]), (["--out", "x", "--stepz", "3"], ["--stepz"]),
                                         (["--out", "x", "--steps", "many"], ["--steps", "invalid int"])])
def test_train_bad_command_line_is_one_line(argv, words):
    # argparse printed its usage block (6 lines) before the error.
    assert_user_error(run_tool("pf_stream.train.cli", *argv), "pf-train", *words)


@pytest.mark.parametrize("device, words", [("tpu", ["unknown --device 'tpu'"]), ("cuda:x", ["unknown --device"])])
def test_train_unknown_device_is_one_line(tmp_path, device, words):
    # 'tpu' trained on the CPU without a word.
    proc = run_tool("pf_stream.train.cli", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "r"),
                    "--device", device)
    assert_user_error(proc, "pf-train", *words)
    assert not (tmp_path / "r").exists()


def test_train_cuda_without_a_gpu_is_one_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU: the CPU-only error cannot happen here")
    # A CPU-only torch ended in AttributeError: module 'torch._C' has no attribute '_cuda_setDevice'.
    proc = run_tool("pf_stream.train.cli", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "r"),
                    "--device", "cuda")
    assert_user_error(proc, "pf-train", "--device cuda needs an NVIDIA GPU")


def test_train_does_not_start_over_an_existing_run_without_being_told(tmp_path):
    # Repeating the command after Ctrl-C without --resume trained from scratch over the checkpoint.
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.safetensors").write_bytes(b"hours of training")
    base = ["--config", "configs/train/tiny.yaml", "--out", str(run)]
    assert_user_error(run_tool("pf_stream.train.cli", *base), "pf-train", "--resume", "choose another --out")
    assert (run / "checkpoint.safetensors").read_bytes() == b"hours of training"


@pytest.mark.parametrize("target, words", [("{tmp}", ["is a folder"]), ("/proc/pf-stream-qa.json", ["cannot write"])])
def test_stream_stats_json_that_cannot_be_written_fails_before_the_run(tmp_path, target, words):
    # The run went ahead and only logged "cannot write --stats-json" at its end, exit 0.
    if target.startswith("/proc") and not Path("/proc/self").is_dir():
        pytest.skip("needs Linux /proc as a place no one can write a file")
    proc = run_tool("pf_stream.cli.stream", *SYN, "--stats-json", target.replace("{tmp}", str(tmp_path)))
    assert_user_error(proc, "pf-stream", "--stats-json", *words)


def test_pickle_weights_error_names_a_tool_that_takes_trust_pickle(tmp_path):
    # pf-stream said "pass --trust-pickle", an option only pf-export has.
    import torch

    from pf_stream.model.registry import build_model

    pth = tmp_path / "lite.pth"
    torch.save(build_model("lite").state_dict(), pth)
    line = assert_user_error(run_tool("pf_stream.cli.stream", *SYN, "--model", "lite", "--weights", str(pth)), "pf-stream", "pickle")
    assert "pf-export --trust-pickle" in line
    out = tmp_path / "lite.onnx"
    proc = run_tool("pf_stream.export.cli", "--model", "lite", "--trust-pickle", "--weights", str(pth), "--size", "64x48",
                    "--out", str(out))
    assert proc.returncode == 0 and out.is_file(), proc.stderr  # the way out the message names works


def test_stream_with_a_fixed_size_onnx_of_another_size_is_one_line(tmp_path):
    # ONNX Runtime's INVALID_ARGUMENT for the frame size ended the run in a 29-line traceback.
    onnx = tmp_path / "classic-32x24.onnx"
    proc = run_tool("pf_stream.export.cli", "--model", "classic", "--size", "32x24", "--out", str(onnx))
    assert proc.returncode == 0, proc.stderr
    proc = run_tool("pf_stream.cli.stream", *SYN, "--backend", "onnxruntime", "--weights", str(onnx), "--null", "-q")
    line = assert_user_error(proc, "pf-stream", "exported for 32x24 frames only", "these are 64x48", "--dynamic")
    # the right size still runs
    ok = run_tool("pf_stream.cli.stream", *SYN, "--size", "32x24", "--backend", "onnxruntime", "--weights", str(onnx), "-q")
    assert ok.returncode == 0, ok.stderr + line


def test_stream_rtsp_source_nobody_serves_is_one_line():
    # FFmpeg's own "[tcp @ 0x...] Connection ... failed" line came before ours.
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = run_tool("pf_stream.cli.stream", *SYN[:4], "--frames", "2", "--ir", f"rtsp://127.0.0.1:{port}/x?timeout_s=2")
    assert_user_error(proc, "pf-stream", "cannot connect")


@pytest.mark.parametrize("uri, words", [
    ("synthetic://?fps=abc", ["option fps", "a number > 0"]),  # ValueError traceback
    ("synthetic://?seed=x", ["option seed"]),
    ("synthetic://?fps=-1", ["option fps"]),  # was accepted
    ("rtsp://user:secret@127.0.0.1:9/x?timeout_s=abc", ["option timeout_s", "user:***@"]),
])
def test_stream_bad_numbers_in_a_source_uri_are_one_line(uri, words):
    line = assert_user_error(run_tool("pf_stream.cli.stream", *SYN, "--ir", uri), "pf-stream", *words)
    assert "secret" not in line


def test_bench_pipeline_ctrl_c_reports_what_it_measured(tmp_path):
    # A KeyboardInterrupt used to lose the whole measurement (and its --json).
    import time

    rec, out = tmp_path / "rec.mp4", tmp_path / "bench.json"
    proc = subprocess.Popen([sys.executable, "-m", "pf_stream.cli.bench", "--pipeline", "--model", "classic", "--size",
                             "64x48", "--duration", "300", "--record", str(rec), "--json", str(out)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (rec.exists() and rec.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the recording's first bytes: the pipeline runs, Ctrl-C now stops it
    proc.send_signal(signal.SIGINT)
    stdout, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    report = json.loads(out.read_text())
    assert report["interrupted"] is True and report["frames"] >= 1 and report["duration_s"] < 300
    assert json.loads(stdout) == report
    with __import__("av").open(str(rec)) as container:  # the recording is finished and plays
        assert sum(1 for _ in container.decode(video=0)) >= 1


def test_stream_record_onto_an_input_video_is_refused(tmp_path):
    # --record vi.mp4 with --vis vi.mp4 overwrote the user's video while reading it.
    import av

    video = tmp_path / "vi.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="bgr24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    before = video.read_bytes()
    proc = run_tool("pf_stream.cli.stream", *SYN, "--vis", f"file://{video}", "--record", str(tmp_path / "." / "vi.mp4"))
    assert_user_error(proc, "pf-stream", "--vis video itself", "overwrite")
    assert video.read_bytes() == before


def test_export_out_onto_the_weights_file_is_refused(tmp_path):
    # pf-export --weights w.safetensors --out w.safetensors replaced trained weights with an ONNX file.
    import shutil

    weights = tmp_path / "lite.safetensors"
    shutil.copy(REPO / "pf_stream" / "weights" / "lite.safetensors", weights)
    before = weights.read_bytes()
    proc = run_tool("pf_stream.export.cli", "--model", "lite", "--weights", str(weights), "--size", "64x48",
                    "--out", str(weights))
    assert_user_error(proc, "pf-export", "is the --weights file itself")
    assert weights.read_bytes() == before


@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits to make the disk 'fill up'")
def test_stream_stops_with_an_error_when_its_only_output_fails(tmp_path):
    # A recording that hit a full disk was switched off and the run went on feeding nobody, exit 0.
    import resource

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    rec = tmp_path / "rec.mp4"
    proc = subprocess.run([sys.executable, "-m", "pf_stream.cli.stream", "--ir", "synthetic://", "--vis", "synthetic://",
                           "--size", "320x256", "--model", "classic", "--backend", "torch", "--bitrate", "20000",
                           "--duration", "100", "--record", str(rec), "-q"],
                          cwd=REPO, capture_output=True, text=True, timeout=150, preexec_fn=small_disk)
    assert proc.returncode == 1, proc.stderr
    assert "every output failed (record:" in proc.stderr and "Traceback" not in proc.stderr
    import av

    decoded = 0
    with av.open(str(rec)) as container:  # what was written before still plays, up to the cut
        try:
            for _ in container.decode(video=0):
                decoded += 1
        except av.error.InvalidDataError:
            pass  # the fragment the disk cut short
    assert decoded >= 1


def test_pipeline_says_why_nothing_is_fused_when_max_skew_is_too_small(caplog):
    # --max-skew-ms 0 fused nothing, forever, without a word (only "0.0 fps" in the stats line).
    import logging

    from pf_stream.pipeline import Pipeline
    from tests.test_stream_pipeline import CollectSink, MaxBackend, _config

    cfg = _config("synthetic://?size=64x48&fps=30", "synthetic://?size=64x48&fps=30", duration_s=4.5,
                  pairing__max_skew_ms=0.0)
    with caplog.at_level(logging.WARNING, logger="pf_stream.pipeline"):
        report = Pipeline(cfg, backend=MaxBackend(), sinks=[CollectSink()]).run()
    assert report["fused"] == 0
    assert caplog.text.count("no IR/VIS pair within --max-skew-ms 0 so far") == 1  # said once
    assert "raise --max-skew-ms" in caplog.text


@pytest.mark.parametrize("setting", ["model_config.dir_kernel=4", "model_config.widths=abc", "model_config.widths=[-1]"])
def test_train_bad_model_config_values_are_one_line(tmp_path, setting):
    # The model's own ValueError ("kernel size must be odd") or torch's RuntimeError was a traceback.
    rng = np.random.default_rng(0)
    for side in ("ir", "vi"):
        (tmp_path / "data" / side).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "data" / side / "a.png"), rng.integers(0, 256, (40, 40), np.uint8))
    proc = run_tool("pf_stream.train.cli", "--config", "configs/train/tiny.yaml", "--out", str(tmp_path / "r"),
                    "--data", str(tmp_path / "data"), "--no-progress", "--set", setting)
    assert_user_error(proc, "pf-train", "bad config for model 'lite'")


@pytest.mark.parametrize("module, prog, required", [
    ("pf_stream.cli.stream", "pf-stream", []), ("pf_stream.cli.eval", "pf-eval", ["--data", "d", "--method", "max"]),
    ("pf_stream.cli.bench", "pf-bench", []), ("pf_stream.export.cli", "pf-export", ["--out", "x.onnx"]),
    ("pf_stream.train.cli", "pf-train", ["--out", "run"]), ("pf_stream.calibration.cli", "pf-calibrate", ["--method", "auto"]),
])
def test_every_tool_names_a_mistyped_option_in_one_line(module, prog, required):
    # One parser class serves every tool; four of them used to print argparse's usage block.
    line = assert_user_error(run_tool(module, *required, "--thredas", "2"), prog, "unknown option --thredas", f"see {prog} --help")
    if prog in ("pf-stream", "pf-bench"):  # the tools that have a --threads option
        assert "did you mean '--threads'" in line
