"""Colour conversion and IR->VIS warp as torch ops, so a frame crosses PCIe once each way.

The CPU path (``pf_stream.model.colour``, ``pf_stream.align``) converts and warps with
OpenCV.  When fusion runs on the GPU, doing those on the host means shipping float planes
up and down; instead the 8-bit camera frames go up once (IR gray, VIS BGR: 4 bytes a pixel),
everything runs on the device, and one 8-bit BGR picture comes back (3 bytes a pixel):

    ir8, vis_bgr8 --up--> warp(ir) ; vis -> Y, CrCb ; fuse(ir, Y) ; fused Y + CrCb -> BGR --down--> bgr8

The functions reproduce OpenCV's results: the colour conversions use OpenCV's own 14-bit
fixed-point coefficients in integer arithmetic (bit-exact), and the warp is
``cv2.warpPerspective(..., INTER_LINEAR, BORDER_CONSTANT)`` to within OpenCV's 1/32-pixel
interpolation grid.  They run on any torch device (tests compare them with OpenCV on CPU).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# OpenCV's BT.601 coefficients for 8-bit images, scaled by 2**14 (imgproc color_yuv).
_SHIFT, _HALF = 14, 1 << 13
_Y_R, _Y_G, _Y_B = 4899, 9617, 1868
_CR, _CB = 11682, 9241  # 0.713, 0.564
_R_CR, _G_CR, _G_CB, _B_CB = 22987, -11698, -5636, 29049  # 1.403, -0.714, -0.344, 1.773


def _descale(x: torch.Tensor) -> torch.Tensor:
    return torch.bitwise_right_shift(x + _HALF, _SHIFT)


def bgr_to_ycrcb(bgr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(H,W,3) uint8 BGR -> (Y float32 (1,1,H,W) in [0,1], CrCb int32 (1,2,H,W) in 0..255).

    Same numbers as ``cv2.cvtColor(bgr, COLOR_BGR2YCrCb)``; Y scaled to [0,1] like
    ``split_luma_chroma``.  Chroma stays integer: it only travels to :func:`ycrcb_to_bgr`.
    """
    x = bgr.to(torch.int32).permute(2, 0, 1)  # (3,H,W)
    b, g, r = x[0], x[1], x[2]
    y = _descale(r * _Y_R + g * _Y_G + b * _Y_B)
    cr = _descale((r - y) * _CR + (128 << _SHIFT)).clamp_(0, 255)
    cb = _descale((b - y) * _CB + (128 << _SHIFT)).clamp_(0, 255)
    return (y.to(torch.float32) * (1.0 / 255.0))[None, None], torch.stack([cr, cb])[None]


def luma01_to_u8(y01: torch.Tensor) -> torch.Tensor:
    """Float luminance in [0,1] -> integer 0..255 (int32), rounded like ``merge_luma_chroma``
    (``cv2.convertScaleAbs``: round half to even, saturate; models already clip to [0, 1])."""
    return torch.round(y01.float() * 255.0).clamp_(0, 255).to(torch.int32)


def ycrcb_to_bgr(y01: torch.Tensor, crcb: torch.Tensor | None) -> torch.Tensor:
    """Fused Y ((1,1,H,W) float [0,1]) + CrCb from :func:`bgr_to_ycrcb` -> (H,W,3) uint8 BGR.

    Same numbers as ``merge_luma_chroma`` (``cv2.cvtColor(..., COLOR_YCrCb2BGR)``); without
    chroma (gray VIS camera) a gray BGR picture.
    """
    y = luma01_to_u8(y01)[0, 0]
    if crcb is None:
        return y.to(torch.uint8)[..., None].expand(*y.shape, 3).contiguous()
    cr, cb = crcb[0, 0] - 128, crcb[0, 1] - 128
    b = y + _descale(cb * _B_CB)
    g = y + _descale(cr * _G_CR + cb * _G_CB)
    r = y + _descale(cr * _R_CR)
    return torch.stack([b, g, r], dim=-1).clamp_(0, 255).to(torch.uint8)


def gray8_to_float01(image: torch.Tensor) -> torch.Tensor:
    """(H,W) uint8 (or uint16) gray -> (1,1,H,W) float32 in [0,1]."""
    scale = 1.0 / 65535.0 if image.dtype == torch.uint16 else 1.0 / 255.0
    return (image.to(torch.float32) * scale)[None, None]


