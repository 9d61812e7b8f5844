"""``pf-stream --ir SRC --vis SRC [options]``: fuse two live streams and send the result out.

Settings come from the defaults, then ``--config FILE.yaml``, then the flags below, then
``--set section.key=value`` (any key of configs/pipeline.yaml).  ``--print-config``
shows the result.  SIGINT (Ctrl-C) and SIGTERM stop the run cleanly: capture stops,
each output writes what it was given and closes (a recording stays playable); a second
Ctrl-C quits at once.  Exit codes: 0 done, 2 bad input (one line, no traceback),
130 stopped by Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from pf_stream.config import RunConfig, load_config, parse_set, to_yaml
from pf_stream.errors import EXIT_INTERRUPTED, ArgumentParser, UserError, check_writable, cli_entry

log = logging.getLogger("pf_stream")

# (flags, config key, argparse options): each flag overrides exactly one config key.
FLAGS: list[tuple[tuple[str, ...], str, dict]] = [
    (("--ir",), "sources.ir", dict(metavar="URI", help="infrared source: cam0, v4l2:///dev/video0, file.mp4, folder/, rtsp://..., gst://..., synthetic://")),
    (("--vis",), "sources.vis", dict(metavar="URI", help="visible source (same kinds)")),
    (("--fps",), "sources.fps", dict(type=float, help="folders/synthetic: play rate; cameras: requested rate")),
    (("--size",), "sources.size", dict(metavar="WxH", help="size requested from cameras and synthetic sources")),
    (("--fourcc",), "sources.fourcc", dict(help="camera pixel format, e.g. MJPG, YUYV, Y16 (16-bit thermal)")),
    (("--realtime",), "sources.realtime", dict(action=argparse.BooleanOptionalAction,
                                               help="--no-realtime: fuse every frame of files/folders, paired by index (by file time when the rates differ)")),
    (("--loop",), "sources.loop", dict(action="store_true", help="replay files and folders forever")),
    (("--exit-on-eos",), "sources.exit_on_eos", dict(action="store_true", help="stop when any source ends")),
    (("--reconnect",), "sources.reconnect", dict(action=argparse.BooleanOptionalAction, help="reopen lost cameras/streams")),
    (("--max-skew-ms",), "pairing.max_skew_ms", dict(type=float, help="largest IR/VIS capture time difference fused (default 20)")),
    (("--normalise",), "normalise.mode", dict(choices=["auto", "always", "off"], help="IR AGC (default auto)")),
    (("--clahe",), "normalise.clahe", dict(action="store_true", help="local contrast (CLAHE) on the IR")),
    (("--calib",), "align.calib", dict(metavar="YAML", help="IR->VIS calibration from pf-calibrate (default: resize only)")),
    (("--model",), "fusion.model", dict(help="classic | lite | full (default lite)")),
    (("--backend",), "fusion.backend", dict(help="auto | torch | onnxruntime | tensorrt")),
    (("--device",), "fusion.device", dict(help="cpu | cuda")),
    (("--precision",), "fusion.precision", dict(help="fp32 | fp16 | bf16 (GPU)")),
    (("--weights",), "fusion.weights", dict(metavar="FILE", help="model weights (.safetensors, or .onnx)")),
    (("--threads",), "fusion.threads", dict(type=int, help="CPU threads for the fusion backend")),
    (("--view",), "view.mode", dict(help="fused | side-by-side | quad")),
    (("--overlay",), "view.overlay", dict(action="store_true", help="draw live stats on the picture")),
    (("--display",), "outputs.display", dict(action="store_true", help="show a window (off, with a warning, when headless)")),
    (("--record",), "outputs.record", dict(metavar="FILE.mp4", help="record H.264 MP4")),
    (("--null",), "outputs.null_sink", dict(action="store_true", help="discard the output (benchmarks)")),
    (("--rtsp",), "outputs.rtsp", dict(metavar="rtsp://HOST:PORT/PATH", help="serve the output over RTSP")),
    (("--rtsp-user",), "outputs.rtsp_user", dict(metavar="USER", help="RTSP user (password from $PF_STREAM_RTSP_PASSWORD)")),
    (("--encoder",), "outputs.encoder", dict(help="auto | nvv4l2 | nvenc | x264 | openh264")),
    (("--bitrate",), "outputs.bitrate_kbps", dict(type=int, metavar="KBPS", help="H.264 bit rate (default 4000)")),
    (("--keyframe-interval",), "outputs.keyframe_interval_s", dict(type=float, metavar="S", help="seconds between key frames")),
    (("--stats-json",), "stats.json", dict(metavar="FILE", help="write the final stats as JSON")),
    (("--stats-interval",), "stats.log_interval_s", dict(type=float, metavar="S", help="periodic stats line when headless (0 = off)")),
    (("--frames",), "frames", dict(type=int, metavar="N", help="stop after N output frames")),
    (("--duration",), "duration_s", dict(type=float, metavar="S", help="stop after S seconds")),
]


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="pf-stream", description="Real-time infrared + visible video fusion.",
                epilog="Example: pf-stream --ir synthetic:// --vis synthetic:// --frames 300 --record out/demo.mp4",
                allow_abbrev=False)
    p.add_argument("--config", metavar="YAML", help="run config (default: built-in defaults = configs/pipeline.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override any config key, e.g. --set normalise.clahe_clip=3")
    p.add_argument("--print-config", action="store_true", help="print the effective config as YAML and exit")
    p.add_argument("-v", "--verbose", action="store_true", help="debug log")
    p.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    for flags, key, options in FLAGS:
        if "action" not in options and "metavar" not in options and "choices" not in options:
            options = {**options, "metavar": key.rsplit(".", 1)[-1].upper()}  # FPS, not SOURCES.FPS
        p.add_argument(*flags, dest=key, default=argparse.SUPPRESS, **options)
    return p


def config_from_args(args: argparse.Namespace) -> RunConfig:
    overrides = {key: getattr(args, key) for _, key, _ in FLAGS if hasattr(args, key)}
    for item in args.set:
        key, value = parse_set(item)
        overrides[key] = value
    return load_config(args.config, overrides)


class _HeldLog(logging.Handler):
    """Holds set-up log lines until the run starts: bad input then prints only its one error line."""

    def __init__(self, target: logging.Handler):
        super().__init__()
        self.target = target
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def let_through(self, root: logging.Logger) -> None:
        root.removeHandler(self)
        root.addHandler(self.target)
        for record in self.records:
            if record.levelno >= self.target.level:
                self.target.handle(record)
        self.records.clear()


def _setup_logging(verbose: bool, quiet: bool) -> tuple[logging.Logger, _HeldLog]:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)-7s %(message)s", datefmt="%H:%M:%S"))
    handler.setLevel(level)
    root = logging.getLogger()
    root.setLevel(level)
    held = _HeldLog(handler)
    root.addHandler(held)
    try:  # OpenCV's own C++ warnings (e.g. about capture back-ends) would clutter the log
        import cv2

        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    except AttributeError:
        pass
    return root, held


def _write_json(path: str, data: dict) -> None:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(target)
    except OSError as exc:
        log.error("cannot write --stats-json %s: %s", path, exc.strerror)


def _check_record_is_not_an_input(cfg: RunConfig) -> None:
    """--record naming the IR or VIS video itself would overwrite it while it is being read."""
    record = cfg.outputs.record
    if not record or not Path(record).is_file():
        return
    from pf_stream.sources import resolve

    for side in ("ir", "vis"):
        uri = getattr(cfg.sources, side)
        try:
            kind, target, _query = resolve(uri) if uri else ("", "", "")
        except UserError:
            continue  # a bad source is reported later, where sources are opened
        if kind == "video" and Path(target).expanduser().is_file() and os.path.samefile(Path(target).expanduser(), record):
            raise UserError(f"--record {record} is the --{side} video itself: recording would overwrite it; "
                            "choose another file")


def _summary(report: dict) -> str:
    lat = report.get("latency_ms") or {}
    # elapsed_s covers start-up and stop too; fps is the output rate from the first frame to the last.
    return (f"{report['frames']} frames in {report['elapsed_s']:.1f} s ({report['fps']:.1f} fps once running)"
            f"; glass-to-glass p50 {lat.get('p50', 0):.0f} ms p95 {lat.get('p95', 0):.0f} ms"
            f"; dropped {report['dropped']} ({', '.join(f'{k} {v}' for k, v in report['dropped_by'].items())})"
            f"; {report['stop_reason']}")


@cli_entry("pf-stream")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    cfg = config_from_args(args)
    if args.print_config:
        sys.stdout.write(to_yaml(cfg))
        return 0
    if cfg.stats.json:
        check_writable(cfg.stats.json, "--stats-json")
    _check_record_is_not_an_input(cfg)
    root, held = _setup_logging(args.verbose, args.quiet)

    from pf_stream.pipeline import Pipeline

    pipeline = Pipeline(cfg)
    pipeline.on_started = lambda: held.let_through(root)
    got = {"signal": None}

    def on_signal(signum, _frame):
        if got["signal"] is not None:  # a second Ctrl-C: stop waiting for a clean stop
            raise KeyboardInterrupt
        got["signal"] = signum
        pipeline.stop(f"stopped by {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        report = pipeline.run()
    except UserError:
        if held in root.handlers:  # bad input: its one error line says it all; drop the set-up log
            held.records.clear()
            root.removeHandler(held)
        raise
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if held in root.handlers:
            held.let_through(root)  # the run failed in an unexpected way: show what led to it
    if cfg.stats.json:
        _write_json(cfg.stats.json, report)
    log.info("%s", _summary(report))
    if report.get("stop_reason") == "every output failed":
        failed = "; ".join(f"{name}: {s['failed']}" for name, s in report.get("sinks", {}).items() if s.get("failed"))
        print(f"pf-stream: error: every output failed ({failed}); what was written before is kept", file=sys.stderr)
        return 1
    if pipeline.error:  # e.g. a camera lost under --no-reconnect: a supervisor restarting on failure sees it
        print(f"pf-stream: error: {pipeline.error}; the outputs are finalised up to the last frame", file=sys.stderr)
        return 1
    return EXIT_INTERRUPTED if got["signal"] == signal.SIGINT else 0


if __name__ == "__main__":
    main()
