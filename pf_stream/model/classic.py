"""`classic`: contourlet fusion with fixed rules and no weights.

The textbook NSCT fusion rule: keep, in every directional subband and at every pixel, the
coefficient with the larger magnitude (the sharper, more salient structure of the two
cameras), and average the low-pass (overall brightness).  It is the CPU fallback and the
baseline every learned model must beat (pf-eval --model classic).
"""

from __future__ import annotations

import torch
from torch import nn

from pf_stream.model.contourlet import Contourlet


class ClassicFusion(nn.Module):
    has_weights = False

    def __init__(self, levels: tuple[int, ...] = (3, 3, 3, 0), dir_kernel: int = 9):
        super().__init__()
        self.contourlet = Contourlet(channels=1, levels=tuple(levels), dir_kernel=dir_kernel)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        ir_low, ir_bands = self.contourlet.decompose(ir)
        vis_low, vis_bands = self.contourlet.decompose(vis)
        bands = [torch.where(a.abs() >= b.abs(), a, b) for a, b in zip(ir_bands, vis_bands)]
        fused = self.contourlet.reconstruct(0.5 * (ir_low + vis_low), bands)
        return fused.clamp(0.0, 1.0)
