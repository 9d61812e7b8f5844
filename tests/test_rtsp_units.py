"""RTSP pieces that need no viewer: the address parser, the pipeline text, encoder choice, bad input."""

from __future__ import annotations

import socket

import pytest

from pf_stream.errors import UserError
from pf_stream.sinks.gst_encoders import (
    AUTO_ORDER,
    ENCODERS,
    EncoderSettings,
    encoder_chain,
    media_launch,
    raw_caps,
)
from pf_stream.sinks.rtsp_url import DEFAULT_PORT, parse_rtsp_url


# ---- address ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, host, port, path",
    [
        ("rtsp://@:8554/fused", "0.0.0.0", 8554, "/fused"),  # jetson-utils: all interfaces
        ("rtsp://:9000/a/b", "127.0.0.1", 9000, "/a/b"),  # no host: loopback only
        ("rtsp://127.0.0.1:0/fused", "127.0.0.1", 0, "/fused"),  # 0: any free port
        ("rtsp://192.168.1.20/cam", "192.168.1.20", DEFAULT_PORT, "/cam"),
        ("RTSP://localhost:8554/out/", "localhost", 8554, "/out"),
        ("rtsp://[::1]:8554/v", "::1", 8554, "/v"),
        ("rtsp://@/fused", "0.0.0.0", DEFAULT_PORT, "/fused"),
    ],
)
def test_parse_good_urls(text, host, port, path):
    addr = parse_rtsp_url(text)
    assert (addr.bind_host, addr.port, addr.path) == (host, port, path)


def test_client_url_of_wildcard_bind_uses_loopback():
    addr = parse_rtsp_url("rtsp://@:8554/fused")
    assert addr.all_interfaces
    assert addr.client_url(41000) == "rtsp://127.0.0.1:41000/fused"
    assert parse_rtsp_url("rtsp://[::1]:1/v").client_url() == "rtsp://[::1]:1/v"


@pytest.mark.parametrize(
    "text, says",
    [
        ("http://127.0.0.1:8554/fused", "must start with rtsp://"),
        ("rtsp://127.0.0.1:8554", "needs a path"),
        ("rtsp://127.0.0.1:8554/", "needs a path"),
        ("rtsp://127.0.0.1:99999/fused", "0..65535"),
        ("rtsp://127.0.0.1:port/fused", "malformed RTSP port"),
        ("rtsp://bad_host!:8554/fused", "malformed RTSP host"),
        ("rtsp://@10.0.0.1:8554/fused", "drop the host"),
        ("rtsp://127.0.0.1:8554/fu sed", "malformed RTSP path"),
        ("rtsp://127.0.0.1:8554/fused?x=1", "no query"),
    ],
)
def test_parse_bad_urls(text, says):
    with pytest.raises(UserError, match=says):
        parse_rtsp_url(text)


def test_credentials_in_url_are_refused_without_echoing_the_password():
    with pytest.raises(UserError) as info:
        parse_rtsp_url("rtsp://admin:hunter2@127.0.0.1:8554/fused")
    message = str(info.value)
    assert "hunter2" not in message
    assert "--rtsp-user" in message and "PF_STREAM_RTSP_PASSWORD" in message


# ---- pipeline text ---------------------------------------------------------------------


def test_settings_from_seconds():
    assert EncoderSettings.from_seconds(2500, 1.0, 30).keyframe_interval_frames == 30
    assert EncoderSettings.from_seconds(2500, 2.0, 25).keyframe_interval_frames == 50
    assert EncoderSettings.from_seconds(2500, 0.01, 30).keyframe_interval_frames == 1
    with pytest.raises(UserError, match="--bitrate"):
        EncoderSettings.from_seconds(0, 1.0, 30)
    with pytest.raises(UserError, match="--keyframe-interval"):
        EncoderSettings.from_seconds(1000, 0, 30)


def test_x264_chain_is_low_latency_with_one_idr_per_interval():
    chain = encoder_chain("x264", EncoderSettings(3000, 30))
    for part in ("x264enc", "tune=zerolatency", "speed-preset=ultrafast", "bitrate=3000", "key-int-max=30", "bframes=0"):
        assert part in chain.split() or part in chain


