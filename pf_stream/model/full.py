"""`full`: PromptFusion's architecture on tensors, with the contourlet branch at native resolution.

Data flow (C = ``dim`` channels everywhere between the encoder and the decoder)::

    img (N,1,H,W) ─► 3x3 patch embedding ─► shared Restormer blocks ─► f (N,C,H,W)
        f ─► base encoder    Restormer block (global channel attention: low-frequency content) ─► base
        f ─► detail encoder  invertible affine-coupling blocks (local texture)               ─► detail
        f ─► contour branch  1x1 ─► contourlet (levels 0,3,3,3) ─► CNN over the subbands    ─► contour
    fuse(ir, vis):  base fusion layer, detail fusion layer, contour fusion layer (one per kind)
    decode:         [base, detail, contour] ─► 1x1 ─► Restormer blocks ─► 3x3 head ─► sigmoid

Training (not here, see ``train/``) follows the paper's two stages: Stage I trains
``reconstruct(x) = decode(encode(x))`` as an autoencoder of each modality; Stage II trains
``forward(ir, vis) = decode(fuse(encode(ir), encode(vis)))``.

How this reads the paper (PromptFusion, IEEE/CAA JAS 2025) and its reference code, which
builds on CDDFuse -- what is kept:

* Shared encoder: overlapped 3x3 patch embedding + Restormer blocks (MDTA: multi-Dconv head
  transposed attention, i.e. attention between channels, linear in the number of pixels;
  GDFN: gated depthwise-conv feed-forward).
* Base encoder and base fusion layer: one attention block each.  Detail encoder: three
  invertible affine-coupling layers (CDDFuse's INN); detail fusion layer: one.
* Contourlet branch: a 1x1 projection of the shared features is decomposed into a Laplacian
  pyramid with 8 directional subbands on its three finer levels; a CNN encoder takes in the
  subbands of each scale as it goes down (like the reference's ContourletCNN) and a U-Net
  decoder with skips brings the result back to full resolution.
* Decoder: 1x1 channel reduction of the concatenated features, Restormer blocks, two 3x3
  convolutions, sigmoid.

What is changed, and why:

* The contourlet runs on tensors at the input's own resolution (``pf_stream.model.contourlet``:
  decimated pyramid, non-subsampled directions).  The reference resizes every feature map to
  224x224, decomposes it with numpy on the CPU without gradient (165 ms a call on 2 cores) and
  resizes the CNN's output back: fine detail is lost on large frames, nothing before the
  transform learns from the branch, and the model cannot be exported.
* The attention's q/k/v convolution is depthwise (as in Restormer) instead of the reference's
  dense 3x3 conv over 3*64 = 192 channels at full resolution, which alone is ~63 % of its
  571 GMAC per 640x512 frame; the receptive field of q, k, v is the same.
* Widths and depths: C = 32 (reference 64), one shared encoder block and two decoder blocks
  (CDDFuse: four and four at C = 64), contour CNN 16..64 channels (reference 64..512, 6.25 M
  parameters), no BatchNorm (frames arrive one at a time; batch statistics only get in the way).
  Default size: 0.33 M parameters and 58 GMAC per 640x512 frame pair (FlopCounterMode, both
  encoder passes included) against the reference's 7.44 M and 571 GMAC.
* Three feature kinds (base, detail, contour).  The reference code swaps the INN detail
  encoder for the contourlet CNN but still fuses the result with the INN detail fusion layer;
  keeping both lets the INN model fine texture and the contourlet branch directional edges.
* Fusion layers see the concatenation [ir, vis] through a 1x1 convolution initialised to the
  mean ``(ir + vis) / 2``: the reference feeds them the sum; the mean keeps the feature scale the
  decoder learned in Stage I, and the layer can learn to prefer one camera where a fixed sum
  would cancel details of opposite sign.
* ``decode`` needs no image: the reference adds the visible image before the final sigmoid,
  which biases the fused output towards the visible camera and ties the decoder to one input.
* The coupling's log-scale is bounded (``2 tanh(s / 2)``) so a scale can never overflow in an
  fp16 engine; the layer stays exactly invertible.

Any H and W work without padding: the attention is over channels (any pixel count), the
contourlet handles any size, strided convolutions give ceil(H/2) x ceil(W/2) like the pyramid
and upsampling interpolates to the size of the skip it meets.  Every op exports to ONNX
opset 17 with dynamic height and width.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from pf_stream.model.contourlet import Contourlet


class Features(NamedTuple):
    """What ``encode`` returns and ``decode`` takes: three (N, C, H, W) maps."""

    base: torch.Tensor
    detail: torch.Tensor
    contour: torch.Tensor


# -- Restormer parts --------------------------------------------------------------------


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each pixel, computed in place on (N, C, H, W).

    Same maths as reshaping to (N, H*W, C) and using nn.LayerNorm, without the two transposes.
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        centred = x - mean
        var = centred.pow(2).mean(dim=1, keepdim=True)
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias


class ChannelAttention(nn.Module):
    """MDTA: each head attends between its channels, using all pixels as the 'sequence'.

    The attention matrix is (C/heads)^2 per head whatever the image size, so cost and memory
    grow linearly with the pixel count.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(dim, 3 * dim, 1, bias=False)
        self.qkv_dw = nn.Conv2d(3 * dim, 3 * dim, 3, padding=1, groups=3 * dim, bias=False)
        self.project = nn.Conv2d(dim, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv_dw(self.qkv(x)).chunk(3, dim=1)
        # (N, heads, C/heads, H*W): -1 keeps the pixel count symbolic for ONNX.
        q, k, v = (t.reshape(n, self.heads, c // self.heads, -1) for t in (q, k, v))
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.temperature, dim=-1)
        return self.project((attn @ v).reshape(n, c, h, w))


class GatedFeedForward(nn.Module):
    """GDFN: 1x1 up, depthwise 3x3, GELU gate, 1x1 down."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = int(dim * expansion)
        self.expand = nn.Conv2d(dim, 2 * hidden, 1, bias=False)
        self.dw = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.shrink = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.dw(self.expand(x)).chunk(2, dim=1)
        return self.shrink(F.gelu(gate) * value)


class RestormerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float = 2.0):
        super().__init__()
        self.norm1 = ChannelNorm(dim)
        self.attn = ChannelAttention(dim, heads)
        self.norm2 = ChannelNorm(dim)
        self.ffn = GatedFeedForward(dim, expansion)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


# -- detail encoder: invertible coupling layers ---------------------------------------------


class InvertedResidual(nn.Module):
    """MobileNetV2-style bottleneck (1x1 up, depthwise 3x3, 1x1 down): the coupling functions."""

    def __init__(self, channels: int, expansion: int = 2):
        super().__init__()
        hidden = channels * expansion
        self.body = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU6(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False),
            nn.ReLU6(),
            nn.Conv2d(hidden, channels, 1, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class CouplingLayer(nn.Module):
    """Affine coupling on two channel halves (z1, z2), after a learned 1x1 channel mix.

    z2 += phi(z1);  z1 = z1 * exp(s(z2)) + t(z2).  Invertible whatever phi, s, t are, so the
    detail encoder cannot throw information away -- the point of CDDFuse's INN.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim % 2:
            raise ValueError(f"dim ({dim}) must be even for the coupling layers")
        half = dim // 2
        self.mix = nn.Conv2d(dim, dim, 1)
        self.phi = InvertedResidual(half)
        self.log_scale = InvertedResidual(half)
        self.shift = InvertedResidual(half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z1, z2 = self.mix(x).chunk(2, dim=1)
        z2 = z2 + self.phi(z1)
        # Bounded log-scale: exp() stays within [e^-2, e^2], finite in fp16.
        z1 = z1 * torch.exp(2.0 * torch.tanh(0.5 * self.log_scale(z2))) + self.shift(z2)
        return torch.cat((z1, z2), dim=1)


# -- contourlet branch ---------------------------------------------------------------------


def _conv3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


def _act() -> nn.Module:
    return nn.LeakyReLU(0.1)


class _FullResBlock(nn.Module):
    """1x1 conv then depthwise 3x3: what we can afford at full resolution (no dense 3x3)."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.Conv2d(cout, cout, 3, padding=1, groups=cout), _act())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class _DownStage(nn.Module):
    """Halve with a strided conv, then take in this scale's contourlet subbands."""

    def __init__(self, cin: int, bands: int, cout: int):
        super().__init__()
        self.down = nn.Sequential(_conv3(cin, cout, stride=2), _act())
        self.merge = nn.Sequential(_conv3(cout + bands, cout), _act())

    def forward(self, x: torch.Tensor, bands: torch.Tensor) -> torch.Tensor:
        # Both are ceil(H/2) x ceil(W/2) of the finer scale: stride-2 conv and pyramid agree.
        return self.merge(torch.cat((self.down(x), bands), dim=1))


def _upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class ContourletBranch(nn.Module):
    """Features -> contourlet subbands -> CNN -> full-resolution contour features.

    Scales, finest first: 0 = full resolution (finest bandpass, 2**levels[-1] wedges per
    channel), 1 = 1/2 (next level) ... L-1 = coarsest band, L = lowpass.  The encoder runs from
    scale 0 down to L, concatenating each scale's subbands; the decoder climbs back with
    skips.  ``widths[s]`` is the channel count at scale s.
    """

    def __init__(
        self,
        dim: int,
        channels: int = 4,
        levels: tuple[int, ...] = (0, 3, 3, 3),
        widths: tuple[int, ...] = (16, 24, 32, 48, 64),
        dir_kernel: int = 11,
    ):
        super().__init__()
        if len(widths) != len(levels) + 1:
            raise ValueError(f"contour widths need one entry per level plus the lowpass: {len(levels) + 1}, got {len(widths)}")
        self.project = nn.Conv2d(dim, channels, 1)
        self.contourlet = Contourlet(channels=channels, levels=levels, dir_kernel=dir_kernel)
        band_channels = [channels * 2**n for n in reversed(levels)] + [channels]  # finest .. lowpass
        # Scale 0 sees the projected map itself as well as its finest subbands.
        self.stem = _FullResBlock(channels + band_channels[0], widths[0])
        self.down = nn.ModuleList(
            _DownStage(widths[s - 1], band_channels[s], widths[s]) for s in range(1, len(widths))
        )
        # up[s - 1] brings scale s + 1 up to scale s (s = 1 .. L-1) and merges that scale's skip;
        # the head does the last step, to full resolution.
        self.up = nn.ModuleList(
            nn.Sequential(_conv3(widths[s + 1] + widths[s], widths[s]), _act()) for s in range(1, len(widths) - 1)
        )
        self.head = nn.Sequential(_FullResBlock(widths[1] + widths[0], widths[0]), nn.Conv2d(widths[0], dim, 1))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        p = self.project(f)
        lowpass, bands = self.contourlet.decompose(p)  # bands coarsest first
        per_scale = bands[::-1] + [lowpass]  # finest first, like the scales
        skips = [self.stem(torch.cat((p, per_scale[0]), dim=1))]
        for stage, sub in zip(self.down, per_scale[1:]):
            skips.append(stage(skips[-1], sub))
        x = skips.pop()  # the lowpass scale
        for stage in reversed(self.up):
            skip = skips.pop()
            x = stage(torch.cat((_upsample_to(x, skip), skip), dim=1))
        skip = skips.pop()
        return self.head(torch.cat((_upsample_to(x, skip), skip), dim=1))


# -- fusion layers and decoder ----------------------------------------------------------------


class _PairMix(nn.Conv2d):
    """1x1 conv of [ir, vis] -> C channels, initialised to the mean (ir + vis) / 2."""

    def __init__(self, dim: int):
        super().__init__(2 * dim, dim, 1)
        with torch.no_grad():
            eye = torch.eye(dim).reshape(dim, dim, 1, 1)
            self.weight.copy_(0.5 * torch.cat((eye, eye), dim=1))
            self.bias.zero_()

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return super().forward(torch.cat((ir, vis), dim=1))


class FusionLayers(nn.Module):
    """One fusion layer per feature kind, each of the same family as its encoder."""

    def __init__(self, dim: int, heads: int, expansion: float):
        super().__init__()
        self.base_mix, self.detail_mix, self.contour_mix = _PairMix(dim), _PairMix(dim), _PairMix(dim)
        self.base = RestormerBlock(dim, heads, expansion)
        self.detail = CouplingLayer(dim)
        self.contour = _FullResBlock(dim, dim)

    def forward(self, ir: Features, vis: Features) -> Features:
        contour = self.contour_mix(ir.contour, vis.contour)
        return Features(
            base=self.base(self.base_mix(ir.base, vis.base)),
            detail=self.detail(self.detail_mix(ir.detail, vis.detail)),
            contour=contour + self.contour(contour),
        )


class Decoder(nn.Module):
    def __init__(self, dim: int, heads: int, expansion: float, blocks: int):
        super().__init__()
        self.reduce = nn.Conv2d(3 * dim, dim, 1, bias=False)
        self.blocks = nn.Sequential(*(RestormerBlock(dim, heads, expansion) for _ in range(blocks)))
        self.head = nn.Sequential(_conv3(dim, dim // 2), _act(), _conv3(dim // 2, 1))

    def forward(self, features: Features) -> torch.Tensor:
        x = self.reduce(torch.cat(tuple(features), dim=1))
        return torch.sigmoid(self.head(self.blocks(x)))


# -- the model --------------------------------------------------------------------------------


class FullFusion(nn.Module):
    """PromptFusion-style fusion network; see the module docstring for the structure.

    ``forward(ir, vis)``: IR and VIS luminance (N, 1, H, W) in [0, 1] -> fused (N, 1, H, W) in [0, 1].
    """

    has_weights = True

    def __init__(
        self,
        dim: int = 32,
        heads: int = 4,
        expansion: float = 2.0,
        encoder_blocks: int = 1,
        detail_layers: int = 3,
        decoder_blocks: int = 2,
        contour_channels: int = 4,
        contour_widths: tuple[int, ...] = (16, 24, 32, 48, 64),
        levels: tuple[int, ...] = (0, 3, 3, 3),
        dir_kernel: int = 11,
    ):
        super().__init__()
        self.embed = nn.Conv2d(1, dim, 3, padding=1, bias=False)
        self.shared = nn.Sequential(*(RestormerBlock(dim, heads, expansion) for _ in range(encoder_blocks)))
        self.base_encoder = RestormerBlock(dim, heads, expansion)
        self.detail_encoder = nn.Sequential(*(CouplingLayer(dim) for _ in range(detail_layers)))
        self.contour_encoder = ContourletBranch(dim, contour_channels, tuple(levels), tuple(contour_widths), dir_kernel)
        self.fusion = FusionLayers(dim, heads, expansion)
        self.decoder = Decoder(dim, heads, expansion, decoder_blocks)

    def encode(self, img: torch.Tensor) -> Features:
        f = self.shared(self.embed(img))
        return Features(self.base_encoder(f), self.detail_encoder(f), self.contour_encoder(f))

    def decode(self, features: Features) -> torch.Tensor:
        return self.decoder(features)

    def fuse(self, f_ir: Features, f_vis: Features) -> Features:
        return self.fusion(f_ir, f_vis)

    def reconstruct(self, img: torch.Tensor) -> torch.Tensor:
        """Stage I autoencoder path: decode(encode(img))."""
        return self.decode(self.encode(img))

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and (ir.shape != vis.shape or ir.dim() != 4 or ir.shape[1] != 1):
            raise ValueError(f"ir and vis must both be (N, 1, H, W) of one size, got {tuple(ir.shape)} and {tuple(vis.shape)}")
        # One encoder pass over both cameras: same weights, twice the batch, better GPU occupancy.
        n = ir.shape[0]
        both = self.encode(torch.cat((ir, vis), dim=0))
        f_ir = Features(*(t[:n] for t in both))
        f_vis = Features(*(t[n:] for t in both))
        return self.decode(self.fuse(f_ir, f_vis))
