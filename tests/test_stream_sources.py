"""Sources: URI registry, capture threads (latest frame / FIFO), reconnect, and every kind on real data.

There is no camera on these machines, so the camera path (index, device path, Y16,
reconnect) runs against a fake ``cv2.VideoCapture`` injected through ``capture_factory``.
"""

from __future__ import annotations

import socket
import threading
import time

import cv2
import numpy as np
import pytest

from pf_stream.errors import UserError
from pf_stream.sources import EOS, LIVE, open_source
from pf_stream.sources.camera import parse_camera
from pf_stream.sources.folder import FolderSource, check_folders_pair
from pf_stream.sources.gst import APPSINK_TAIL, pipeline_description
from pf_stream.sources.rtsp import _strip_our_query
from pf_stream.sources.base import redact_uri


def _drain(src, n: int, timeout: float = 5.0) -> list:
    frames, deadline = [], time.monotonic() + timeout
    while len(frames) < n and time.monotonic() < deadline:
        f = src.read(timeout=0.2)
        if f is not None:
            frames.append(f)
    return frames


# ----------------------------------------------------------------------------- fake camera


class FakeCapture:
    """Behaves like cv2.VideoCapture on a V4L2 camera; ``fail_after`` frames then 'unplugged'."""

    def __init__(self, width=64, height=48, raw16=False, fail_after=None, opened=True):
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: width, cv2.CAP_PROP_FRAME_HEIGHT: height}
        self.calls = []
        self.raw16, self.fail_after, self.opened = raw16, fail_after, opened
        self.n = 0
        self.released = False

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        self.calls.append((prop, value))
        self.props[prop] = value
        return True

    def get(self, prop):
        return self.props.get(prop, 0)

    def read(self):
        if self.fail_after is not None and self.n >= self.fail_after:
            return False, None
        self.n += 1
        time.sleep(0.005)  # a camera blocks until its next frame
        w, h = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        if self.raw16:
            counts = (np.arange(w * h, dtype=np.uint16).reshape(h, w) + 30000).astype("<u2")
            return True, counts.view(np.uint8).reshape(1, -1)  # what some V4L2 drivers hand OpenCV for Y16
        return True, np.full((h, w, 3), self.n % 256, np.uint8)

    def release(self):
        self.released = True


def test_camera_uris_parse():
    assert parse_camera("cam0") == 0
    assert parse_camera("2") == 2
    assert parse_camera("v4l2://1") == 1
    assert parse_camera("v4l2:///dev/video3") == "/dev/video3"
    assert parse_camera("/dev/video4") == "/dev/video4"


def test_camera_by_index_sets_size_fps_fourcc_before_reading():
    made = []

    def factory(target, api):
        made.append((target, api, FakeCapture()))
        return made[-1][2]

    src = open_source("cam0?size=64x48&fps=25&fourcc=MJPG", role="vis", capture_factory=factory)
    with src:
        frames = _drain(src, 3)
    target, api, cap = made[0]
    assert (target, api) == (0, cv2.CAP_V4L2)
    settings = dict(cap.calls)
    assert settings[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"MJPG")
    assert (settings[cv2.CAP_PROP_FRAME_WIDTH], settings[cv2.CAP_PROP_FRAME_HEIGHT], settings[cv2.CAP_PROP_FPS]) == (64, 48, 25.0)
    assert len(frames) == 3
    assert [f.seq for f in frames] == sorted({f.seq for f in frames})
    assert all(b.timestamp > a.timestamp for a, b in zip(frames, frames[1:]))
    assert frames[0].image.shape == (48, 64, 3) and frames[0].source == "vis"


def test_camera_settings_order_and_device_path():
    caps = []

    def factory(target, api):
        caps.append(FakeCapture())
        assert target == "/dev/video7"
        return caps[-1]

    with open_source("v4l2:///dev/video7", size="64x48", fps=30.0, fourcc="YUYV", capture_factory=factory) as src:
        assert _drain(src, 2)
    props = [p for p, _ in caps[0].calls]
    assert props[:4] == [cv2.CAP_PROP_FOURCC, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT, cv2.CAP_PROP_FPS]
    assert dict(caps[0].calls)[cv2.CAP_PROP_FOURCC] == cv2.VideoWriter_fourcc(*"YUYV")
    assert caps[0].released


