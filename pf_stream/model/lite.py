"""`lite`: a real-time contourlet fusion network (~1 GMAC at 640x512, ~60 k parameters).

Both images go through the same fixed contourlet transform; the network only decides,
subband by subband, how to mix the two cameras' coefficients.  All of its convolutions
run on decimated subbands (1/2, 1/4, 1/8 resolution) except two tiny ones on the finest,
undivided bandpass, so the cost stays low on a CPU and trivially low on a GPU:

    ir, vis ──contourlet──► lowpass (1/8)  + bands: 8 wedges @1/4, 8 wedges @1/2, bandpass @1
    lowpass:  CNN on [ir, vis]              → gate g0, residual r0, context c0
    level j:  CNN on [ir wedges, vis wedges, |.|, up(context)] → per-wedge gate g, residual r
              fused wedges = g * ir + (1 - g) * vis + r          (context flows to finer levels)
    finest:   1x1 + 3x3 on [ir bp, vis bp, up(context)]         → gate, residual
    fused = inverse contourlet(fused lowpass, fused bands), clipped to [0, 1]

Gating keeps the output a mix of real coefficients (no hallucinated texture), and the
small residual lets training sharpen or boost contrast where a plain mix cannot.

``global_context=True`` also feeds the lowpass CNN the frame-wide means of both lowpass
images (two constant channels).  Convolutions only see a neighbourhood, but brightness
decisions (how much of the IR's thermal contrast to add on top of the visible scene, and
around which level) depend on the frame's overall exposure; the shipped weights use it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pf_stream.model.contourlet import Contourlet


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2, padding_mode="replicate")


class _LevelNet(nn.Module):
    """Mixes one level's IR and VIS subbands (D wedges each) given coarser context."""

    def __init__(self, n_wedges: int, ctx_in: int, width: int):
        super().__init__()
        self.body = nn.Sequential(
            _conv(4 * n_wedges + ctx_in, width), nn.LeakyReLU(0.1), _conv(width, width), nn.LeakyReLU(0.1)
        )
        self.gate = nn.Conv2d(width, n_wedges, 1)
        self.residual = nn.Conv2d(width, n_wedges, 1)
        nn.init.zeros_(self.residual.weight)  # start as a pure mix of real coefficients
        nn.init.zeros_(self.residual.bias)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor, ctx: torch.Tensor | None):
        parts = [ir, vis, ir.abs(), vis.abs()]
        if ctx is not None:
            parts.append(F.interpolate(ctx, size=ir.shape[-2:], mode="bilinear", align_corners=False))
        feat = self.body(torch.cat(parts, dim=1))
        g = torch.sigmoid(self.gate(feat))
        return g * ir + (1.0 - g) * vis + self.residual(feat), feat


class LiteFusion(nn.Module):
    has_weights = True

    def __init__(
        self,
        levels: tuple[int, ...] = (3, 3, 0),
        widths: tuple[int, ...] = (24, 16),
        low_width: int = 16,
        fine_ctx: int = 4,
        dir_kernel: int = 9,
        global_context: bool = False,
    ):
        super().__init__()
        levels, widths = tuple(levels), tuple(widths)
        if levels[-1] != 0 or len(widths) != len(levels) - 1:
            raise ValueError("lite: the finest level must be undivided (levels[-1] == 0) and widths must cover the others")
        self.contourlet = Contourlet(channels=1, levels=levels, dir_kernel=dir_kernel)
        self.global_context = bool(global_context)
        low_in = 4 if self.global_context else 2
        self.low = nn.Sequential(_conv(low_in, low_width), nn.LeakyReLU(0.1), _conv(low_width, low_width), nn.LeakyReLU(0.1))
        self.low_gate = nn.Conv2d(low_width, 1, 1)
        self.low_residual = nn.Conv2d(low_width, 1, 1)
        nets, ctx = [], low_width
        for n, width in zip(levels[:-1], widths):
            nets.append(_LevelNet(2**n, ctx, width))
            ctx = width
        self.levels_net = nn.ModuleList(nets)
        self.fine_ctx = nn.Conv2d(ctx, fine_ctx, 1)  # shrink context before upsampling to full size
        self.fine = nn.Sequential(_conv(2 + fine_ctx, 8), nn.LeakyReLU(0.1))
        self.fine_gate = nn.Conv2d(8, 1, 1)
        self.fine_residual = nn.Conv2d(8, 1, 1)
        for conv in (self.low_residual, self.fine_residual):
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        # One transform for both cameras, stacked on the batch axis: half the kernels of two
        # calls (a frame on a big GPU is bound by kernel count, not arithmetic: docs/GPU.md).
        n = ir.shape[0]
        both_low, both_bands = self.contourlet.decompose(torch.cat([ir, vis], dim=0))
        ir_low, vis_low = both_low[:n], both_low[n:]
        ir_bands, vis_bands = [b[:n] for b in both_bands], [b[n:] for b in both_bands]

        parts = [ir_low, vis_low]
        if self.global_context:
            # Frame-wide means as constant planes (ReduceMean + Expand in ONNX, any size).
            parts += [ir_low.mean(dim=(2, 3), keepdim=True).expand_as(ir_low),
                      vis_low.mean(dim=(2, 3), keepdim=True).expand_as(vis_low)]
        ctx = self.low(torch.cat(parts, dim=1))
        g = torch.sigmoid(self.low_gate(ctx))
        low = g * ir_low + (1.0 - g) * vis_low + self.low_residual(ctx)

        fused_bands = []
        for net, a, b in zip(self.levels_net, ir_bands[:-1], vis_bands[:-1]):
            band, ctx = net(a, b, ctx)
            fused_bands.append(band)

        a, b = ir_bands[-1], vis_bands[-1]
        up = F.interpolate(self.fine_ctx(ctx), size=a.shape[-2:], mode="bilinear", align_corners=False)
        feat = self.fine(torch.cat([a, b, up], dim=1))
        g = torch.sigmoid(self.fine_gate(feat))
        fused_bands.append(g * a + (1.0 - g) * b + self.fine_residual(feat))

        return self.contourlet.reconstruct(low, fused_bands).clamp(0.0, 1.0)