def homography_grid(homography: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int],
                    device: str | torch.device = "cpu") -> torch.Tensor:
    """The ``grid_sample`` grid (1,h,w,2) that warps a src image by ``homography`` (src -> dst pixels).

    Built once per homography and size (in float64 on the host, so large coordinates keep
    their precision) and then reused for every frame.
    """
    (sw, sh), (dw, dh) = src_size, dst_size
    inv = np.linalg.inv(np.asarray(homography, dtype=np.float64))
    ys, xs = np.mgrid[0:dh, 0:dw].astype(np.float64)
    u, v, w = inv @ np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    with np.errstate(divide="ignore", invalid="ignore"):
        u, v = u / w, v / w
    # align_corners=True: -1 and +1 are the centres of the first and last pixels, so pixel
    # coordinate u maps to 2u/(W-1) - 1, the convention of OpenCV's integer pixel centres.
    gx = 2.0 * u / max(sw - 1, 1) - 1.0
    gy = 2.0 * v / max(sh - 1, 1) - 1.0
    grid = np.stack([gx, gy], axis=-1).reshape(1, dh, dw, 2)
    grid = np.nan_to_num(grid, nan=-4.0, posinf=-4.0, neginf=-4.0)  # points at infinity: outside
    return torch.from_numpy(grid.astype(np.float32)).to(device)


def warp_with_grid(image: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """(N,C,H,W) float image sampled on ``grid``; outside the image is 0 (BORDER_CONSTANT)."""
    return F.grid_sample(image, grid.expand(image.shape[0], -1, -1, -1), mode="bilinear",
                         padding_mode="zeros", align_corners=True)


def warp_perspective(image: torch.Tensor, homography: np.ndarray, dst_size: tuple[int, int]) -> torch.Tensor:
    """Like ``cv2.warpPerspective(image, homography, dst_size, flags=INTER_LINEAR)`` on a tensor."""
    grid = homography_grid(homography, (image.shape[-1], image.shape[-2]), dst_size, image.device)
    return warp_with_grid(image, grid)


class GpuFrameFuser:
    """One fused BGR picture from an 8-bit IR frame and a BGR VIS frame, all on ``backend``'s device.

    ``backend`` is any backend with ``fuse_tensor`` (torch, tensorrt).  ``homography`` maps
    IR pixels to VIS pixels (as in the calibration); None means the IR frame is already in
    the VIS grid.  The warp grid is cached until the homography or a size changes.
    """

    def __init__(self, backend, homography: np.ndarray | None = None):
        self.backend = backend
        self.device = torch.device(getattr(backend, "device", "cpu"))
        self.homography = None if homography is None else np.asarray(homography, dtype=np.float64)
        self._grid: torch.Tensor | None = None
        self._grid_key = None

    def _upload(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(array))
        if self.device.type == "cuda":
            t = t.pin_memory().to(self.device, non_blocking=True)
        return t

    def _warp(self, ir01: torch.Tensor, dst_size: tuple[int, int]) -> torch.Tensor:
        src_size = (ir01.shape[-1], ir01.shape[-2])
        if self.homography is None:
            if src_size != dst_size:
                raise ValueError(f"IR {src_size} and VIS {dst_size} differ in size and no homography was given")
            return ir01
        key = (src_size, dst_size)
        if self._grid is None or key != self._grid_key:
            self._grid = homography_grid(self.homography, src_size, dst_size, self.device)
            self._grid_key = key
        return warp_with_grid(ir01, self._grid)

    @torch.inference_mode()
    def __call__(self, ir8: np.ndarray, vis_bgr: np.ndarray) -> np.ndarray:
        ir = gray8_to_float01(self._upload(ir8))
        vis = self._upload(vis_bgr)
        if vis.ndim == 3 and vis.shape[2] == 3:
            vis_y, crcb = bgr_to_ycrcb(vis)
        else:
            vis_y, crcb = gray8_to_float01(vis if vis.ndim == 2 else vis[..., 0]), None
        ir = self._warp(ir, (vis_y.shape[-1], vis_y.shape[-2]))
        fused = self.backend.fuse_tensor(ir, vis_y)
        return ycrcb_to_bgr(fused, crcb).cpu().numpy()