def test_camera_y16_keeps_sixteen_bits():
    fake = FakeCapture(width=32, height=16, raw16=True)
    with open_source("cam1", fourcc="Y16", capture_factory=lambda t, a: fake) as src:
        (frame,) = _drain(src, 1)
    assert (cv2.CAP_PROP_CONVERT_RGB, 0) in fake.calls
    assert frame.image.dtype == np.uint16 and frame.image.shape == (16, 32)
    assert frame.image[0, 0] == 30000 and frame.image[15, 31] == 30000 + 32 * 16 - 1


def test_camera_reconnects_after_unplug_and_counts_it():
    caps = [FakeCapture(fail_after=3), FakeCapture()]
    made = []

    def factory(target, api):
        made.append(target)
        if len(made) == 2:  # first reopen attempt: still unplugged
            return FakeCapture(opened=False)
        return caps.pop(0)

    src = open_source("cam0", capture_factory=factory, reconnect_max_s=0.3)
    with src:
        frames = _drain(src, 8, timeout=10)
        assert src.state == LIVE
    assert len(frames) == 8
    assert src.stats.reconnects == 1
    assert len(made) == 3  # first open, one failed reopen, one good reopen
    assert [f.seq for f in frames] == sorted(f.seq for f in frames)


def test_camera_that_cannot_open_is_a_user_error():
    src = open_source("cam3", capture_factory=lambda t, a: FakeCapture(opened=False))
    with pytest.raises(UserError, match="camera 3 cannot be opened|/dev/video3 cannot be opened"):
        src.start()


# ----------------------------------------------------------------------------- synthetic


def test_synthetic_is_deterministic_and_ir_vis_show_the_same_targets():
    a = open_source("synthetic://?size=160x128&seed=3&frames=5", role="ir", realtime=False)
    b = open_source("synthetic://?size=160x128&seed=3&frames=5", role="ir", realtime=False)
    v = open_source("synthetic://?size=160x128&seed=3&frames=5", role="vis", realtime=False)
    with a, b, v:
        fa, fb, fv = _drain(a, 5), _drain(b, 5), _drain(v, 5)
    assert [f.seq for f in fa] == list(range(5))
    for x, y in zip(fa, fb):
        np.testing.assert_array_equal(x.image, y.image)
    assert fa[0].image.shape == (128, 160) and fv[0].image.shape == (128, 160, 3)
    assert not np.array_equal(fa[0].image, fa[4].image)  # it moves
    # Warm targets: the hottest IR pixels sit where the VIS is (slightly) darker than its background.
    ir = fa[2].image.astype(np.float32)
    hot = ir > np.percentile(ir, 99)
    assert hot.any() and ir[hot].mean() > ir.mean() + 60


def test_synthetic_sixteen_bit_is_a_narrow_band():
    with open_source("synthetic://?size=64x64&bits=16&frames=1", role="ir", realtime=False) as src:
        (frame,) = _drain(src, 1)
    img = frame.image
    assert img.dtype == np.uint16 and 28000 <= img.min() and img.max() < 28000 + 256 * 12 + 40


def test_latest_frame_slot_drops_old_frames_and_never_repeats_one():
    with open_source("synthetic://?size=64x48&fps=200", role="ir") as src:
        seen = []
        for _ in range(6):
            time.sleep(0.05)  # a slow consumer
            f = src.read(timeout=1.0)
            seen.append(f.seq)
        assert src.stats.dropped > 0
    assert seen == sorted(set(seen))  # strictly increasing: the same frame is never returned twice
    assert seen[-1] - seen[0] > len(seen)  # and we got the newest ones, not a backlog


def test_fifo_mode_gives_every_frame_in_order_then_eos():
    with open_source("synthetic://?size=64x48&frames=40", role="vis", realtime=False) as src:
        time.sleep(0.1)  # the producer gets ahead: back-pressure, not drops
        frames = _drain(src, 40)
        assert src.read(timeout=0.5) is None
        deadline = time.monotonic() + 2
        while src.state != EOS and time.monotonic() < deadline:
            time.sleep(0.01)
        assert src.eos
    assert [f.seq for f in frames] == list(range(40))
    assert src.stats.dropped == 0


# ----------------------------------------------------------------------------- folders and files


def test_folder_sorts_naturally_keeps_16_bit_and_skips_corrupt_files(tmp_path):
    for i in (1, 2, 10):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((8, 8), 1000 * i, np.uint16))
    (tmp_path / "f3.png").write_bytes(b"not a png at all")
    src = open_source(str(tmp_path), role="ir", realtime=False)
    assert [p.name for p in src.files] == ["f1.png", "f2.png", "f3.png", "f10.png"]
    with src:
        frames = _drain(src, 3)
        assert src.read(timeout=0.3) is None
    assert [int(f.image[0, 0]) for f in frames] == [1000, 2000, 10000]
    assert frames[0].image.dtype == np.uint16
    assert src.stats.errors == 1


