"""The frame's path: pairing, AGC, alignment, views, and the real loop end to end.

The loop runs for real (capture threads, pairer, fan-out threads) on synthetic, folder and
video sources.  Fusion goes through a stand-in backend (pixel-wise max) where the test
is about the pipeline, and through the real ONNX Runtime 'classic' model on real clips.
"""

from __future__ import annotations

import logging
import threading
import time

import cv2
import numpy as np
import pytest

from pf_stream.align import Aligner
from pf_stream.backends.base import Backend
from pf_stream.calibration.schema import Calibration, save_calibration
from pf_stream.config import NormaliseConfig, RunConfig
from pf_stream.frames import Frame, FusedFrame
from pf_stream.normalise import Normaliser
from pf_stream.pair import Pairer
from pf_stream.pipeline import Pipeline
from pf_stream.sinks.base import Sink
from pf_stream.sources import open_source
from pf_stream.view import compose, output_size

from tests.test_stream_sources import FakeCapture, write_video


class MaxBackend(Backend):
    """Stand-in fusion: the brighter of the two pixels (exact and cheap)."""

    name = "stub-max"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def fuse(self, ir, vis):
        assert ir.dtype == np.float32 and vis.dtype == np.float32 and ir.shape == vis.shape
        self.calls += 1
        return np.maximum(ir, vis)

    def fuse_tensor(self, ir, vis):
        import torch

        self.calls += 1
        return torch.maximum(ir, vis.to(ir.dtype))

    def close(self):
        self.closed = True


class CollectSink(Sink):
    def __init__(self, name="collect", delay=0.0):
        self.name, self.delay = name, delay
        self.frames: list[FusedFrame] = []
        self.opened_with = None
        self.closed = False

    def open(self, width, height, fps):
        self.opened_with = (width, height, fps)

    def write(self, frame):
        if self.delay:
            time.sleep(self.delay)
        self.frames.append(frame)

    def close(self):
        self.closed = True


def _config(ir, vis, **kw) -> RunConfig:
    cfg = RunConfig()
    cfg.sources.ir, cfg.sources.vis = ir, vis
    cfg.stats.log_interval_s = 0
    for dotted, value in kw.items():
        section, _, key = dotted.partition("__")
        if key:
            setattr(getattr(cfg, section), key, value)
        else:
            setattr(cfg, section, value)
    return cfg


def _frame(t, seq, side="ir"):
    return Frame(np.zeros((2, 2), np.uint8), t, seq, side)


# ----------------------------------------------------------------------------- pairing


def test_pairer_pairs_within_skew_and_drops_the_older_frame():
    p = Pairer(max_skew_s=0.020)
    p.offer("ir", _frame(1.000, 0), now=1.001)
    p.offer("vis", _frame(1.025, 0, "vis"), now=1.026)
    assert p.pop() is None and p.dropped == 1  # IR@1.000 can only get further from future VIS: dropped
    p.offer("ir", _frame(1.033, 1), now=1.034)
    pair = p.pop()
    assert pair is not None and pair.ir.seq == 1 and pair.skew_s == pytest.approx(-0.008)
    assert not p.holds("ir") and not p.holds("vis")
    p.offer("vis", _frame(1.060, 1, "vis"), now=1.06)
    p.offer("vis", _frame(1.090, 2, "vis"), now=1.09)  # a newer VIS before any IR: replaces, counted
    assert p.dropped == 2
    p.offer("ir", _frame(1.095, 2), now=1.1)
    assert p.pop().vis.seq == 2


def test_pairer_by_sequence_for_replayed_files():
    p = Pairer(by="sequence")
    p.offer("ir", _frame(5.0, 3), now=5.0)
    p.offer("vis", _frame(0.0, 2, "vis"), now=5.0)
    assert p.pop() is None  # timestamps are irrelevant; seq 2 < 3 is dropped
    p.offer("vis", _frame(9.0, 3, "vis"), now=9.0)
    assert p.pop().ir.seq == 3


# ----------------------------------------------------------------------------- normalisation


