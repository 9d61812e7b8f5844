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


# Width of the switch between the two cameras' coefficients.  A hard ``where`` flips on
# rounding noise when |a| ~ |b| with opposite signs, so torch, ONNX Runtime and TensorRT
# would disagree by up to 2|a| at such pixels; a ramp this narrow is a hard choice everywhere
# else and bounds that disagreement by (rounding error / TIE_WIDTH) * |a - b|.
TIE_WIDTH = 1e-3


def max_abs_select(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per element, the coefficient of larger magnitude (ramped over TIE_WIDTH near ties)."""
    w = ((a.abs() - b.abs()) * (0.5 / TIE_WIDTH) + 0.5).clamp(0.0, 1.0)
    return b + w * (a - b)


class ClassicFusion(nn.Module):
    has_weights = False

    def __init__(self, levels: tuple[int, ...] = (3, 3, 3, 0), dir_kernel: int = 9):
        super().__init__()
        self.contourlet = Contourlet(channels=1, levels=tuple(levels), dir_kernel=dir_kernel)

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        ir_low, ir_bands = self.contourlet.decompose(ir)
        vis_low, vis_bands = self.contourlet.decompose(vis)
        bands = [max_abs_select(a, b) for a, b in zip(ir_bands, vis_bands)]
        fused = self.contourlet.reconstruct(0.5 * (ir_low + vis_low), bands)
        return fused.clamp(0.0, 1.0)