def test_folders_that_do_not_pair_say_which_names(tmp_path):
    (tmp_path / "ir").mkdir()
    (tmp_path / "vi").mkdir()
    for name in ("a", "b"):
        cv2.imwrite(str(tmp_path / "ir" / f"{name}.png"), np.zeros((4, 4), np.uint8))
    cv2.imwrite(str(tmp_path / "vi" / "a.png"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(UserError, match=r"do not pair by file name: 1 only in .*ir \(e.g. b\)"):
        check_folders_pair(FolderSource(str(tmp_path / "ir")), FolderSource(str(tmp_path / "vi")))


def write_video(path, frames: int, size=(64, 48), fps=30, gray=False) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            img = np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8)
            img[:, : size[0] // 2, 2] = 200 if not gray else img[:, : size[0] // 2, 2]
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def test_video_file_every_frame_in_fifo_mode_ir_as_gray(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 25)
    with open_source(f"file://{path}", role="ir", realtime=False) as ir, open_source(str(path), role="vis", realtime=False) as vis:
        fi, fv = _drain(ir, 25), _drain(vis, 25)
        assert ir.read(timeout=0.3) is None
    assert len(fi) == len(fv) == 25
    assert fi[0].image.shape == (48, 64) and fv[0].image.shape == (48, 64, 3)
    assert ir.period_s == pytest.approx(1 / 30)


def test_video_realtime_is_paced_at_its_frame_rate(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 12, fps=20)
    with open_source(str(path), role="vis") as src:
        frames = _drain(src, 12, timeout=5)
    gaps = np.diff([f.timestamp for f in frames])
    assert len(frames) >= 10
    assert np.median(gaps) > 0.03  # about 50 ms apart, not as fast as it decodes (not a timing bound: a floor)


def test_truncated_video_is_read_as_far_as_it_goes(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, 30, size=(128, 96))
    # Fragment it away: keep the header and about half of the data.
    data = path.read_bytes()
    broken = tmp_path / "broken.mkv"
    with __import__("av").open(str(path)) as src_c, __import__("av").open(str(broken), "w") as dst:
        s_in = src_c.streams.video[0]
        s_out = dst.add_stream_from_template(s_in)
        for packet in src_c.demux(s_in):
            if packet.dts is None:
                continue
            packet.stream = s_out
            dst.mux(packet)
    raw = broken.read_bytes()
    cut = bytearray(raw[: len(raw) * 2 // 3])
    cut[len(cut) // 2 : len(cut) // 2 + 400] = b"\x00" * 400  # garbage in the middle too
    broken.write_bytes(bytes(cut))
    assert data
    with open_source(str(broken), role="vis", realtime=False) as src:
        frames = _drain(src, 30, timeout=3)
        deadline = time.monotonic() + 3
        while not src.eos and time.monotonic() < deadline:
            src.read(timeout=0.1)
        assert src.eos  # the file ended; the thread did not die on bad data
    assert 3 <= len(frames) < 30


def test_missing_and_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        open_source(str(tmp_path / "nope.mp4"))
    with pytest.raises(UserError, match="not found"):
        open_source(str(tmp_path / "nope"))
    with pytest.raises(UserError, match=r"unknown source scheme 'rstp://' \(did you mean 'rtsp'\?\)"):
        open_source("rstp://host/stream")
    with pytest.raises(UserError, match=r"unknown option 'sed' .*\(did you mean 'seed'\?\)"):
        open_source("synthetic://?sed=1")
    (tmp_path / "fake.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(UserError, match="cannot open .* as a video"):
        open_source(str(tmp_path / "fake.mp4")).start()
    img = tmp_path / "one.png"
    cv2.imwrite(str(img), np.zeros((4, 4), np.uint8))
    with pytest.raises(UserError, match="single image"):
        open_source(str(img))


# ----------------------------------------------------------------------------- network and GStreamer


def test_rtsp_query_and_password_handling():
    assert _strip_our_query("rtsp://h:554/s?channel=1&transport=udp&timeout_s=2") == "rtsp://h:554/s?channel=1"
    assert redact_uri("rtsp://admin:secret@10.0.0.2:554/live") == "rtsp://admin:***@10.0.0.2:554/live"


def test_rtsp_server_that_is_not_there_is_a_user_error():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    src = open_source(f"rtsp://user:pw@127.0.0.1:{port}/live?timeout_s=2", role="vis")
    with pytest.raises(UserError) as err:  # an error, not a wait for a server that never comes
        src.start()
    assert "pw" not in str(err.value) and "cannot connect" in str(err.value)


def test_gst_pipeline_description():
    assert pipeline_description("gst://videotestsrc ! video/x-raw,width=64,height=48") == (
        f"videotestsrc ! video/x-raw,width=64,height=48 ! {APPSINK_TAIL}")
    own = "gst://videotestsrc ! appsink name=mine"
    assert pipeline_description(own) == "videotestsrc ! appsink name=mine"
    with pytest.raises(UserError):
        pipeline_description("gst://")


def test_gst_source_reads_frames_from_a_real_pipeline():
    pytest.importorskip("gi", reason="PyGObject is not installed (pip install 'pf-stream[rtsp]')")
    uri = "gst://videotestsrc is-live=true pattern=ball ! video/x-raw,width=96,height=64,framerate=30/1"
    with open_source(uri, role="vis") as src:
        frames = _drain(src, 5)
    assert len(frames) == 5 and frames[0].image.shape == (64, 96, 3)
    gray16 = "gst://videotestsrc is-live=true ! video/x-raw,format=GRAY16_LE,width=40,height=30,framerate=30/1"
    with open_source(gray16, role="ir") as src:
        (frame,) = _drain(src, 1)
    assert frame.image.dtype == np.uint16 and frame.image.shape == (30, 40)
    own_sink = "gst://videotestsrc is-live=true ! video/x-raw,format=BGR,width=32,height=24 ! appsink name=mine drop=true"
    with open_source(own_sink, role="vis") as src:
        (frame,) = _drain(src, 1)
    assert frame.image.shape == (24, 32, 3)
    with pytest.raises(UserError, match="bad GStreamer pipeline|cannot start"):
        open_source("gst://nosuchelement ! fakesink2", role="vis").start()


def test_stop_ends_the_capture_thread_even_when_the_device_blocks():
    class Slow(FakeCapture):
        def read(self):
            time.sleep(0.3)
            return super().read()

    src = open_source("cam0", role="slowcam", capture_factory=lambda t, a: Slow())
    src.start()
    src.stop(timeout=1.0)
    assert not [t for t in threading.enumerate() if t.name == "capture-slowcam"]


def _live_rtsp_server():
    """A real RTSP server at rtsp://127.0.0.1:PORT/cam fed 96x64 frames at 30 fps by a thread.
    Returns (server, feeding): clear ``feeding`` and close ``server`` when done."""
    pytest.importorskip("gi", reason="PyGObject is not installed: no RTSP server to read from")
    from pf_stream.frames import FusedFrame
    from pf_stream.sinks.rtsp import RtspSink
    from pf_stream.sinks.rtsp_url import parse_rtsp_url

    server = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/cam"))
    server.open(96, 64, 30)
    feeding = threading.Event()
    feeding.set()

    def feed():
        i = 0
        while feeding.is_set():
            server.write(FusedFrame(np.full((64, 96, 3), (i * 8) % 256, np.uint8), time.monotonic(), i))
            i += 1
            time.sleep(1 / 30)

    threading.Thread(target=feed, daemon=True).start()
    return server, feeding


def test_rtsp_source_reads_a_real_server_and_survives_its_death():
    from pf_stream.sources import LOST

    server, feeding = _live_rtsp_server()
    src = open_source(f"rtsp://127.0.0.1:{server.port}/cam?timeout_s=2", role="vis", reconnect_max_s=0.5)
    try:
        with src:
            frames = _drain(src, 10, timeout=20)
            assert len(frames) == 10 and frames[0].image.shape == (64, 96, 3)
            feeding.clear()
            server.close()  # the server dies mid-run
            deadline = time.monotonic() + 15
            while src.state != LOST and time.monotonic() < deadline:
                time.sleep(0.05)
            assert src.state == LOST  # reconnecting, not crashed
            assert src._thread.is_alive()
    finally:
        feeding.clear()
        server.close()


class _PausableProxy:
    """A TCP relay in front of a server whose traffic can be frozen: a network cable pulled
    (the connection stays open, nothing arrives), which a server that closes cannot show."""

    def __init__(self, target_port: int):
        self.paused = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._target = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self._target))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            while data := src.recv(65536):
                while self.paused.is_set():
                    time.sleep(0.05)  # hold the bytes: the link is dead, not closed
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self._listener.close()


def test_rtsp_stream_that_stalls_is_lost_without_a_stale_frame_first():
    """A stream whose link dies silently: OpenCV's read timeout fires, and OpenCV then hands
    back a stale buffered frame as if it were new. That frame used to be fused with the current
    VIS as "signal back", and the loss was noticed only one more timeout later."""
    from pf_stream.sources import LOST

    server, feeding = _live_rtsp_server()
    proxy = _PausableProxy(server.port)
    timeout_s = 3.0
    src = open_source(f"rtsp://127.0.0.1:{proxy.port}/cam?timeout_s={timeout_s:g}", role="ir", reconnect_max_s=0.5)
    try:
        with src:
            assert len(_drain(src, 10, timeout=20)) == 10
            proxy.paused.set()
            paused_at = time.monotonic()
            late = []
            deadline = paused_at + 4 * timeout_s + 10
            while src.state != LOST and time.monotonic() < deadline:
                frame = src.read(timeout=0.1)
                if frame is not None and frame.timestamp > paused_at + timeout_s / 2:
                    late.append(round(frame.timestamp - paused_at, 2))
            assert src.state == LOST, "a stream with a dead link was never declared lost"
            assert late == [], f"frames delivered {late} s after the link died (stale frames passed off as new)"
    finally:
        feeding.clear()
        proxy.paused.clear()
        proxy.close()
        server.close()


def test_rtsp_read_that_ends_in_the_timeout_is_a_loss_not_a_frame(monkeypatch):
    """The same as above, deterministic: OpenCV returns True and a (stale) picture from a read
    that hit its timeout."""
    import pf_stream.sources.rtsp as rtsp

    class StallingCapture(FakeCapture):
        def read(self):
            if self.n >= 3:
                time.sleep(0.25)  # == the read timeout below
            return super().read()

    monkeypatch.setattr(rtsp.cv2, "VideoCapture", lambda *a, **k: StallingCapture())
    src = open_source("rtsp://127.0.0.1:1/cam?timeout_s=0.25", role="ir", reconnect=False)
    with src:
        frames = _drain(src, 10, timeout=3)
        deadline = time.monotonic() + 5
        while src.state != EOS and time.monotonic() < deadline:
            time.sleep(0.02)
    assert src.state == EOS  # lost, and (reconnect off) ended
    assert len(frames) == 2  # read 1 went to open() for the size; read 4 hit the timeout


def test_rtsp_refusals_say_why_wrong_password_wrong_path_nobody_there():
    """All three used to read "cannot connect ... within 5 s (server up? path right?)", even when
    the server answered at once that the password was wrong."""
    pytest.importorskip("gi", reason="PyGObject is not installed: no RTSP server to read from")
    from pf_stream.sinks.rtsp import RtspSink
    from pf_stream.sinks.rtsp_url import parse_rtsp_url

    server = RtspSink(parse_rtsp_url("rtsp://127.0.0.1:0/cam"), user="bob", password="Secret-42")
    server.open(96, 64, 30)
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    cases = {
        f"rtsp://bob:wrong-pw@127.0.0.1:{server.port}/cam": "401",
        f"rtsp://127.0.0.1:{server.port}/cam": "401",
        f"rtsp://bob:Secret-42@127.0.0.1:{server.port}/nothere": "404",
        f"rtsp://127.0.0.1:{free}/cam": "connection refused",
    }
    try:
        for uri, says in cases.items():
            with pytest.raises(UserError) as err:
                open_source(uri + "?timeout_s=4", role="ir").start()
            msg = str(err.value)
            assert says in msg and "within" not in msg, msg
            assert "wrong-pw" not in msg and "Secret-42" not in msg, msg
    finally:
        server.close()


def test_pace_is_the_lower_median_gap_and_restarts_after_a_loss():
    from pf_stream.pace import Pace

    pace = Pace(window=4)
    assert pace.typical_s is None
    for t in (0.0, 2.0, 4.0, 30.0, 32.0):  # one 26 s stall among 2 s gaps
        pace.note(t)
    assert pace.typical_s == 2.0
    pace.restart()  # a reconnect: the gap across it is not counted
    pace.note(100.0)
    pace.note(100.5)
    assert pace.typical_s == 2.0  # gaps now 2, 26, 2, 0.5: lower median 2