def test_agc_stretches_sixteen_bit_thermal_to_the_full_range():
    rng = np.random.default_rng(0)
    raw = (29000 + rng.integers(0, 2000, (120, 160))).astype(np.uint16)
    out = Normaliser(NormaliseConfig(smoothing=0.0))(raw)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    assert np.percentile(out, 1) <= 3 and np.percentile(out, 99) >= 252
    # Order is kept: a hotter pixel is never darker.
    flat_raw, flat_out = raw.ravel(), out.ravel()
    order = np.argsort(flat_raw, kind="stable")
    assert np.all(np.diff(flat_out[order].astype(int)) >= 0)


def test_auto_mode_leaves_well_exposed_ir_alone_and_stretches_flat_ir():
    well = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    np.testing.assert_array_equal(Normaliser()(well), well)
    flat = (100 + np.tile(np.arange(40, dtype=np.uint8), (64, 1)))
    out = Normaliser()(flat)
    assert out.max() - out.min() > 200
    off = Normaliser(NormaliseConfig(mode="off"))(np.full((4, 4), 0xABCD, np.uint16))
    assert off[0, 0] == 0xAB


def test_agc_bounds_are_smoothed_over_time_and_clahe_applies():
    before = np.full((32, 32), 30000, np.uint16)
    before[:16] = 31000
    after = before.copy()
    after[:4, :4] = 60000  # a hot object enters the scene
    smooth, instant = Normaliser(NormaliseConfig(smoothing=0.8)), Normaliser(NormaliseConfig(smoothing=0.0))
    smooth(before), instant(before)
    first_smooth, first_instant = smooth(after), instant(after)
    assert first_smooth[10, 10] > first_instant[10, 10] + 20  # the picture dims gradually, no jump
    for _ in range(60):
        settled = smooth(after)
    assert abs(int(settled[10, 10]) - int(first_instant[10, 10])) <= 2  # and settles where it should
    clahe = Normaliser(NormaliseConfig(clahe=True))(np.tile(np.arange(64, dtype=np.uint8), (64, 1)) + 100)
    assert clahe.dtype == np.uint8 and clahe.shape == (64, 64)


# ----------------------------------------------------------------------------- alignment


def _calib(tmp_path, h, ir_size=(160, 120), vis_size=(160, 120)):
    path = tmp_path / "calib.yaml"
    save_calibration(Calibration(homography=np.asarray(h, np.float64), ir_size=ir_size, vis_size=vis_size), path)
    return str(path)


def test_homography_warp_moves_the_ir_into_the_vis_frame(tmp_path):
    ir = np.zeros((120, 160), np.uint8)
    ir[40:60, 50:70] = 255
    aligner = Aligner(_calib(tmp_path, [[1, 0, 10], [0, 1, -5], [0, 0, 1]]))
    aligner.prepare((160, 120), (160, 120))
    out = aligner(ir)
    ys, xs = np.nonzero(out > 128)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (35, 54, 60, 79)


def test_calibration_is_rescaled_with_a_warning(tmp_path, caplog):
    aligner = Aligner(_calib(tmp_path, [[1, 0, 10], [0, 1, 0], [0, 0, 1]]))
    with caplog.at_level(logging.WARNING, logger="pf_stream.align"):
        aligner.prepare((320, 240), (320, 240))
    assert "rescaling the homography" in caplog.text
    assert aligner.homography[0, 2] == pytest.approx(20.0)


def test_without_calibration_ir_is_resized_to_vis():
    aligner = Aligner(None)
    aligner.prepare((80, 60), (160, 120))
    assert aligner(np.zeros((60, 80), np.uint8)).shape == (120, 160)
    aligner.prepare((160, 120), (160, 120))
    img = np.zeros((120, 160), np.uint8)
    assert aligner(img) is img  # same size: no copy, no cost


