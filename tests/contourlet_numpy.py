"""An independent float64 numpy implementation of the contourlet transform, for tests.

It shares only the filter design (pyramid_kernel, wedge_kernels) with the torch module
and computes every convolution, decimation and interpolation its own way: explicit
sliding windows, zero insertion, and numpy edge padding.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from pf_stream.model.contourlet import pyramid_kernel, wedge_kernels


def as_stored(kernel: np.ndarray) -> np.ndarray:
    """The filters as the torch module stores them (float32 buffers), computed in float64."""
    return kernel.astype(np.float32).astype(np.float64)


def correlate_same(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """'same'-size correlation with edge replication."""
    r = kernel.shape[0] // 2
    windows = sliding_window_view(np.pad(img, r, mode="edge"), kernel.shape)
    return np.einsum("ijkl,kl->ij", windows, kernel)


def down(img: np.ndarray) -> np.ndarray:
    return correlate_same(img, as_stored(pyramid_kernel()))[::2, ::2]


def up(low: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    # Zero insertion on a grid one sample larger on each side (edge-replicated low),
    # then 4x the blur: interpolation in the textbook Laplacian-pyramid way.
    padded = np.pad(low, 1, mode="edge")
    zeros = np.zeros((2 * padded.shape[0] + 3, 2 * padded.shape[1] + 3))
    zeros[2 : 2 + 2 * padded.shape[0] : 2, 2 : 2 + 2 * padded.shape[1] : 2] = padded
    k = as_stored(4.0 * pyramid_kernel())
    windows = sliding_window_view(np.pad(zeros, 2), k.shape)
    full = np.einsum("ijkl,kl->ij", windows, k[::-1, ::-1])
    return full[4 : 4 + shape[0], 4 : 4 + shape[1]]


def decompose(img: np.ndarray, levels=(0, 3, 3, 3), dir_kernel: int = 11):
    bands = []
    current = img.astype(np.float64)
    for n in reversed(levels):
        low = down(current)
        bandpass = current - up(low, current.shape)
        if n == 0:
            bands.append(bandpass[None])
        else:
            bands.append(np.stack([correlate_same(bandpass, k) for k in as_stored(wedge_kernels(2**n, dir_kernel))]))
        current = low
    return current, bands[::-1]
