"""Contourlet transform in plain tensor ops: runs on CPU and CUDA, batches, back-propagates,
and exports to ONNX (opset 17) as ordinary Conv / ConvTranspose / Pad / Slice nodes.

Structure (Do & Vetterli's pyramidal directional filter bank):

    x ──► Laplacian pyramid ──► bandpass_j (one per level) + lowpass
                 bandpass_j ──► directional filter bank with 2**levels[j] wedges

Choice: a *decimated* Laplacian pyramid with a *non-subsampled* directional stage.

* The pyramid is decimated so each coarser level costs a quarter of the one above:
  networks that work on the subbands (``lite``) do most of their work at 1/2, 1/4 and
  1/8 resolution.  Its reconstruction ``x = bandpass + up(down(x))`` is exact by
  construction whatever the filters or image size (even, odd, tiny).
* The directional stage is not subsampled (as in NSCT).  Critically sampled DFBs
  (quincunx resampling trees) alias: once a fusion rule or a network changes the
  coefficients, the aliasing no longer cancels and shows as ringing along edges, the
  reason NSCT was proposed for fusion.  Non-subsampled wedges are shift-invariant
  within their level, need no resampling gathers, and reconstruct by a plain sum:
  the wedge filters are designed as a partition of unity in the frequency domain
  (squared-cosine angular windows, any orientation is covered by at most two
  wedges that sum to 1) and truncated by one common spatial window whose centre
  is 1, so the truncated filters still sum exactly to a unit impulse.

Conventions follow the contourlet toolbox: ``levels`` lists, from the coarsest to the
finest pyramid level, the number of directional splits (2**n wedges; 0 = bandpass
left whole).  The paper's default is ``(0, 3, 3, 3)``: four pyramid levels, the three
finer ones with 8 directions.  Subband ``d`` of a level with D wedges passes spatial
frequencies whose orientation is near ``d * pi / D`` (0 = horizontal frequency, i.e.
vertical stripes), measured from the x axis towards +y (image rows going down).

Boundaries use edge replication, which works for any image size, even 1 pixel wide.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# Burt & Adelson's binomial kernel: smooth, short and exactly symmetric.  Any low-pass
# works for the Laplacian pyramid: reconstruction is exact by construction.
PYRAMID_TAPS = np.array([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def pyramid_kernel() -> np.ndarray:
    """5x5 separable low-pass used to go down (and, times 4, to interpolate up)."""
    return np.outer(PYRAMID_TAPS, PYRAMID_TAPS)


def wedge_responses(n_dirs: int, grid: int = 128) -> np.ndarray:
    """Frequency responses (n_dirs, grid, grid) of the wedges, centred (DC at grid//2).

    Squared-cosine angular windows of half-width pi/n_dirs around d*pi/n_dirs: for any
    orientation the two nearest windows are cos^2 and sin^2 of the same angle, so all
    windows sum to exactly 1 everywhere.  At DC (no orientation) each gets 1/n_dirs.
    """
    w = np.fft.fftshift(np.fft.fftfreq(grid)) * 2 * np.pi
    wy, wx = np.meshgrid(w, w, indexing="ij")
    orientation = np.mod(np.arctan2(wy, wx), np.pi)
    half_width = np.pi / n_dirs
    out = np.empty((n_dirs, grid, grid))
    for d in range(n_dirs):
        diff = np.abs(orientation - d * half_width)
        diff = np.minimum(diff, np.pi - diff)  # orientation is modulo pi
        out[d] = np.where(diff < half_width, np.cos(0.5 * np.pi * diff / half_width) ** 2, 0.0)
    out[:, grid // 2, grid // 2] = 1.0 / n_dirs
    return out


def wedge_kernels(n_dirs: int, size: int = 11, grid: int = 128) -> np.ndarray:
    """Spatial wedge filters (n_dirs, size, size), float64, summing exactly to a unit impulse.

    Inverse FFT of each (real, even) response, cut to ``size`` x ``size`` around the
    centre and tapered by one Hann-like window whose centre value is 1: since the full
    filters sum to an impulse, the tapered ones do too.
    """
    if size % 2 != 1 or size < 3:
        raise ValueError("directional kernel size must be odd and >= 3")
    responses = wedge_responses(n_dirs, grid)
    full = np.real(np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(responses, axes=(1, 2))), axes=(1, 2)))
    c, r = grid // 2, size // 2
    cut = full[:, c - r : c + r + 1, c - r : c + r + 1]
    taper1d = np.cos(0.5 * np.pi * np.arange(-r, r + 1) / (r + 1)) ** 2
    cut = cut * np.outer(taper1d, taper1d)
    # Float rounding aside, the sum is already an impulse; make it exact for the record.
    cut[-1, r, r] += 1.0 - cut[:, r, r].sum()
    return cut


class Contourlet(nn.Module):
    """Contourlet decomposition / reconstruction of (N, channels, H, W) tensors.

    ``decompose(x)`` returns ``(lowpass, bands)`` where ``bands[j]`` belongs to pyramid level
    j (coarsest first, like ``levels``) and has shape (N, channels * 2**levels[j], Hj, Wj),
    the wedges of one channel being consecutive.  ``reconstruct(lowpass, bands)`` inverts it.
    Level j has size ceil(H / 2**(L-1-j)) x ceil(W / 2**(L-1-j)); lowpass is one halving
    below the coarsest band.
    """

    def __init__(self, channels: int = 1, levels: tuple[int, ...] = (0, 3, 3, 3), dir_kernel: int = 11):
        super().__init__()
        if not levels or any(n < 0 or n > 5 for n in levels):
            raise ValueError("levels must be a non-empty list of directional splits in 0..5")
        self.channels = channels
        self.levels = tuple(int(n) for n in levels)
        self.dir_kernel = dir_kernel
        # The pyramid kernel is separable: filter columns, then rows (10 taps instead of 25,
        # same result up to float rounding).  Per-channel copies as real buffers: an
        # expand()ed kernel fails ONNX export.
        taps = torch.tensor(PYRAMID_TAPS, dtype=torch.float32)
        self.register_buffer("pyr_v", taps.view(1, 1, 5, 1).repeat(channels, 1, 1, 1).contiguous())
        self.register_buffer("pyr_h", taps.view(1, 1, 1, 5).repeat(channels, 1, 1, 1).contiguous())
        self.register_buffer("pyr_v2", (2.0 * taps).view(1, 1, 5, 1).repeat(channels, 1, 1, 1).contiguous())
        self.register_buffer("pyr_h2", (2.0 * taps).view(1, 1, 1, 5).repeat(channels, 1, 1, 1).contiguous())
        for n in sorted(set(self.levels) - {0}):
            k = torch.tensor(wedge_kernels(2**n, dir_kernel), dtype=torch.float32).unsqueeze(1)
            self.register_buffer(f"wedges_{n}", k.repeat(channels, 1, 1, 1).contiguous())

    # -- pyramid -----------------------------------------------------------------------
    def down(self, x: torch.Tensor) -> torch.Tensor:
        """Blur and halve: (H, W) -> (ceil(H/2), ceil(W/2))."""
        c = self.channels
        x = F.conv2d(F.pad(x, (0, 0, 2, 2), mode="replicate"), self.pyr_v, stride=(2, 1), groups=c)
        return F.conv2d(F.pad(x, (2, 2, 0, 0), mode="replicate"), self.pyr_h, stride=(1, 2), groups=c)

    def up(self, low: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Interpolate ``low`` to the size of ``like`` (zero insertion + 4x blur)."""
        c = self.channels
        padded = F.pad(low, (1, 1, 1, 1), mode="replicate")
        # Zero insertion and the 4x blur, one axis at a time (2x per axis).
        up = F.conv_transpose2d(padded, self.pyr_v2, stride=(2, 1), groups=c)
        up = F.conv_transpose2d(up, self.pyr_h2, stride=(1, 2), groups=c)
        # low[i] lands at up[2i + 4]: one row of padding (2) plus the kernel centre (2).
        return up[:, :, 4 : 4 + like.shape[-2], 4 : 4 + like.shape[-1]]

    # -- directional stage --------------------------------------------------------------
    def split(self, band: torch.Tensor, n: int) -> torch.Tensor:
        """Bandpass (N, C, H, W) -> wedges (N, C * 2**n, H, W); n = 0 returns it unchanged."""
        if n == 0:
            return band
        r = self.dir_kernel // 2
        return F.conv2d(F.pad(band, (r, r, r, r), mode="replicate"), getattr(self, f"wedges_{n}"), groups=self.channels)

    def merge(self, wedges: torch.Tensor, n: int) -> torch.Tensor:
        """Wedges -> bandpass: the filters sum to an impulse, so the inverse is a sum."""
        if n == 0:
            return wedges
        b, _, h, w = wedges.shape
        return wedges.reshape(b, self.channels, 2**n, h, w).sum(dim=2)

    # -- whole transform ---------------------------------------------------------------
    def decompose(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        bands = []
        current = x
        for n in reversed(self.levels):  # finest level first
            low = self.down(current)
            bands.append(self.split(current - self.up(low, current), n))
            current = low
        return current, bands[::-1]

    def reconstruct(self, lowpass: torch.Tensor, bands: list[torch.Tensor]) -> torch.Tensor:
        current = lowpass
        for band, n in zip(bands, self.levels):  # coarsest level first
            bandpass = self.merge(band, n)
            current = bandpass + self.up(current, bandpass)
        return current

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.decompose(x)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, levels={self.levels}, dir_kernel={self.dir_kernel}"


def band_sizes(height: int, width: int, n_levels: int) -> list[tuple[int, int]]:
    """Sizes of the bands, coarsest first, for an input of height x width."""
    sizes = []
    h, w = height, width
    for _ in range(n_levels):
        sizes.append((h, w))
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return sizes[::-1]
