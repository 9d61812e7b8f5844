"""Alignment: bring the IR picture into the VIS camera's pixel grid.

With a calibration YAML (pf-calibrate) the IR frame is warped by its homography; the
homography is rescaled when the cameras run at other sizes than at calibration time
(a warning says so: rescaling is exact only when the whole sensor is scaled, not
cropped).  Without one the IR frame is only resized to the VIS size, which is right
for co-axial or pre-registered pairs.

On the CPU the warp is ``cv2.warpPerspective``.  When fusion runs on the GPU, the
pipeline hands :meth:`Aligner.device_homography` to the GPU frame path
(``pf_stream.backends.gpu_ops.GpuFrameFuser``), which warps there with a cached
sampling grid: the IR frame goes up once, as 8-bit.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

log = logging.getLogger("pf_stream.align")


class Aligner:
    """IR (8-bit gray) -> IR in the VIS frame (8-bit gray, VIS size)."""

    def __init__(self, calib_path: str | None = None):
        self.calib = None
        if calib_path:
            from pf_stream.calibration.schema import load_calibration

            self.calib = load_calibration(calib_path)
        self.homography: np.ndarray | None = None  # IR pixel -> VIS pixel, at the running sizes
        self.vis_size: tuple[int, int] | None = None
        self.ir_size: tuple[int, int] | None = None

    @property
    def identity(self) -> bool:
        return self.homography is None and self.ir_size == self.vis_size

    def prepare(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> None:
        """Fix the sizes (width, height) of both streams; call again if they change."""
        self.ir_size, self.vis_size = tuple(ir_size), tuple(vis_size)
        if self.calib is None:
            self.homography = None
            if self.ir_size != self.vis_size:
                ir_aspect, vis_aspect = ir_size[0] / ir_size[1], vis_size[0] / vis_size[1]
                note = " (aspect ratios differ: the IR is stretched; calibrate with pf-calibrate)" if abs(ir_aspect - vis_aspect) > 0.02 else ""
                log.info("no calibration: resizing IR %dx%d to the VIS size %dx%d%s", *ir_size, *vis_size, note)
            return
        if (self.ir_size, self.vis_size) != (tuple(self.calib.ir_size), tuple(self.calib.vis_size)):
            log.warning("calibration was made at IR %dx%d / VIS %dx%d, cameras now give IR %dx%d / VIS %dx%d: "
                        "rescaling the homography (exact only if the sensors are scaled, not cropped)",
                        *self.calib.ir_size, *self.calib.vis_size, *ir_size, *vis_size)
        self.homography = self.calib.scaled_to(self.ir_size, self.vis_size)

    def device_homography(self) -> np.ndarray | None:
        """The same mapping as one homography (calibration, or the resize as a scaling), None if identity.

        For the GPU path (pf_stream.backends.gpu_ops.GpuFrameFuser), which warps by homography only.
        """
        if self.homography is not None:
            return self.homography
        if self.ir_size == self.vis_size:
            return None
        (iw, ih), (vw, vh) = self.ir_size, self.vis_size
        # cv2.resize maps pixel centres to pixel centres: x_vis = (x_ir + 0.5) * vw / iw - 0.5
        return np.array([[vw / iw, 0, 0.5 * vw / iw - 0.5], [0, vh / ih, 0.5 * vh / ih - 0.5], [0, 0, 1]], np.float64)

    def __call__(self, ir: np.ndarray) -> np.ndarray:
        h, w = ir.shape[:2]
        if self.ir_size != (w, h):
            self.prepare((w, h), self.vis_size)
        if self.homography is not None:
            return cv2.warpPerspective(ir, self.homography, self.vis_size, flags=cv2.INTER_LINEAR,
                                       borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        if self.ir_size != self.vis_size:
            return cv2.resize(ir, self.vis_size, interpolation=cv2.INTER_LINEAR)
        return ir
