"""The one typed run configuration of pf-stream: defaults < YAML file < command line.

Every setting lives in one nested dataclass (:class:`RunConfig`), so the code that uses
it reads ``cfg.fusion.model`` instead of digging in an untyped dictionary.  The same
loader checks a YAML file and ``--set section.key=value`` overrides: an unknown key or
section is a one-line error with a "did you mean" hint, a value of the wrong type says
which type it wanted.  ``configs/pipeline.yaml`` is the documented default; a test keeps
it equal to the defaults below.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pf_stream.errors import UserError, did_you_mean, read_yaml

ViewMode = Literal["fused", "side-by-side", "quad"]
NormaliseMode = Literal["auto", "always", "off"]
BackendName = Literal["auto", "torch", "onnxruntime", "tensorrt"]
DeviceName = Literal["cpu", "cuda"]
PrecisionName = Literal["fp32", "fp16", "bf16"]
EncoderName = Literal["auto", "nvv4l2", "nvenc", "x264", "openh264"]


@dataclass
class SourcesConfig:
    ir: str | None = None  # URI of the infrared source (see docs/STREAMING.md)
    vis: str | None = None  # URI of the visible source
    fps: float | None = None  # folders/synthetic: play rate; cameras: requested rate; files: override native rate
    size: str | None = None  # WxH requested from cameras and synthetic sources (None = their own)
    fourcc: str | None = None  # camera pixel format, e.g. MJPG, YUYV, Y16 (16-bit thermal)
    realtime: bool = True  # False: files/folders/synthetic give every frame (FIFO), paired by index or file time
    loop: bool = False  # files/folders start again at their end
    exit_on_eos: bool = False  # stop the run when any source ends (default: NO SIGNAL for that side)
    reconnect: bool = True  # reopen a lost camera/stream with backoff
    reconnect_max_s: float = 5.0  # longest wait between two reopen attempts
    no_signal_after_s: float = 1.0  # a side with no frame for this long (or 3 of its own frame intervals, if longer) shows NO SIGNAL


@dataclass
class PairingConfig:
    max_skew_ms: float = 20.0  # IR and VIS frames further apart in capture time are not fused together


@dataclass
class NormaliseConfig:
    mode: NormaliseMode = "auto"  # auto: stretch 16-bit and low-contrast IR only; always; off
    low_percentile: float = 1.0  # AGC: this percentile of the IR histogram maps to black
    high_percentile: float = 99.0  # ... and this one to white
    min_contrast: int = 96  # auto: 8-bit IR whose percentile spread is below this is stretched
    smoothing: float = 0.8  # AGC bounds follow the scene with this EMA factor (0 = none; avoids flicker)
    clahe: bool = False  # local contrast (CLAHE) after AGC
    clahe_clip: float = 2.0  # CLAHE clip limit
    clahe_tiles: int = 8  # CLAHE grid: tiles x tiles


@dataclass
class AlignConfig:
    calib: str | None = None  # calibration YAML from pf-calibrate; None = resize IR to the VIS size


@dataclass
class FusionConfig:
    model: str = "lite"  # classic | lite | full
    backend: BackendName = "auto"  # auto = torch on cuda, onnxruntime on cpu
    device: DeviceName = "cpu"
    precision: PrecisionName = "fp32"  # fp16/bf16 on the GPU only
    weights: str | None = None  # weights file (.safetensors, or .onnx for onnxruntime); None = shipped
    threads: int | None = None  # CPU threads for the backend; None = its default
    cuda_graphs: bool = True  # torch on cuda: replay the model as a CUDA graph (lite fp32 2.6-3.7 -> 0.80 ms on an H100)


@dataclass
class ViewConfig:
    mode: ViewMode = "fused"  # fused | side-by-side (IR | VIS | fused) | quad (2x2 with an alignment check)
    overlay: bool = False  # draw live stats on the output picture
    labels: bool = True  # name the panels in side-by-side and quad views


@dataclass
class OutputConfig:
    display: bool = False  # OpenCV window (turned off with a warning when there is no display)
    record: str | None = None  # H.264 MP4 file to record to
    null_sink: bool = False  # --null: discard frames (benchmarks); chosen anyway when no other output is
    rtsp: str | None = None  # serve the output at rtsp://HOST:PORT/PATH
    rtsp_user: str | None = None  # RTSP user name; the password comes from $PF_STREAM_RTSP_PASSWORD
    encoder: EncoderName = "auto"  # H.264 encoder for RTSP (and recording when it applies)
    bitrate_kbps: int = 4000  # H.264 target bit rate
    keyframe_interval_s: float = 1.0  # seconds between key frames (late RTSP viewers wait for one)


@dataclass
class StatsConfig:
    log_interval_s: float = 5.0  # periodic stats line when headless (0 = never)
    json: str | None = None  # write the final stats here at exit


@dataclass
class RunConfig:
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    pairing: PairingConfig = field(default_factory=PairingConfig)
    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    view: ViewConfig = field(default_factory=ViewConfig)
    outputs: OutputConfig = field(default_factory=OutputConfig)
    stats: StatsConfig = field(default_factory=StatsConfig)
    frames: int | None = None  # stop after this many output frames
    duration_s: float | None = None  # stop after this many seconds


# --------------------------------------------------------------------------- loading


def load_config(yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the YAML file (if any), then ``{"section.key": value}`` overrides."""
    cfg = RunConfig()
    if yaml_path is not None:
        path = Path(yaml_path)
        data = read_yaml(path, "config file", "check the path and syntax, or start from configs/pipeline.yaml")
        if data is not None and not isinstance(data, dict):
            raise UserError(f"{path}: expected sections like 'fusion:' at the top level, got {type(data).__name__}")
        _merge(cfg, data or {}, where=str(path))
    for dotted, value in (overrides or {}).items():
        apply_override(cfg, dotted, value)
    validate(cfg)
    return cfg


