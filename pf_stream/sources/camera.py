"""Local cameras through OpenCV (V4L2 on Linux): ``cam0``, ``0``, ``v4l2:///dev/video0``.

Requested size, frame rate and pixel format (``fourcc``) are set before the first
frame.  ``fourcc=Y16`` asks a thermal camera for raw 16-bit counts and turns OpenCV's
RGB conversion off, so the 16 bits survive (OpenCV would otherwise squeeze them into
8-bit BGR); the pipeline's AGC then maps them to 8 bits with the whole dynamic range.

The OpenCV capture is made by ``capture_factory(target, api_preference)``, injectable:
there is no camera on CI machines, so tests pass a fake that behaves like
``cv2.VideoCapture``.
"""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np

from pf_stream.errors import UserError, parse_size
from pf_stream.sources.base import Source, SourceLost

log = logging.getLogger("pf_stream.sources")

CaptureFactory = Callable[[Any, int], Any]


def default_capture_factory(target: int | str, api: int) -> Any:
    return cv2.VideoCapture(target, api)


def parse_camera(uri: str) -> int | str:
    """'cam0' / '0' / 'v4l2://0' -> 0; 'v4l2:///dev/video2' / '/dev/video2' -> '/dev/video2'."""
    text = uri[len("v4l2://") :] if uri.startswith("v4l2://") else uri
    text = text.split("?", 1)[0]
    m = re.fullmatch(r"(?:cam)?(\d+)", text)
    if m:
        return int(m.group(1))
    if text.startswith("/dev/"):
        return text
    raise UserError(f"cannot read a camera from {uri!r}: write cam0, 0, or v4l2:///dev/video0")


class CameraSource(Source):
    live = True
    query_options = ("size", "fps", "fourcc")

    def __init__(self, uri: str, *, size: str | tuple[int, int] | None = None, fps: float | None = None,
                 fourcc: str | None = None, capture_factory: CaptureFactory | None = None, **kwargs):
        super().__init__(uri, **kwargs)
        self.target = parse_camera(uri)
        self.size = parse_size(size) if isinstance(size, str) else size
        self.fps = float(fps) if fps else None
        self.fourcc = fourcc.upper().ljust(4) if fourcc else None  # V4L2 pads short codes: "Y16 "
        if self.fourcc is not None and len(self.fourcc) != 4:
            raise UserError(f"fourcc must be up to 4 characters (MJPG, YUYV, Y16 ...), got {fourcc!r}")
        self._factory = capture_factory or default_capture_factory
        self._injected = capture_factory is not None
        self._cap = None
        try:
            self._check_device_exists()  # fail in a blink, before any model is loaded
        except SourceLost as exc:
            raise UserError(f"{self.name} source {uri}: {exc}") from None

    def _check_device_exists(self) -> None:
        device = self._device_path()
        if not self._injected and device and sys.platform.startswith("linux") and not Path(device).exists():
            raise SourceLost(f"no camera at {device} (ls /dev/video* lists the cameras this machine sees)")

    @property
    def raw16(self) -> bool:
        return self.fourcc == "Y16 "

    def _device_path(self) -> str | None:
        if isinstance(self.target, str):
            return self.target
        return f"/dev/video{self.target}" if sys.platform.startswith("linux") else None

    def _open(self) -> None:
        self._check_device_exists()
        device = self._device_path()
        api = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        cap = self._factory(self.target, api)
        if cap is None or not cap.isOpened():
            raise SourceLost(f"camera {device or self.target} cannot be opened (unplugged, or used by another program?)")
        # Order matters for V4L2: format first, then size, then rate.
        if self.fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*self.fourcc))
        if self.raw16:
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)
        if self.size:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        if self.fps:
            cap.set(cv2.CAP_PROP_FPS, self.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the driver queue: keep it short, we want the newest frame
        self._cap = cap
        got = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if self.size and got != tuple(self.size) and all(got):
            log.warning("%s: asked the camera for %dx%d, it gives %dx%d", self.name, *self.size, *got)

    def _read(self) -> np.ndarray:
        ok, image = self._cap.read()
        if not ok or image is None:
            raise SourceLost("camera stopped delivering frames (unplugged?)")
        if self.raw16:
            image = self._as_uint16(image)
        return image

    def _as_uint16(self, image: np.ndarray) -> np.ndarray:
        """Y16 frames come as HxW uint16, or (driver-dependent) as one row of raw bytes."""
        if image.dtype == np.uint16:
            return image if image.ndim == 2 else image[:, :, 0]
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if image.dtype == np.uint8 and w and h and image.size == w * h * 2:
            return np.ascontiguousarray(image).reshape(-1).view("<u2").reshape(h, w)
        return image  # the camera ignored Y16: use what it gives (8-bit)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