@pytest.mark.parametrize(
    "key, expect",
    [
        ("nvv4l2", ["nvvidconv", "memory:NVMM", "nvv4l2h264enc", "bitrate=3000000", "iframeinterval=30",
                    "idrinterval=30", "insert-sps-pps=true"]),
        ("nvenc", ["nvh264enc", "bitrate=3000", "gop-size=30", "bframes=0", "zerolatency=true"]),
        ("openh264", ["openh264enc", "bitrate=3000000", "gop-size=30", "rate-control=bitrate"]),
    ],
)
def test_hardware_and_openh264_chains(key, expect):
    # Units differ per element (kbit/s vs bit/s): this is where mistakes hide.
    chain = encoder_chain(key, EncoderSettings(3000, 30))
    for part in expect:
        assert part in chain, (part, chain)


def test_media_launch_has_non_blocking_appsrc_and_safe_payloader():
    text = media_launch("x264", EncoderSettings(4000, 30), 640, 512, 30)
    assert text.startswith("( ") and text.endswith(" )")
    for part in ("appsrc name=src", "is-live=true", "format=time", "block=false", "max-bytes=0",
                 "max-buffers=2", "leaky-type=downstream", "format=I420,width=640,height=512,framerate=30/1",
                 "rtph264pay name=pay0", "config-interval=1"):
        assert part in text, part
    assert "config-interval=-1" not in text  # corrupts key frames when x264 uses slices


def test_raw_caps_keeps_ntsc_rates_exact():
    assert raw_caps(8, 8, 29.97).endswith("framerate=30000/1001")
    assert raw_caps(8, 8, 25).endswith("framerate=25/1")


def test_auto_order_prefers_hardware():
    assert AUTO_ORDER == ("nvv4l2", "nvenc", "x264", "openh264")
    assert [ENCODERS[k].element for k in AUTO_ORDER] == ["nvv4l2h264enc", "nvh264enc", "x264enc", "openh264enc"]


# ---- with GStreamer: every pipeline text parses, encoders are probed by encoding --------


@pytest.fixture(scope="module")
def gst():
    from pf_stream.sinks.gst_encoders import load_gstreamer

    return load_gstreamer()


@pytest.mark.parametrize("key", ["x264", "openh264"])
def test_cpu_encoders_really_encode(gst, key):
    from pf_stream.sinks.gst_encoders import try_encoder

    assert try_encoder(gst, key) is None


def test_auto_picks_a_working_encoder_and_says_when_it_falls_back(gst, caplog):
    from pf_stream.sinks.gst_encoders import select_encoder, try_encoder

    spec = select_encoder(gst, "auto")
    assert try_encoder(gst, spec.key) is None
    if spec.key != "nvv4l2":  # skipped a hardware encoder: the user is told
        assert any("falling back to " + spec.element in r.getMessage() for r in caplog.records)


def test_explicit_missing_encoder_is_an_error_with_a_hint(gst):
    from pf_stream.sinks.gst_encoders import select_encoder, try_encoder

    missing = [k for k in ("nvv4l2", "nvenc") if try_encoder(gst, k) is not None]
    if not missing:
        pytest.skip("both hardware encoders work on this machine: nothing missing to test")
    with pytest.raises(UserError, match="not usable here") as info:
        select_encoder(gst, missing[0])
    assert ENCODERS[missing[0]].install in str(info.value)
    with pytest.raises(UserError, match="did you mean"):
        select_encoder(gst, "x265")


def test_taken_port_fails_at_construction(gst):
    from pf_stream.sinks.rtsp import RtspSink

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot serve RTSP on 127.0.0.1:{port}.*another port"):
            RtspSink(parse_rtsp_url(f"rtsp://127.0.0.1:{port}/fused"), encoder="x264")