def apply_override(cfg: RunConfig, dotted: str, value: Any) -> None:
    """Set one ``section.key`` (or top-level ``key``) from the command line."""
    obj: Any = cfg
    parts = dotted.split(".")
    for i, name in enumerate(parts):
        names = [f.name for f in dataclasses.fields(obj)]
        if name not in names:
            prefix = ".".join(parts[:i])
            known = [f"{prefix}.{n}" if prefix else n for n in names]
            raise UserError(f"unknown setting {dotted!r}{did_you_mean('.'.join(parts[: i + 1]), known)}")
        if i == len(parts) - 1:
            hint = _hints(type(obj))[name]
            if dataclasses.is_dataclass(hint):
                raise UserError(f"{dotted!r} is a section; set one of its keys, e.g. {dotted}.{dataclasses.fields(hint)[0].name}=...")
            setattr(obj, name, coerce_value(value, hint, dotted))
        else:
            obj = getattr(obj, name)
            if not dataclasses.is_dataclass(obj):
                raise UserError(f"{'.'.join(parts[: i + 1])!r} is a single value, not a section")


def parse_set(text: str) -> tuple[str, Any]:
    """``'fusion.threads=2'`` -> ``('fusion.threads', 2)`` (the value is read as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise UserError(f"--set wants KEY=VALUE, e.g. --set fusion.threads=2 (got {text!r})")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: RunConfig) -> str:
    """The effective configuration, loadable again with ``--config``."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False)


