"""Fusion quality metrics on 8-bit gray images, one function per metric.

Every function follows the evaluation protocol the infrared/visible fusion papers share
(the ``utils/Evaluator.py`` of CDDFuse, reused by PromptFusion), so that our numbers can
sit next to published tables:

* images are 8-bit gray: BGR -> gray in float, then rounded (:func:`to_gray8`);
* no-reference metrics (EN, SD, SF, AG) score the fused image alone;
* two-source metrics (MI, SCD, VIF, Qabf, SSIM) compare the fused image with the
  infrared and the visible source; MI, VIF and SSIM are *summed* over the two sources,
  so their "perfect" value is about 2, not 1.

Each function is written from the metric's published definition; where the field's
evaluator makes a choice the paper leaves open, the docstring says which one we took
and docs/QUALITY.md lists them all.  Arrays may be any real dtype; they are read as
float64 values in 0..255.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np

# --- reading ---------------------------------------------------------------------------


def to_gray8(image: np.ndarray) -> np.ndarray:
    """An 8-bit gray or BGR(A) image -> uint8 gray, converted as the protocol does.

    The protocol converts in float32 (``cv2.cvtColor`` on a float image) and rounds.  On
    the RoadScene test pairs that differs from OpenCV's fixed-point uint8 conversion on
    about one pixel in a million (no visible effect on any metric); we keep the float path
    so the images scored are exactly the protocol's.
    """
    if image.ndim == 2:
        return image.astype(np.uint8, copy=False)
    if image.shape[2] == 1:
        return image[:, :, 0].astype(np.uint8, copy=False)
    bgr = image[:, :, :3].astype(np.float32)
    return np.round(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)).astype(np.uint8)


def _f64(image: np.ndarray) -> np.ndarray:
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D gray image, got shape {image.shape}")
    return image.astype(np.float64, copy=False)


def _check_same_shape(*images: np.ndarray) -> None:
    shapes = {im.shape for im in images}
    if len(shapes) != 1:
        raise ValueError(f"images differ in shape: {sorted(shapes)}")


# --- no-reference metrics --------------------------------------------------------------


def entropy(fused: np.ndarray) -> float:
    """EN (Roberts et al. 2008): Shannon entropy of the 256-bin gray histogram, in bits."""
    counts = np.bincount(np.asarray(fused, dtype=np.uint8).ravel(), minlength=256)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())


def standard_deviation(fused: np.ndarray) -> float:
    """SD: population standard deviation of the gray levels (contrast)."""
    return float(np.std(_f64(fused)))


def spatial_frequency(fused: np.ndarray) -> float:
    """SF (Eskicioglu & Fisher 1995): sqrt(RF^2 + CF^2), the RMS of horizontal and vertical first differences."""
    f = _f64(fused)
    row_freq_sq = np.mean(np.diff(f, axis=1) ** 2)
    col_freq_sq = np.mean(np.diff(f, axis=0) ** 2)
    return float(math.sqrt(row_freq_sq + col_freq_sq))


def average_gradient(fused: np.ndarray) -> float:
    """AG (Cui et al. 2015): mean of sqrt((Gx^2 + Gy^2) / 2).

    Gradients are central differences inside and one-sided ones on the border
    (``np.gradient``), as the protocol's evaluator computes them.
    """
    gy, gx = np.gradient(_f64(fused))
    return float(np.mean(np.sqrt((gx * gx + gy * gy) / 2.0)))


# --- mutual information ----------------------------------------------------------------


def mutual_information_pair(a: np.ndarray, b: np.ndarray) -> float:
    """I(a; b) in nats from the 256x256 joint histogram of two uint8 images."""
    _check_same_shape(a, b)
    a8 = np.asarray(a, dtype=np.uint8).ravel().astype(np.int64)
    b8 = np.asarray(b, dtype=np.uint8).ravel().astype(np.int64)
    joint = np.bincount(a8 * 256 + b8, minlength=256 * 256).reshape(256, 256).astype(np.float64)
    joint /= joint.sum()
    pa = joint.sum(axis=1, keepdims=True)
    pb = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum())


def mutual_information(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """MI (Qu et al. 2002): I(F; IR) + I(F; VIS), in nats (the protocol's unit; bits would be x1.4427)."""
    return mutual_information_pair(fused, ir) + mutual_information_pair(fused, vis)


# --- SCD -------------------------------------------------------------------------------


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    xc = x - x.mean()
    yc = y - y.mean()
    denom = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    # A constant image correlates with nothing; 0 rather than NaN keeps the means usable.
    return float((xc * yc).sum()) / denom if denom > 0 else 0.0


def scd(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SCD (Aslantas & Bavirisi 2015): corr(F - VIS, IR) + corr(F - IR, VIS).

    F - VIS is what the fused image took from IR (and vice versa); a fused image that
    carries both sources fully scores 2.
    """
    _check_same_shape(fused, ir, vis)
    f, a, b = _f64(fused), _f64(ir), _f64(vis)
    return _pearson(f - b, a) + _pearson(f - a, b)


# --- VIF -------------------------------------------------------------------------------

VIF_NOISE_VAR = 2.0  # sigma_n^2 of the HVS noise model, in squared gray levels
VIF_EPS = 1e-10


def _gaussian_window(size: int) -> np.ndarray:
    g = cv2.getGaussianKernel(size, size / 5.0, cv2.CV_64F)
    return g @ g.T  # separable and each factor sums to 1, so the window sums to 1


def filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Weighted local mean over the positions where the whole window fits ('valid' convolution).

    The windows used here are symmetric, so correlation (OpenCV) equals convolution.
    """
    r = window.shape[0] // 2
    h, w = image.shape
    if h < window.shape[0] or w < window.shape[1]:
        return np.zeros((0, 0), np.float64)
    out = cv2.filter2D(image, cv2.CV_64F, window, borderType=cv2.BORDER_REFLECT)
    return out[r : h - r, r : w - r]


def vif_pair(reference: np.ndarray, distorted: np.ndarray) -> float:
    """Pixel-domain VIF (Sheikh & Bovik 2006, multi-scale 'VIFp'): information of ``reference`` kept in ``distorted``.

    Four scales with Gaussian windows of 17, 9, 5 and 3 pixels (sigma = size/5); between
    scales both images are blurred with that scale's window and decimated by 2.  Per
    window, ``distorted ~ g * reference + noise`` is fitted; the score is
    sum log(1 + g^2 s_ref^2 / (s_v^2 + sigma_n^2)) / sum log(1 + s_ref^2 / sigma_n^2).
    1 means all information kept; contrast gain can push it above 1.  A flat
    reference (no information to keep) scores 1.  Scales smaller than their window
    (images under about 40 pixels a side) contribute nothing.
    """
    _check_same_shape(reference, distorted)
    ref, dist = _f64(reference), _f64(distorted)
    num = den = 0.0
    for scale in range(4):
        window = _gaussian_window(2 ** (4 - scale) + 1)
        if scale > 0:
            ref = filter_valid(ref, window)[::2, ::2]
            dist = filter_valid(dist, window)[::2, ::2]
        mu1, mu2 = filter_valid(ref, window), filter_valid(dist, window)
        if mu1.size == 0:
            break
        s1 = np.maximum(filter_valid(ref * ref, window) - mu1 * mu1, 0.0)
        s2 = np.maximum(filter_valid(dist * dist, window) - mu2 * mu2, 0.0)
        s12 = filter_valid(ref * dist, window) - mu1 * mu2

        gain = s12 / (s1 + VIF_EPS)
        sv = s2 - gain * s12
        flat_ref = s1 < VIF_EPS  # nothing to transmit: all of the distorted variance is noise
        gain[flat_ref] = 0.0
        sv[flat_ref] = s2[flat_ref]
        s1[flat_ref] = 0.0
        flat_dist = s2 < VIF_EPS  # nothing received
        gain[flat_dist] = 0.0
        sv[flat_dist] = 0.0
        negative = gain < 0  # anti-correlated: treat as no gain, all variance as noise
        sv[negative] = s2[negative]
        gain[negative] = 0.0
        sv = np.maximum(sv, VIF_EPS)

        num += float(np.log10(1.0 + gain * gain * s1 / (sv + VIF_NOISE_VAR)).sum())
        den += float(np.log10(1.0 + s1 / VIF_NOISE_VAR).sum())
    return num / den if den > 0 else 1.0


def vif(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """VIF of the protocol: VIFp(IR -> F) + VIFp(VIS -> F)."""
    return vif_pair(ir, fused) + vif_pair(vis, fused)


# --- Qabf ------------------------------------------------------------------------------

# Xydeas & Petrovic (2000) sigmoid constants for edge strength (g) and orientation (a).
QABF_TG, QABF_KG, QABF_DG = 0.9994, -15.0, 0.5
QABF_TA, QABF_KA, QABF_DA = 0.9879, -22.0, 0.8


def sobel_strength_orientation(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """3x3 Sobel edge strength and orientation arctan(sy/sx) (pi/2 where sx = 0); zero padding outside.

    Sign convention of the protocol: sx is the true convolution with [-1 0 1] rows, i.e.
    minus OpenCV's Sobel x (which correlates); sy equals OpenCV's Sobel y.  Flipping one
    sign flips every orientation except the pi/2 given to pixels with sx = 0, so the
    convention shows in the score (by about 3e-4 on TNO).
    """
    f = _f64(image)
    sx = -cv2.Sobel(f, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    sy = cv2.Sobel(f, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    strength = np.sqrt(sx * sx + sy * sy)
    orientation = np.full_like(f, math.pi / 2)
    nz = sx != 0
    orientation[nz] = np.arctan(sy[nz] / sx[nz])
    return strength, orientation


def _edge_preservation(g_src: np.ndarray, a_src: np.ndarray, g_f: np.ndarray, a_f: np.ndarray) -> np.ndarray:
    """Q^{SF}: per-pixel preservation of edge strength and orientation from a source into F."""
    lo, hi = np.minimum(g_src, g_f), np.maximum(g_src, g_f)
    # min/max is the paper's "g_F/g_A or g_A/g_F, whichever is <= 1"; where both are 0 the
    # pixel has weight g_src = 0 in the sum, so any value will do.
    strength_ratio = np.divide(lo, hi, out=np.zeros_like(hi), where=hi > 0)
    orientation_match = 1.0 - np.abs(a_src - a_f) / (math.pi / 2)
    q_g = QABF_TG / (1.0 + np.exp(QABF_KG * (strength_ratio - QABF_DG)))
    q_a = QABF_TA / (1.0 + np.exp(QABF_KA * (orientation_match - QABF_DA)))
    return q_g * q_a


def qabf(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """Q^{AB/F} (Xydeas & Petrovic 2000): edge information carried from the sources, weighted by source edge strength (L = 1)."""
    _check_same_shape(fused, ir, vis)
    g_a, a_a = sobel_strength_orientation(ir)
    g_b, a_b = sobel_strength_orientation(vis)
    g_f, a_f = sobel_strength_orientation(fused)
    weight = float((g_a + g_b).sum())
    if weight == 0:
        return 0.0  # two flat sources: no edges to preserve
    kept = _edge_preservation(g_a, a_a, g_f, a_f) * g_a + _edge_preservation(g_b, a_b, g_f, a_f) * g_b
    return float(kept.sum()) / weight


# --- SSIM ------------------------------------------------------------------------------

SSIM_WINDOW = 7
# The protocol calls scikit-image 0.19's structural_similarity on float arrays holding
# 0..255 and passes no data_range; that version then takes the float dtype's nominal range
# [-1, 1], i.e. data_range = 2.  The stabilising constants C1, C2 are therefore tiny, and
# matching published SSIM tables requires the same value (data_range=255 reads lower).
SSIM_PROTOCOL_DATA_RANGE = 2.0


def ssim_pair(a: np.ndarray, b: np.ndarray, data_range: float = SSIM_PROTOCOL_DATA_RANGE) -> float:
    """Mean SSIM (Wang et al. 2004) as scikit-image computes it by default.

    7x7 uniform window, sample (N-1) covariances, K1 = 0.01, K2 = 0.03, mean over the
    positions where the window fits entirely.
    """
    _check_same_shape(a, b)
    x, y = _f64(a), _f64(b)
    n = SSIM_WINDOW * SSIM_WINDOW
    cov_norm = n / (n - 1.0)

    def local_mean(img: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(img, cv2.CV_64F, (SSIM_WINDOW, SSIM_WINDOW), normalize=True, borderType=cv2.BORDER_REFLECT)

    ux, uy = local_mean(x), local_mean(y)
    vx = cov_norm * (local_mean(x * x) - ux * ux)
    vy = cov_norm * (local_mean(y * y) - uy * uy)
    vxy = cov_norm * (local_mean(x * y) - ux * uy)
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    pad = SSIM_WINDOW // 2  # border values depend on the padding rule; drop them
    return float(s[pad:-pad, pad:-pad].mean())


def ssim(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> float:
    """SSIM of the protocol: SSIM(F, IR) + SSIM(F, VIS)."""
    return ssim_pair(fused, ir) + ssim_pair(fused, vis)


# --- all at once -----------------------------------------------------------------------


@dataclass(frozen=True)
class Scores:
    """One fused image's scores, in the order the published tables use (plus AG)."""

    EN: float
    SD: float
    SF: float
    AG: float
    MI: float
    SCD: float
    VIF: float
    Qabf: float
    SSIM: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


METRIC_NAMES: tuple[str, ...] = tuple(Scores.__dataclass_fields__)


def score_all(fused: np.ndarray, ir: np.ndarray, vis: np.ndarray) -> Scores:
    """Every metric for one fused image and its two sources (all uint8 gray, same shape)."""
    _check_same_shape(fused, ir, vis)
    return Scores(
        EN=entropy(fused),
        SD=standard_deviation(fused),
        SF=spatial_frequency(fused),
        AG=average_gradient(fused),
        MI=mutual_information(fused, ir, vis),
        SCD=scd(fused, ir, vis),
        VIF=vif(fused, ir, vis),
        Qabf=qabf(fused, ir, vis),
        SSIM=ssim(fused, ir, vis),
    )