def test_device_homography_reproduces_the_cpu_resize():
    from pf_stream.backends.gpu_ops import warp_perspective
    import torch

    rng = np.random.default_rng(1)
    ir = cv2.GaussianBlur(rng.integers(0, 255, (60, 80), dtype=np.uint8), (0, 0), 2)
    aligner = Aligner(None)
    aligner.prepare((80, 60), (200, 150))
    ref = aligner(ir).astype(np.float32)
    got = warp_perspective(torch.from_numpy(ir).float()[None, None], aligner.device_homography(), (200, 150))[0, 0].numpy()
    assert np.abs(got[3:-3, 3:-3] - ref[3:-3, 3:-3]).mean() < 1.0
    aligner.prepare((200, 150), (200, 150))
    assert aligner.device_homography() is None


# ----------------------------------------------------------------------------- views


def test_view_layouts_and_no_signal_cards():
    w, h = 64, 48
    fused = np.full((h, w, 3), 200, np.uint8)
    vis = np.full((h, w, 3), 100, np.uint8)
    ir = np.full((h, w), 50, np.uint8)
    for mode in ("fused", "side-by-side", "quad"):
        out = compose(mode, fused, ir, vis, (w, h))
        assert out.shape[1::-1] == output_size(mode, (w, h))
        blank = compose(mode, None, None, None, (w, h))
        assert blank.shape == out.shape
    one_side = compose("fused", None, None, vis, (w, h))  # IR lost: VIS passes with a banner
    assert one_side.shape == (h, w, 3) and (one_side[40:, :] == 100).all() and not (one_side[:30] == 100).all()
    sbs = compose("side-by-side", fused, None, vis, (w, h), labels=False)
    np.testing.assert_array_equal(sbs[:, w : 2 * w], vis)
    np.testing.assert_array_equal(sbs[:, 2 * w :], fused)
    assert not (sbs[:, :w] == 100).all()  # the IR panel is a NO SIGNAL card


# ----------------------------------------------------------------------------- the loop


def test_synthetic_realtime_end_to_end():
    sink = CollectSink()
    backend = MaxBackend()
    cfg = _config("synthetic://?size=160x128&fps=60", "synthetic://?size=160x128&fps=60", frames=30)
    report = Pipeline(cfg, backend=backend, sinks=[sink]).run()
    assert report["frames"] == report["fused"] == 30
    assert sink.opened_with == (160, 128, 60.0) and sink.closed
    # Live hand-off: a sink thread the OS did not schedule in time skips a frame (counted), never repeats one.
    written = report["sinks"]["collect"]
    assert written["written"] == len(sink.frames) and written["written"] + written["dropped"] == 30
    seqs = [f.seq for f in sink.frames]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 29
    assert all(f.image.shape == (128, 160, 3) and f.image.dtype == np.uint8 for f in sink.frames)
    assert report["skew_ms"]["max"] <= 20.0
    assert report["latency_ms"]["p50"] > 0 and set(report["stages_ms"]) >= {"capture", "pair", "align", "fuse", "output"}
    assert report["stop_reason"] == "30 frames done"
    assert not backend.closed  # an injected backend belongs to the caller