def validate(cfg: RunConfig) -> None:
    """Checks that need more than a type: ranges and combinations."""
    n, s, p = cfg.normalise, cfg.sources, cfg.pairing
    if not 0.0 <= n.low_percentile < n.high_percentile <= 100.0:
        raise UserError("normalise: need 0 <= low_percentile < high_percentile <= 100")
    if not 0.0 <= n.smoothing < 1.0:
        raise UserError("normalise.smoothing must be in [0, 1)")
    if n.clahe_tiles < 1 or n.clahe_clip <= 0:
        raise UserError("normalise: clahe_tiles must be >= 1 and clahe_clip > 0")
    if p.max_skew_ms < 0:
        raise UserError("pairing.max_skew_ms must be >= 0")
    if s.fps is not None and s.fps <= 0:
        raise UserError("sources.fps must be > 0")
    if s.reconnect_max_s <= 0 or s.no_signal_after_s <= 0:
        raise UserError("sources.reconnect_max_s and sources.no_signal_after_s must be > 0")
    if cfg.frames is not None and cfg.frames < 1:
        raise UserError("--frames must be >= 1")
    if cfg.duration_s is not None and cfg.duration_s <= 0:
        raise UserError("--duration must be > 0")
    if cfg.outputs.bitrate_kbps <= 0 or cfg.outputs.keyframe_interval_s <= 0:
        raise UserError("--bitrate and --keyframe-interval must be > 0")
    # Upper bounds the encoders take (an int GOP, x264's bit-rate range): beyond them PyAV or
    # GStreamer failed with an OverflowError traceback mid-start.
    if cfg.outputs.bitrate_kbps > 1_000_000 or cfg.outputs.keyframe_interval_s > 3600:
        raise UserError("--bitrate must be at most 1000000 kbit/s and --keyframe-interval at most 3600 s")
    if cfg.fusion.threads is not None and cfg.fusion.threads < 1:
        raise UserError("--threads must be >= 1")
    if cfg.outputs.rtsp_user and not cfg.outputs.rtsp:
        # It was silently ignored: the user believed the stream was protected, or served.
        raise UserError("--rtsp-user applies to --rtsp output (outputs.rtsp_user needs outputs.rtsp): "
                        "add --rtsp rtsp://@:8554/fused or drop --rtsp-user")


# --------------------------------------------------------------------------- internals


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _merge(obj: Any, data: dict, where: str, prefix: str = "") -> None:
    hints = _hints(type(obj))
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in hints:
            known = [f"{prefix}{n}" for n in hints]
            raise UserError(f"{where}: unknown key {dotted!r}{did_you_mean(dotted, known)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if value is None:
                continue  # an empty section keeps its defaults
            if not isinstance(value, dict):
                raise UserError(f"{where}: {dotted!r} is a section and needs keys below it")
            _merge(getattr(obj, key), value, where, prefix=f"{dotted}.")
        else:
            setattr(obj, key, coerce_value(value, hint, dotted, where))


def coerce_value(value: Any, hint: Any, key: str, where: str = "command line") -> Any:
    """Check (and gently convert) one value against its annotation; one clear line if wrong.

    Shared by this run config and pf-train's config (pf_stream.train.config), so a setting
    is read the same way by every tool: ``1e-3`` is a number, ``yes`` is true, nan is refused.
    """
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return coerce_value(value, inner, key, where)
    if origin is Literal:
        text = str(value)
        if text not in args:
            raise UserError(f"{where}: {key} = {text!r} is not one of {', '.join(args)}{did_you_mean(text, args)}")
        return text
    if origin is list or hint is list:
        if not isinstance(value, list):
            raise UserError(f"{where}: {key} wants a list, e.g. [a, b], got {value!r}")
        return [coerce_value(v, args[0], f"{key}[{i}]", where) for i, v in enumerate(value)] if args else value
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise UserError(f"{where}: {key} wants a mapping, e.g. {{name: value}}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise UserError(f"{where}: {key} wants true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        try:
            return int(str(value))
        except ValueError:
            raise UserError(f"{where}: {key} wants a whole number, got {value!r}") from None
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value))
            except ValueError:
                raise UserError(f"{where}: {key} wants a number, got {value!r}") from None
        if not math.isfinite(number):  # nan slips past every range check (nan <= 0 is False)
            raise UserError(f"{where}: {key} wants a finite number, got {value!r}")
        return number
    if hint is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)  # a camera index written as 0 in YAML is the URI "0"
        raise UserError(f"{where}: {key} wants a text value, got {value!r}")
    raise TypeError(f"config field {key} has an unsupported annotation {hint!r}")  # our bug, not the user's
