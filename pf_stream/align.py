"""Alignment: bring the IR picture into the VIS camera's pixel grid.

With a calibration YAML (pf-calibrate) the IR frame is warped by its homography; the
homography is rescaled when the cameras run at other sizes than at calibration time
(a warning says so: rescaling is exact only when the whole sensor is scaled, not
cropped).  Without one the IR frame is only resized to the VIS size, which is right
for co-axial or pre-registered pairs.

On the CPU the warp is ``cv2.warpPerspective``.  When fusion runs on the GPU the
sampling grid is built once and ``grid_sample`` warps on the device
(:class:`TorchWarp`), so the IR frame goes up to the GPU once, as 8-bit.
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


class TorchWarp:
    """The same warp on a torch device: 8-bit IR (numpy) -> float [0,1] (1,1,H,W) tensor on ``device``."""

    def __init__(self, aligner: Aligner, device: str):
        import torch

        self.torch = torch
        self.aligner = aligner
        self.device = torch.device(device)
        self._grid = None
        self._key = None

    def _build_grid(self):
        torch = self.torch
        (iw, ih), (vw, vh) = self.aligner.ir_size, self.aligner.vis_size
        h = self.aligner.homography
        if h is None:  # resize only: a pure scaling, pixel centres to pixel centres (like cv2.resize)
            h = np.array([[vw / iw, 0, 0.5 * vw / iw - 0.5], [0, vh / ih, 0.5 * vh / ih - 0.5], [0, 0, 1]], np.float64)
        inv = np.linalg.inv(h)
        ys, xs = np.mgrid[0:vh, 0:vw].astype(np.float64)
        pts = inv @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
        u, v = pts[0] / pts[2], pts[1] / pts[2]
        # grid_sample wants [-1, 1] coordinates, with align_corners=False: pixel centres at (2i+1)/n - 1.
        gx = (2.0 * u + 1.0) / iw - 1.0
        gy = (2.0 * v + 1.0) / ih - 1.0
        grid = np.stack([gx, gy], axis=-1).reshape(1, vh, vw, 2).astype(np.float32)
        self._grid = torch.from_numpy(grid).to(self.device)
        self._key = (self.aligner.ir_size, self.aligner.vis_size, None if self.aligner.homography is None else self.aligner.homography.tobytes())

    def __call__(self, ir: np.ndarray):
        torch = self.torch
        h, w = ir.shape[:2]
        if self.aligner.ir_size != (w, h):
            self.aligner.prepare((w, h), self.aligner.vis_size)
        key = (self.aligner.ir_size, self.aligner.vis_size, None if self.aligner.homography is None else self.aligner.homography.tobytes())
        if self._grid is None or key != self._key:
            self._build_grid()
        x = torch.from_numpy(np.ascontiguousarray(ir)).to(self.device, non_blocking=True)
        x = x.to(torch.float32).mul_(1.0 / 255.0)[None, None]
        if self.aligner.identity:
            return x
        return torch.nn.functional.grid_sample(x, self._grid, mode="bilinear", padding_mode="zeros", align_corners=False)
