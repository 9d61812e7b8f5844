"""The frame's path, top to bottom: capture -> pair -> normalise -> align -> fuse -> compose -> sinks.

:meth:`Pipeline.run` sets everything up in an order that makes bad input fail early
and cheaply, then loops:

1. outputs are created first (a bad record path or a busy RTSP port fails before any
   camera is touched), then the calibration and the fusion engine (bad weights fail
   before cameras open), then the sources are opened (each reads one frame, which
   gives the frame sizes), then the sinks are opened at the output size, and only then
   do the capture threads start;
2. the loop waits until any source has a new frame, hands new frames to the pairer and
   processes the pair it gives back; a side without signal makes the loop carry on with
   the other side alone (NO SIGNAL on the missing side), so viewers never freeze;
3. on stop (``stop()``, SIGINT/SIGTERM in the CLI, ``--frames``, ``--duration``, end of
   every source) capture threads stop, each sink writes the last frame it was given and
   closes (a recording is finalised), and the stats come back as a dict.

Everything the loop needs can be injected (a Backend object, a list of sinks, a source
factory), which is how tests run the real loop without cameras or trained models.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import cv2
import numpy as np

from pf_stream.align import Aligner
from pf_stream.backends.base import Backend
from pf_stream.config import RunConfig
from pf_stream.frames import Frame, FusedFrame
from pf_stream.model.colour import merge_luma_chroma, split_luma_chroma
from pf_stream.normalise import Normaliser
from pf_stream.pair import SIDES, Pair, Pairer
from pf_stream.sinks.base import Sink
from pf_stream.sinks.fanout import Fanout
from pf_stream.sources import LIVE, Source, open_source, redact_uri
from pf_stream.stats import PipelineStats
from pf_stream.view import compose, draw_overlay, output_size, to_bgr

log = logging.getLogger("pf_stream.pipeline")

# A side is NO SIGNAL after no frame for sources.no_signal_after_s, or for this many of its own
# typical frame intervals if that is longer: a 0.5 fps camera is slow, not lost, and with the
# fixed threshold alone it flipped between NO SIGNAL and "signal back" on every frame.
NO_SIGNAL_INTERVALS = 3.0
# A live source (camera, stream) before its second frame has no measured pace: slow and lost
# look the same.  It gets this long (or no_signal_after_s, if longer) to send that frame, so a
# 0.5 fps thermal core does not show NO SIGNAL once at every start; a lost one still does.
FIRST_INTERVAL_GRACE_S = 10.0


class Pipeline:
    def __init__(self, cfg: RunConfig, *, backend: Backend | None = None, sinks: list[Sink] | None = None,
                 source_factory: Callable[..., Source] = open_source, warp_on_device: bool | None = None):
        self.cfg = cfg
        self.stats = PipelineStats()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by any source when it has a new frame
        self._backend = backend
        self._owns_backend = backend is None
        self._sinks = sinks
        self._source_factory = source_factory
        self._warp_on_device = warp_on_device
        self.sources: dict[str, Source] = {}
        self.fanout: Fanout | None = None
        self.pairer: Pairer | None = None
        self.stop_reason = ""
        self.error: str | None = None  # why the run could not go on (the CLI exits 1 with it)
        self.on_started: Callable[[], None] | None = None  # called once capture runs (the CLI shows its log then)
        self._seq = 0

    def stop(self, reason: str = "stopped") -> None:
        """Ask the run to end (thread-safe, e.g. from a signal handler)."""
        if not self._stop.is_set():
            self.stop_reason = reason
        self._stop.set()
        self._wake.set()
        if self.fanout is not None:
            self.fanout.interrupt()

    # ------------------------------------------------------------------ set-up and tear-down

    def run(self) -> dict:
        """Run until stopped; return the stats (see :meth:`report`)."""
        cfg = self.cfg
        if not cfg.sources.ir or not cfg.sources.vis:
            from pf_stream.errors import UserError

            raise UserError("give both sources: --ir URI --vis URI (e.g. --ir synthetic:// --vis synthetic://)")
        try:
            sinks = self._sinks if self._sinks is not None else _build_sinks(cfg, on_quit=lambda: self.stop("display closed"))
            self.fanout = Fanout(sinks, self.stats)
            self.aligner = Aligner(cfg.align.calib)
            self.normaliser = Normaliser(cfg.normalise)
            self._make_sources()  # cheap checks first: missing files, unknown schemes, folders that do not pair
            if self._backend is None:
                self._backend = _create_backend(cfg)
            ir, vis = self.sources["ir"], self.sources["vis"]
            for src in (ir, vis):
                src.open()  # devices open here and read a first frame: now the sizes are known
            self._pair_by_file_time(ir, vis)
            self.aligner.prepare(ir.frame_size, vis.frame_size)
            self.vis_size = vis.frame_size
            self.out_size = output_size(cfg.view.mode, self.vis_size)
            self.fps = _nominal_fps(ir, vis, cfg.sources.fps)
            self._setup_device_warp()
            self.fanout.open(*self.out_size, self.fps)
            log.info("running: %s + %s -> %s view %dx%d at ~%.0f fps, outputs: %s", ir.uri, vis.uri, cfg.view.mode,
                     *self.out_size, self.fps, ", ".join(s.name for s in sinks))
            for src in self.sources.values():
                src.notify_on_frame(self._wake)
                src.start()
            if self.on_started is not None:
                self.on_started()
            self._loop()
        finally:
            self._teardown()
        return self.report()

    def _make_sources(self) -> None:
        s = self.cfg.sources
        realtime = s.realtime
        for side in SIDES:
            uri = getattr(s, side)
            src = self._source_factory(uri, role=side, fps=s.fps, size=s.size, fourcc=s.fourcc, realtime=realtime,
                                       loop=s.loop, reconnect=s.reconnect, reconnect_max_s=s.reconnect_max_s)
            self.sources[side] = src
        ir, vis = self.sources["ir"], self.sources["vis"]
        if not realtime and (ir.live or vis.live):
            log.warning("--no-realtime applies to files, folders and synthetic sources only: pairing live sources by time")
            for src in (ir, vis):
                src.fifo = False
        from pf_stream.sources.folder import FolderSource, check_folders_pair

        if isinstance(ir, FolderSource) and isinstance(vis, FolderSource):
            check_folders_pair(ir, vis)
        fifo = ir.fifo and vis.fifo
        self.pairer = Pairer(self.cfg.pairing.max_skew_ms / 1000.0, by="sequence" if fifo else "timestamp")
        self.fanout.lossless = fifo  # offline over files: every fused frame reaches every sink

    def _pair_by_file_time(self, ir: Source, vis: Source) -> None:
        """Offline files of different rates are paired by file time, not frame number (frame 90 of a
        9 Hz IR is 10 s in, of a 30 Hz VIS 3 s). Video files know their rate only once opened."""
        if self.pairer.by == "sequence" and ir.period_s and vis.period_s and abs(ir.period_s - vis.period_s) > 1e-3 * vis.period_s:
            self.pairer.periods = {"ir": ir.period_s, "vis": vis.period_s}
            log.info("IR at %.3g fps, VIS at %.3g fps: pairing the frames nearest in file time", 1 / ir.period_s,
                     1 / vis.period_s)

    def _setup_device_warp(self) -> None:
        """On the GPU, warp + colour + fuse run on the device in one go (GpuFrameFuser), when the
        backend takes tensors (``fuse_tensor``: torch, tensorrt)."""
        use = self._warp_on_device
        if use is None:
            use = getattr(self._backend, "device", "cpu") != "cpu" and hasattr(self._backend, "fuse_tensor")
        self._device_warp = None
        if use:
            from pf_stream.backends.gpu_ops import GpuFrameFuser

            self._device_warp = GpuFrameFuser(self._backend, self.aligner.device_homography())
            log.info("aligning and colouring on %s with the fusion", self._device_warp.device)

    def _teardown(self) -> None:
        for src in self.sources.values():
            src._stop.set()  # all at once, then join each: stopping takes one timeout, not two
        for src in self.sources.values():
            src.stop(timeout=0.5)
        if self.fanout is not None:
            self.fanout.close(timeout=1.2)
        if self._owns_backend and self._backend is not None:
            self._backend.close()

    # ------------------------------------------------------------------ the loop

    def _loop(self) -> None:
        cfg = self.cfg
        fifo = self.pairer.by == "sequence"
        down = {side: False for side in SIDES}
        started = time.monotonic()
        next_log = started + cfg.stats.log_interval_s if cfg.stats.log_interval_s > 0 else float("inf")
        next_card = started
        headless = not any(s.name == "display" for s in self.fanout.sinks)
        warned_skew = False
        while not self._stop.is_set():
            if cfg.frames is not None and self.stats.outputs >= cfg.frames:
                self.stop(f"{cfg.frames} frames done")
                break
            if cfg.duration_s is not None and time.monotonic() - started >= cfg.duration_s:
                self.stop(f"{cfg.duration_s:g} s done")
                break

            # 1. take what the sources have (FIFO: one frame per side per pair, nothing skipped)
            self._wake.wait(0.05)
            self._wake.clear()
            now = time.monotonic()
            for side, src in self.sources.items():
                if fifo and self.pairer.holds(side):
                    continue
                frame = src.read(timeout=0)
                if frame is not None:
                    self.pairer.offer(side, frame, now)

            # 2. which sides have signal
            for side, src in self.sources.items():
                limit = _no_signal_after(src, cfg.sources.no_signal_after_s)
                stale = not src.fifo and now - src.last_frame_at > limit
                is_down = (src.state != LIVE or stale) and not self.pairer.holds(side)
                if is_down != down[side]:
                    down[side] = is_down
                    if is_down:
                        why = {"lost": "lost, reconnecting", "eos": "ended"}.get(src.state, f"no frame for {limit:.3g} s")
                        log.warning("%s: NO SIGNAL (%s); the output goes on without it", side, why)
                    else:
                        log.warning("%s: signal back", side)

            # 3. fuse a pair, or go on with one side, or keep the picture alive
            pair = self.pairer.pop()
            if pair is not None:
                self._emit(self._process_pair(pair), "fused")
            elif down["ir"] != down["vis"]:
                live = "vis" if down["ir"] else "ir"
                frame = self.pairer.take_single(live)
                if frame is not None:
                    self._emit(self._process_single(live, frame), "single")
            elif down["ir"] and down["vis"] and now >= next_card:
                next_card = now + 1.0 / self.fps
                card = compose(cfg.view.mode, None, None, None, self.vis_size, cfg.view.labels)
                self._emit(FusedFrame(card, now, 0), "blank")

            if self._should_end():
                break
            if not warned_skew and self.stats.outputs == 0 and now - started > 3.0 and not any(down.values()):
                warned_skew = self._warn_if_never_paired()
            if headless and now >= next_log:
                next_log = now + cfg.stats.log_interval_s
                log.info("%s", self._log_line())

    def _warn_if_never_paired(self) -> bool:
        """Both sides deliver but no pair was ever close enough in time: say why once (the only
        other sign was "0.0 fps ... dropped pairing N" in the stats line)."""
        skew = self.pairer.last_rejected_skew_s
        if skew is None:
            return False
        log.warning("no IR/VIS pair within --max-skew-ms %g so far: the two sources' frames were last %.0f ms apart; "
                    "raise --max-skew-ms above that", self.cfg.pairing.max_skew_ms, skew * 1000.0)
        return True

    def _should_end(self) -> bool:
        if self.fanout.all_failed:  # a full disk under the only output: fusing on would feed nobody, forever
            self.stop("every output failed")
            return True
        srcs = list(self.sources.values())
        lost = [side for side, s in self.sources.items() if s.live and s.eos]
        if lost:  # a camera/stream lost with --no-reconnect: NO SIGNAL forever would hide it from a supervisor
            self.error = f"{lost[0]} source {redact_uri(self.sources[lost[0]].uri)} was lost and --no-reconnect is set"
            self.stop(f"{lost[0]} source lost (--no-reconnect)")
            return True
        if self.cfg.sources.exit_on_eos and any(s.eos for s in srcs):
            self.stop("a source ended (--exit-on-eos)")
            return True
        if all(s.eos for s in srcs) and not any(self.pairer.holds(side) for side in SIDES):
            self.stop("every source ended")
            return True
        return self._stop.is_set()

    def _emit(self, frame: FusedFrame, kind: str) -> None:
        frame.seq = self._seq
        self._seq += 1
        if self.cfg.view.overlay:
            if not frame.image.flags.writeable:
                frame.image = frame.image.copy()
            draw_overlay(frame.image, self.stats.overlay_lines())
        self.stats.output(kind)
        self.fanout.put(frame)

    # ------------------------------------------------------------------ one picture

    def _process_pair(self, pair: Pair) -> FusedFrame:
        st = self.stats
        st.pair(pair.skew_s, pair.capture_wait_s, time.monotonic() - pair.picked_at)

        t0 = time.monotonic()
        ir8 = self.normaliser(pair.ir.image)  # 16-bit / low-contrast IR -> 8-bit gray
        vis_bgr = self._vis_bgr(pair.vis.image)
        mode = self.cfg.view.mode
        if self._device_warp is None:
            vis_y, chroma = split_luma_chroma(vis_bgr)  # the model fuses luminance; colour comes back later
            t1 = time.monotonic()
            ir_aligned = self.aligner(ir8)  # into the VIS pixel grid
            t2 = time.monotonic()
            fused_y = self._backend.fuse(ir_aligned.astype(np.float32) * np.float32(1 / 255.0), vis_y)
            t3 = time.monotonic()
            fused_bgr = merge_luma_chroma(fused_y, chroma)  # fused Y + VIS colour
        else:
            t1 = time.monotonic()
            self._check_device_sizes(ir8)
            ir_aligned = self.aligner(ir8) if mode != "fused" else None  # only the views show the aligned IR
            t2 = time.monotonic()
            fused_bgr = self._device_warp(ir8, vis_bgr)  # warp, colour and fusion on the device
            t3 = time.monotonic()
        st.stage("normalise", t1 - t0)
        st.stage("align", t2 - t1)
        st.stage("fuse", t3 - t2)
        image = compose(mode, fused_bgr, ir_aligned, vis_bgr, self.vis_size, self.cfg.view.labels)
        st.stage("compose", time.monotonic() - t3)
        return FusedFrame(image=image, timestamp=min(pair.ir.timestamp, pair.vis.timestamp), seq=0,
                          media_time=self._media_time("vis", pair.vis))

    def _media_time(self, side: str, frame: Frame) -> float | None:
        """Offline (FIFO) runs: where the frame sits in its file, so a recording plays at the files'
        rate, not at the speed fusion happened to run."""
        period = self.sources[side].period_s
        return frame.seq * period if self.pairer.by == "sequence" and period else None

    def _check_device_sizes(self, ir8: np.ndarray) -> None:
        """A camera that came back at another size: re-derive the homography the device warps with."""
        size = (ir8.shape[1], ir8.shape[0])
        if size != self.aligner.ir_size:
            self.aligner.prepare(size, self.vis_size)
            self._device_warp.homography = self.aligner.device_homography()
            self._device_warp._grid = None

    def _process_single(self, side: str, frame: Frame) -> FusedFrame:
        """One side while the other has NO SIGNAL: show what there is."""
        ir8 = vis_bgr = None
        if side == "ir":
            ir8 = self.aligner(self.normaliser(frame.image))
        else:
            vis_bgr = self._vis_bgr(frame.image)
        image = compose(self.cfg.view.mode, None, ir8, vis_bgr, self.vis_size, self.cfg.view.labels)
        return FusedFrame(image=image, timestamp=frame.timestamp, seq=0, media_time=self._media_time(side, frame))

    def _vis_bgr(self, image: np.ndarray) -> np.ndarray:
        bgr = to_bgr(image)
        if (bgr.shape[1], bgr.shape[0]) != self.vis_size:  # a camera that came back at another size
            bgr = cv2.resize(bgr, self.vis_size, interpolation=cv2.INTER_AREA)
        return bgr

    # ------------------------------------------------------------------ reporting

    def _counts(self) -> tuple[dict, int, dict]:
        sources = {side: src.stats.as_dict() for side, src in self.sources.items()}
        sinks = self.fanout.as_dict() if self.fanout is not None else {}
        return sources, (self.pairer.dropped if self.pairer else 0), sinks

    def _log_line(self) -> str:
        sources, pair_dropped, sinks = self._counts()
        return self.stats.log_line(pair_dropped, sum(s["dropped"] for s in sources.values()),
                                   sum(s["dropped"] for s in sinks.values()))

    def report(self) -> dict:
        sources, pair_dropped, sinks = self._counts()
        snap = self.stats.snapshot(sources, pair_dropped, sinks)
        snap["stop_reason"] = self.stop_reason
        snap["config"] = {
            "ir": self.cfg.sources.ir, "vis": self.cfg.sources.vis, "model": self.cfg.fusion.model,
            "backend": getattr(self._backend, "name", None), "device": getattr(self._backend, "device", None),
            "view": self.cfg.view.mode, "output_size": list(getattr(self, "out_size", ()) or ()) or None,
        }
        return snap


def _build_sinks(cfg: RunConfig, on_quit) -> list[Sink]:
    from pf_stream.sinks.factory import build_sinks

    return build_sinks(cfg.outputs, on_quit=on_quit)


def _create_backend(cfg: RunConfig) -> Backend:
    from pf_stream.backends import create_backend

    f = cfg.fusion
    # Graphs are the torch backend's (auto picks torch on cuda); elsewhere the option is moot.
    # A torch-tensorrt program (.ep) runs TensorRT's own runtime: never captured (not tried on a GPU).
    graphs = (f.cuda_graphs and f.device == "cuda" and f.backend in ("auto", "torch")
              and not str(f.weights or "").endswith(".ep"))
    return create_backend(f.model, f.backend, f.device, f.precision, f.weights, f.threads, cuda_graphs=graphs)


def _nominal_fps(ir: Source, vis: Source, configured: float | None) -> float:
    """The rate sinks are told to expect: the sources' own rate when they have one."""
    for src in (vis, ir):
        if src.period_s:
            return 1.0 / src.period_s
    return configured or 30.0


def _no_signal_after(src: Source, floor_s: float) -> float:
    """Seconds without a frame after which ``src`` counts as NO SIGNAL (see NO_SIGNAL_INTERVALS)."""
    typical = src.typical_interval_s
    if typical is None:  # a live source before its second frame
        return max(floor_s, FIRST_INTERVAL_GRACE_S)
    return max(floor_s, NO_SIGNAL_INTERVALS * typical)
