"""``--display``: an OpenCV window.  Headless machines get a warning, never a crash.

Every HighGUI call (window creation, imshow, waitKey, destroy) happens in this sink's
own thread: GUI toolkits want one thread to own a window.  ``q``, Esc or closing the
window asks the whole run to stop.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Callable

import cv2

from pf_stream.frames import FusedFrame
from pf_stream.sinks.base import Sink

log = logging.getLogger("pf_stream.sinks")


def display_unavailable() -> str | None:
    """Why no window can be shown here, or None if one probably can."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return "no display (DISPLAY and WAYLAND_DISPLAY are unset)"
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].split("\n", 2)[1] if "GUI:" in info else ""
    if "NONE" in gui.upper():
        return "this OpenCV build has no GUI (opencv-python-headless?)"
    return None


class DisplaySink(Sink):
    name = "display"

    def __init__(self, title: str = "pf-stream", on_quit: Callable[[], None] | None = None):
        self.title = title
        self.on_quit = on_quit
        self._window = False
        self._closed = False

    def write(self, frame: FusedFrame) -> None:
        if self._closed:
            return
        if not self._window:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO)
            self._window = True
        cv2.imshow(self.title, frame.image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        if key in (ord("q"), 27) or closed:
            self._closed = True
            log.info("display closed: stopping")
            if self.on_quit is not None:
                self.on_quit()

    def close(self) -> None:
        if self._window:
            try:
                cv2.destroyWindow(self.title)
                cv2.waitKey(1)
            except cv2.error:
                pass
            self._window = False