def test_no_signal_waits_three_frame_periods_of_a_slow_stream(gst):
    """Viewers saw NO SIGNAL between every two frames of a slow feed.  The delay is now at least
    3 periods of the declared output rate (0.25 fps: 12 s), or of the pace frames are really
    written at (a live camera declared at 30 fps that delivers one frame every 1.2 s: 3.6 s)."""
    import time

    import numpy as np

    from pf_stream.frames import FusedFrame
    from pf_stream.sinks.rtsp import RtspSink

    for fps, after in ((0.25, 12.0), (30.0, 3.0)):
        sink = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/fused"), encoder="x264")
        try:
            sink.open(64, 48, fps)
            assert sink.no_signal_after_s == pytest.approx(after)
        finally:
            sink.close()
    sink = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/fused"), encoder="x264")
    try:
        sink.open(64, 48, 30.0)  # a live feed: declared 30 fps, really one frame every 1.2 s or more
        frame = FusedFrame(image=np.zeros((48, 64, 3), np.uint8), timestamp=0.0, seq=0)
        for i in range(4):
            if i:
                time.sleep(1.2)
            sink.write(frame)
        assert sink.no_signal_after_s >= 3.5  # 3 x its pace (a sleep never runs short), not the 3 s floor
    finally:
        sink.close()


def test_user_without_password_is_refused(monkeypatch):
    from pf_stream.sinks.rtsp import RtspSink

    with pytest.raises(UserError, match="PF_STREAM_RTSP_PASSWORD"):
        RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/fused"), user="viewer", password=None)


def test_frames_are_fitted_to_the_stream_size():
    import numpy as np

    from pf_stream.sinks.rtsp import _caption, _fit

    odd = np.full((257, 321, 3), 50, np.uint8)
    padded = _fit(odd, 322, 258)  # odd sizes: one replicated pixel, not a resize
    assert padded.shape == (258, 322, 3) and (padded[:257, :321] == odd).all() and (padded[-1] == 50).all()
    assert _fit(np.zeros((100, 80), np.uint8), 160, 200).shape == (200, 160, 3)  # gray, other size
    card = _caption(np.zeros((256, 320, 3), np.uint8), "NO SIGNAL")
    assert card.max() == 255 and card.mean() < 30  # white text on the picture, original untouched


def test_stamps_are_a_period_apart_skip_a_fast_feed_and_restart_when_running_time_goes_back():
    from pf_stream.sinks.rtsp import MAX_LEAD_PERIODS, _Stamper

    period = 33_333_334
    stamper = _Stamper(period)
    assert stamper.stamp(0) == 0
    assert stamper.stamp(10) == period  # a frame right after: one period later, not in the same slot
    # A feed faster than the output rate: stamps run ahead of the running time, then frames are skipped.
    stamps = [stamper.stamp(20 + i) for i in range(MAX_LEAD_PERIODS + 2)]
    assert stamps[:MAX_LEAD_PERIODS - 1] == [period * (k + 2) for k in range(MAX_LEAD_PERIODS - 1)]
    assert stamps[-1] is None
    # The running time jumps back (a pipeline paused and played again): stamping restarts there
    # instead of skipping every frame until the running time catches up with the old stamps.
    late = _Stamper(period)
    assert late.stamp(22_845_151_027_300) == 22_845_151_027_300
    assert late.stamp(45_849_987) == 45_849_987 and late.stamp(45_849_987 + period) == 45_849_987 + period


def test_running_time_is_zero_until_the_pipeline_has_a_base_time():
    """Seen under load (CI): a frame pushed while the pipeline was going to PLAYING had the clock
    but not yet the base time, was stamped with the machine's uptime, and viewers got no picture."""
    from pf_stream.sinks.rtsp import _running_time

    class Clock:
        def get_time(self):
            return 22_845_151_027_300

    class AppSrc:
        def __init__(self, clock, base):
            self.clock, self.base = clock, base

        def get_clock(self):
            return self.clock

        def get_base_time(self):
            return self.base

    assert _running_time(AppSrc(None, 0)) == 0
    assert _running_time(AppSrc(Clock(), 0)) == 0  # clock handed over, base time not yet
    assert _running_time(AppSrc(Clock(), 22_845_146_355_508)) == 4_671_792