def test_every_folder_pair_is_fused_once_in_order_without_realtime(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    for i in range(12):
        cv2.imwrite(str(tmp_path / "ir" / f"{i:04d}.png"), np.full((24, 32), 10 * i + 5, np.uint8))
        cv2.imwrite(str(tmp_path / "vi" / f"{i:04d}.png"), np.full((24, 32, 3), 60, np.uint8))
    sink = CollectSink()
    cfg = _config(str(tmp_path / "ir"), str(tmp_path / "vi"), sources__realtime=False, normalise__mode="off")
    report = Pipeline(cfg, backend=MaxBackend(), sinks=[sink]).run()
    assert report["fused"] == 12 and report["stop_reason"] == "every source ended"
    got = [int(f.image[5, 5, 1]) for f in sink.frames]
    assert got == [max(10 * i + 5, 60) for i in range(12)]  # frame i fused with frame i, none skipped
    assert report["dropped"] == 0


def test_video_files_end_to_end_realtime(tmp_path):
    write_video(tmp_path / "ir.mp4", 20, size=(64, 48), fps=30, gray=True)
    write_video(tmp_path / "vi.mp4", 20, size=(96, 72), fps=30)
    sink = CollectSink()
    cfg = _config(str(tmp_path / "ir.mp4"), str(tmp_path / "vi.mp4"), view__mode="side-by-side")
    report = Pipeline(cfg, backend=MaxBackend(), sinks=[sink]).run()
    assert report["stop_reason"] == "every source ended"
    assert report["fused"] >= 10  # realtime: paced, late frames may be dropped, but the files are fused
    assert sink.frames[0].image.shape == (72, 3 * 96, 3)  # IR resized into the VIS frame, 3 panels


def test_lost_camera_gives_no_signal_while_the_output_keeps_flowing(caplog):
    made = []

    def factory(target, api):
        made.append(target)
        return FakeCapture(width=64, height=48, fail_after=10) if len(made) == 1 else FakeCapture(opened=False)

    def sources(uri, **kw):
        if uri == "cam0":
            return open_source(uri, capture_factory=factory, **kw)
        return open_source(uri, **kw)

    sink = CollectSink()
    cfg = _config("cam0", "synthetic://?size=64x48&fps=30", duration_s=2.5, sources__reconnect_max_s=0.3)
    with caplog.at_level(logging.WARNING):
        report = Pipeline(cfg, backend=MaxBackend(), sinks=[sink], source_factory=sources).run()
    assert report["fused"] > 0 and report["single_side"] > 20  # VIS alone kept going at ~30 fps
    assert len(made) >= 3  # reopen attempts with backoff
    assert caplog.text.count("ir: NO SIGNAL") == 1  # said once
    last = sink.frames[-1].image
    assert not (last[:30] == last[40:].mean()).all()  # the NO SIGNAL banner is on the picture


def test_lost_camera_without_reconnect_ends_the_run_with_an_error():
    """--no-reconnect: a lost camera used to leave the run going forever on the other side alone,
    so a supervisor waiting for the process to fail never restarted it."""

    def sources(uri, **kw):
        if uri == "cam0":
            return open_source(uri, capture_factory=lambda t, a: FakeCapture(width=64, height=48, fail_after=10), **kw)
        return open_source(uri, **kw)

    sink = CollectSink()
    cfg = _config("cam0", "synthetic://?size=64x48&fps=30", duration_s=30.0, sources__reconnect=False)
    pipeline = Pipeline(cfg, backend=MaxBackend(), sinks=[sink], source_factory=sources)
    report = pipeline.run()
    assert report["stop_reason"] == "ir source lost (--no-reconnect)", report["stop_reason"]
    assert pipeline.error and "--no-reconnect" in pipeline.error
    assert report["fused"] > 0 and sink.closed


def test_a_slow_sink_drops_frames_but_never_slows_the_others():
    fast, slow = CollectSink("fast"), CollectSink("slow", delay=0.25)
    cfg = _config("synthetic://?size=64x48&fps=60", "synthetic://?size=64x48&fps=60", duration_s=1.5)
    pipeline = Pipeline(cfg, backend=MaxBackend(), sinks=[fast, slow])
    report = pipeline.run()
    sinks = report["sinks"]
    assert report["frames"] > 45  # fusion kept going at the source rate (60 fps x 1.5 s, with slack for a busy machine)
    assert sinks["fast"]["written"] >= 0.9 * report["frames"]  # (almost) every frame reached the fast sink
    assert sinks["slow"]["dropped"] > 0 and sinks["slow"]["written"] < report["frames"] / 3
    assert slow.frames[-1].seq == fast.frames[-1].seq  # and the slow one still got the very last frame on close


def test_exit_on_eos_and_one_side_ending_without_it():
    cfg = _config("synthetic://?size=64x48&fps=60&frames=10", "synthetic://?size=64x48&fps=60", sources__exit_on_eos=True)
    report = Pipeline(cfg, backend=MaxBackend(), sinks=[CollectSink()]).run()
    assert "exit-on-eos" in report["stop_reason"] and report["fused"] <= 10
    cfg = _config("synthetic://?size=64x48&fps=60&frames=10", "synthetic://?size=64x48&fps=60", duration_s=1.0)
    report = Pipeline(cfg, backend=MaxBackend(), sinks=[CollectSink()]).run()
    assert report["stop_reason"] == "1 s done" and report["single_side"] > 10


def test_overlay_draws_stats_on_the_picture():
    pictures = []
    for overlay in (False, True):
        sink = CollectSink()
        cfg = _config("synthetic://?size=160x128&frames=4", "synthetic://?size=160x128&frames=4", sources__realtime=False,
                      view__overlay=overlay)
        Pipeline(cfg, backend=MaxBackend(), sinks=[sink]).run()
        pictures.append(sink.frames[-1].image.astype(int))
    diff = np.abs(pictures[0] - pictures[1]).sum(axis=2) > 0
    assert diff[-40:, :100].any() and not diff[:60].any()  # text in the bottom-left corner only


def test_stop_from_another_thread_ends_the_run():
    cfg = _config("synthetic://?size=64x48", "synthetic://?size=64x48")
    pipeline = Pipeline(cfg, backend=MaxBackend(), sinks=[CollectSink()])
    threading.Timer(0.5, pipeline.stop, args=("test stop",)).start()
    reports = []
    runner = threading.Thread(target=lambda: reports.append(pipeline.run()), daemon=True)
    runner.start()
    runner.join(60)  # a guard against a run that never ends, not a speed check
    assert not runner.is_alive(), "stop() from another thread did not end the run"
    assert reports[0]["stop_reason"] == "test stop"
    assert not [t for t in threading.enumerate() if t.name.startswith(("capture-", "sink-"))]


def test_device_warp_path_gives_the_same_picture(tmp_path):
    calib = _calib(tmp_path, [[1, 0, 4], [0, 1, 2], [0, 0, 1]], ir_size=(64, 48), vis_size=(64, 48))
    pictures = []
    for on_device in (False, True):
        sink = CollectSink()
        cfg = _config("synthetic://?size=64x48&frames=5&seed=2", "synthetic://?size=64x48&frames=5&seed=2",
                      sources__realtime=False, align__calib=calib, view__mode="quad")
        Pipeline(cfg, backend=MaxBackend(), sinks=[sink], warp_on_device=on_device).run()
        pictures.append(np.stack([f.image for f in sink.frames]).astype(int))
    assert pictures[0].shape == pictures[1].shape == (5, 48, 64, 3)
    assert np.abs(pictures[0] - pictures[1]).mean() < 2.0


def test_real_clip_folders_with_the_classic_model(shared_data):
    clip = shared_data / "sequences" / "m3svd_clips" / "0111_1716"
    sink = CollectSink()
    cfg = _config(str(clip / "ir"), str(clip / "vi"), sources__realtime=False)
    cfg.fusion.model = "classic"
    report = Pipeline(cfg, sinks=[sink]).run()
    assert report["fused"] == 20 and report["config"]["backend"] == "onnxruntime"
    vis0 = cv2.imread(str(clip / "vi" / "0000.png"))
    out0 = sink.frames[0].image
    assert out0.shape == vis0.shape
    # Colour comes from the VIS camera: hue is kept where the picture is saturated.
    hsv_out, hsv_vis = cv2.cvtColor(out0, cv2.COLOR_BGR2HSV), cv2.cvtColor(vis0, cv2.COLOR_BGR2HSV)
    sat = hsv_vis[:, :, 1] > 80
    if sat.sum() > 500:
        assert np.median(np.abs(hsv_out[:, :, 0][sat].astype(int) - hsv_vis[:, :, 0][sat])) < 10


def test_real_video_pair_realtime(shared_data):
    seq = shared_data / "sequences" / "m3svd_videos" / "0111_1716"
    sink = CollectSink()
    cfg = _config(str(seq / "ir.mp4"), str(seq / "vi.mp4"), frames=30)
    report = Pipeline(cfg, backend=MaxBackend(), sinks=[sink]).run()
    assert report["fused"] == 30 and report["skew_ms"]["max"] <= 20.0
    assert sink.frames[0].image.shape == (480, 640, 3)


def test_pipeline_bench_reports_the_promised_fields(tmp_path):
    from pf_stream.bench.pipeline_bench import run_pipeline_bench

    out = tmp_path / "bench.json"
    result = run_pipeline_bench(["--model", "classic", "--size", "160x128", "--duration", "1.5", "--warmup", "1",
                                 "--ir-bits", "16", "--rss-every", "0.5", "--json", str(out)])
    assert result["fps"] > 0 and result["frames"] > 0
    assert set(result["latency_ms"]) == {"p50", "p95", "p99"} and result["latency_ms"]["p50"] > 0
    assert {"capture", "pair", "normalise", "align", "fuse", "compose", "output"} <= set(result["stages_ms"])
    assert isinstance(result["dropped"], int) and result["cpu_percent"] > 0
    assert result["rss_mb"]["samples"] >= 1
    import json

    assert json.loads(out.read_text())["frames"] == result["frames"]


def test_offline_recording_plays_at_the_files_rate_not_at_the_fusion_speed(tmp_path):
    """--no-realtime --record: the recording was timed by when each frame happened to be fused, so
    a model slower than the files played back in slow motion (a 5.0 s clip became 6.5 s with lite
    on 2 CPU cores)."""
    import av

    from pf_stream.sinks.record import RecordSink

    write_video(tmp_path / "ir.mp4", 12, size=(64, 48), fps=20, gray=True)
    write_video(tmp_path / "vi.mp4", 12, size=(64, 48), fps=20)

    class SlowBackend(MaxBackend):
        def fuse(self, ir, vis):
            time.sleep(0.1)  # 10 fps of fusion for 20 fps files
            return super().fuse(ir, vis)

    out = tmp_path / "offline.mp4"
    cfg = _config(str(tmp_path / "ir.mp4"), str(tmp_path / "vi.mp4"), sources__realtime=False)
    report = Pipeline(cfg, backend=SlowBackend(), sinks=[RecordSink(out)]).run()
    assert report["fused"] == 12
    with av.open(str(out)) as container:
        times = [float(f.pts * f.time_base) for f in container.decode(video=0)]
    assert len(times) == 12
    assert times[-1] - times[0] == pytest.approx(11 / 20, abs=0.002)  # the files' 0.55 s, not ~1.1 s


def test_offline_files_of_different_rates_are_paired_by_file_time(tmp_path):
    """--no-realtime paired frame i with frame i: with a 10 fps IR and a 20 fps VIS, the IR of
    second 0.9 was fused with the VIS of second 0.45 (and half the VIS went out without IR)."""
    write_video(tmp_path / "ir.mp4", 10, size=(64, 48), fps=10, gray=True)
    write_video(tmp_path / "vi.mp4", 20, size=(64, 48), fps=20)
    sink = CollectSink()
    cfg = _config(str(tmp_path / "ir.mp4"), str(tmp_path / "vi.mp4"), sources__realtime=False)
    pipeline = Pipeline(cfg, backend=MaxBackend(), sinks=[sink])
    report = pipeline.run()
    assert report["fused"] == 10
    fused_at = [round(f.media_time, 3) for f in sink.frames[:10]]
    assert fused_at == [round(0.1 * i, 3) for i in range(10)]  # each IR frame with the VIS of the same instant
    p = Pairer(by="sequence", periods={"ir": 0.1, "vis": 0.05})
    p.offer("ir", _frame(0.0, 3), now=0.0)  # 0.30 s
    p.offer("vis", _frame(0.0, 5, "vis"), now=0.0)  # 0.25 s: too early, dropped
    assert p.pop() is None and not p.holds("vis")
    p.offer("vis", _frame(0.0, 6, "vis"), now=0.0)  # 0.30 s
    assert p.pop().vis.seq == 6
