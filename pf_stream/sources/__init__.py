"""Every input behind one call: ``open_source(uri, **options) -> Source``.

=====================================  =========================================
URI                                    source
=====================================  =========================================
``cam0``, ``0``, ``v4l2:///dev/video0``  local camera (OpenCV/V4L2), camera.py
``clip.mp4``, ``file:///data/clip.mp4``  video file (PyAV), video.py
``frames/ir/``, ``dir:///data/ir``       image folder, sorted, folder.py
``rtsp://host:554/stream``               network camera/stream, rtsp.py
``gst://<pipeline>``                     GStreamer appsink (Jetson CSI), gst.py
``synthetic://?size=640x512&seed=1``     generated test scene, synthetic.py
=====================================  =========================================

Options come from two places: keyword arguments (the run config's defaults: fps, size,
fourcc, realtime, loop, reconnect ...; a source silently ignores those it has no use
for) and the URI's query string (``v4l2:///dev/video1?fourcc=Y16&size=640x512``),
which wins and is checked strictly: a typo there is an error with a hint.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from urllib.parse import parse_qsl

from pf_stream.errors import UserError, did_you_mean
from pf_stream.sources.base import EOS, LIVE, LOST, FrameSkipped, Source, SourceLost, SourceStats, redact_uri

__all__ = ["open_source", "Source", "SourceStats", "SourceLost", "FrameSkipped", "SCHEMES", "LIVE", "LOST", "EOS"]

SCHEMES = ("synthetic", "v4l2", "file", "dir", "rtsp", "rtsps", "gst")
_BOOL_OPTIONS = ("loop", "realtime", "reconnect")


def _source_class(scheme: str) -> type[Source]:
    # Imported lazily: gst.py needs nothing at import time, but keeps the registry cheap.
    if scheme == "synthetic":
        from pf_stream.sources.synthetic import SyntheticSource as cls
    elif scheme == "camera":
        from pf_stream.sources.camera import CameraSource as cls
    elif scheme == "video":
        from pf_stream.sources.video import VideoFileSource as cls
    elif scheme == "folder":
        from pf_stream.sources.folder import FolderSource as cls
    elif scheme == "rtsp":
        from pf_stream.sources.rtsp import RtspSource as cls
    elif scheme == "gst":
        from pf_stream.sources.gst import GstSource as cls
    else:  # pragma: no cover - resolve() only returns the kinds above
        raise AssertionError(scheme)
    return cls


def resolve(uri: str) -> tuple[str, str, str]:
    """URI -> (kind, uri without pf-stream's query, query string)."""
    uri = uri.strip()
    if not uri:
        raise UserError("empty source: give a URI such as cam0, clip.mp4, frames/, rtsp://... or synthetic://")
    m = re.match(r"([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)", uri, re.S)
    if m is None:
        head, _, query = uri.partition("?")
        if re.fullmatch(r"(cam)?\d+|/dev/video\d+", head):
            return "camera", head, query  # cam0?size=640x512&fourcc=Y16
        return _resolve_bare(uri), uri, ""
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme not in SCHEMES:
        raise UserError(f"unknown source scheme {scheme + '://'!r}{did_you_mean(scheme, SCHEMES)}; "
                        f"use one of: {', '.join(s + '://' for s in SCHEMES)}, a camera index, a file or a folder")
    if scheme == "gst":
        return "gst", uri, ""  # the pipeline text is not a URL: leave it alone
    if scheme in ("rtsp", "rtsps"):
        query = rest.split("?", 1)[1] if "?" in rest else ""
        return "rtsp", uri, query  # the server's own query parameters stay in the URL
    path, _, query = rest.partition("?")
    if scheme == "synthetic":
        return "synthetic", "synthetic://", query
    if scheme == "v4l2":
        return "camera", f"v4l2://{path}", query
    if scheme == "dir":
        return "folder", path, query
    # file://: a video file or a folder
    return _resolve_bare(path), path, query


def _resolve_bare(text: str) -> str:
    if re.fullmatch(r"(cam)?\d+", text) or text.startswith("/dev/video"):
        return "camera"
    from pf_stream.sources.video import VIDEO_EXTENSIONS

    path = Path(text).expanduser()
    if path.is_dir():
        return "folder"
    if path.is_file():
        if path.suffix.lower() in VIDEO_EXTENSIONS:
            return "video"
        from pf_stream.sources.folder import IMAGE_EXTENSIONS

        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise UserError(f"{path} is a single image: give the folder that holds the frames ({path.parent})")
        return "video"  # an unusual extension: let the decoder decide (a clear error if it cannot)
    if path.suffix.lower() in VIDEO_EXTENSIONS:
        raise UserError(f"video file {path} not found")
    raise UserError(f"source {text!r} not found: not a file, a folder, a camera (cam0) or a URI (rtsp://, synthetic://, gst://)")


def _accepted_options(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for p in inspect.signature(init).parameters.values():
            if p.kind is p.KEYWORD_ONLY:
                names.add(p.name)
    return names


def open_source(uri: str, **options) -> Source:
    """Build (not yet start) the source for ``uri``; ``with`` it, or call ``start()``.

    Missing files, unknown schemes and bad options fail here, at once, as a UserError.
    ``start()`` then opens the device and reads a first frame (a camera that cannot open
    fails there, also as a UserError).
    """
    kind, target, query = resolve(str(uri))
    cls = _source_class(kind)
    accepted = _accepted_options(cls)
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in cls.query_options:
            kwargs[key] = _parse_bool(key, value) if key in _BOOL_OPTIONS else _parse_number(key, value, uri)
        elif kind != "rtsp":  # anything else in an rtsp:// query belongs to the camera's server
            hint = did_you_mean(key, cls.query_options)
            allowed = ", ".join(cls.query_options) or "none"
            raise UserError(f"unknown option {key!r} in {uri}{hint}; this source takes: {allowed}")
    return cls(target, **kwargs)


# Numeric query options and what they accept: a bad one is a UserError here, not a
# ValueError traceback from deep inside a source's constructor.
_NUMBER_OPTIONS = {"fps": (float, 0.0, "a number > 0"), "timeout_s": (float, 0.0, "a number > 0"),
                   "seed": (int, None, "a whole number"), "frames": (int, 0, "a whole number > 0"),
                   "bits": (int, None, "8 or 16")}


def _parse_number(key: str, value: str, uri: str):
    if key not in _NUMBER_OPTIONS:
        return value
    kind, above, wants = _NUMBER_OPTIONS[key]
    try:
        number = kind(value)
    except ValueError:
        number = None
    if number is None or number != number or number in (float("inf"), float("-inf")) or (above is not None and number <= above):
        raise UserError(f"option {key} in {redact_uri(uri)} wants {wants}, got {value!r}")
    return number


def _parse_bool(key: str, value: str) -> bool:
    low = value.strip().lower()
    if low in ("", "1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise UserError(f"option {key} wants true or false, got {value!r}")
