"""Each fusion metric on tiny hand-computed images, and against scikit-image / SciPy where they compute the same thing."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from scipy.signal import convolve2d
from skimage.measure import shannon_entropy
from skimage.metrics import structural_similarity

from pf_stream.quality import metrics as M


def smooth_image(seed: int, shape=(64, 80)) -> np.ndarray:
    """Random but image-like (spatially correlated) uint8 content."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(128, 60, shape).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 256, 0, 255).round().astype(np.uint8)


# --- reading ---------------------------------------------------------------------------


def test_to_gray8_follows_the_float_conversion_and_keeps_gray_exact():
    bgr = np.array([[[255, 0, 0], [0, 0, 255], [0, 255, 0], [10, 20, 30]]], np.uint8)
    # 0.114*255 = 29.07, 0.299*255 = 76.245, 0.587*255 = 149.685, 0.114*10+0.587*20+0.299*30 = 21.86
    assert M.to_gray8(bgr).tolist() == [[29, 76, 150, 22]]
    gray = smooth_image(0)
    assert np.array_equal(M.to_gray8(gray), gray)
    assert np.array_equal(M.to_gray8(np.dstack([gray] * 3)), gray)


# --- no-reference metrics --------------------------------------------------------------


def test_entropy_hand_values_and_skimage():
    assert M.entropy(np.full((4, 4), 7, np.uint8)) == 0.0
    assert M.entropy(np.array([[0, 255], [0, 255]], np.uint8)) == pytest.approx(1.0)
    assert M.entropy(np.array([[0, 1], [2, 3]], np.uint8)) == pytest.approx(2.0)
    img = smooth_image(1)
    assert M.entropy(img) == pytest.approx(shannon_entropy(img, base=2), abs=1e-12)


def test_standard_deviation_and_spatial_frequency_by_hand():
    img = np.array([[0, 2], [0, 2]], np.uint8)
    assert M.standard_deviation(img) == pytest.approx(1.0)
    # horizontal differences are all 2, vertical ones 0: sqrt(4 + 0)
    assert M.spatial_frequency(img) == pytest.approx(2.0)
    # 3x3: row diffs [1,1],[1,1],[1,1] -> mean 1; column diffs all 3 -> mean 9
    ramp = np.array([[0, 1, 2], [3, 4, 5], [6, 7, 8]], np.uint8)
    assert M.spatial_frequency(ramp) == pytest.approx(math.sqrt(10.0))


def test_average_gradient_by_hand():
    x = np.tile(np.arange(0, 20, 2, dtype=np.uint8), (6, 1))  # slope 2 across, 0 down
    assert M.average_gradient(x) == pytest.approx(math.sqrt(4 / 2))
    diag = np.add.outer(np.arange(6), np.arange(9)).astype(np.uint8)  # slope 1 both ways
    assert M.average_gradient(diag) == pytest.approx(1.0)


# --- MI --------------------------------------------------------------------------------


def test_mutual_information_by_hand():
    a = np.array([[0, 0], [9, 9]], np.uint8)  # one bit of information
    b = np.array([[0, 9], [0, 9]], np.uint8)  # independent of a
    assert M.mutual_information_pair(a, a) == pytest.approx(math.log(2))  # nats
    assert M.mutual_information_pair(a, b) == pytest.approx(0.0, abs=1e-15)
    assert M.mutual_information(a, a, b) == pytest.approx(math.log(2))


def test_mutual_information_equals_entropy_identity_with_skimage():
    # I(A;B) = H(A) + H(B) - H(A,B); skimage's shannon_entropy counts distinct values.
    a = smooth_image(2)
    b = np.clip(a.astype(int) // 2 + smooth_image(3) // 2, 0, 255).astype(np.uint8)
    joint = a.astype(np.int64) * 256 + b
    expected = shannon_entropy(a, base=math.e) + shannon_entropy(b, base=math.e) - shannon_entropy(joint, base=math.e)
    assert M.mutual_information_pair(a, b) == pytest.approx(expected, abs=1e-9)
    assert expected > 0.1


# --- SCD -------------------------------------------------------------------------------


def test_scd_is_two_when_fused_carries_both_sources_fully():
    a = smooth_image(4) // 2
    b = smooth_image(5) // 2
    assert M.scd(a + b, a, b) == pytest.approx(2.0)


def test_scd_constant_difference_counts_as_no_correlation():
    a, b = smooth_image(6), smooth_image(7)
    # F = A: F - A is constant (contributes 0), F - B correlates with A partly.
    value = M.scd(a, a, b)
    assert math.isfinite(value) and 0.0 < value < 1.0


# --- VIF -------------------------------------------------------------------------------


def test_filter_valid_matches_scipy_valid_convolution():
    img = smooth_image(8).astype(np.float64)
    window = M._gaussian_window(17)
    assert window.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(M.filter_valid(img, window), convolve2d(img, window, mode="valid"), atol=1e-9)
    assert M.filter_valid(img[:10, :10], window).size == 0


def test_vif_pair_properties():
    ref = smooth_image(9).astype(np.float64)
    assert M.vif_pair(ref, ref) == pytest.approx(1.0)
    assert M.vif_pair(ref, ref + 20) == pytest.approx(1.0)  # a brightness shift loses no information
    assert M.vif_pair(ref, np.full_like(ref, 100)) == 0.0  # a flat image carries nothing
    assert M.vif_pair(ref, 2 * ref) > 1.0  # contrast gain reads as more than the reference
    blurred = cv2.GaussianBlur(ref, (0, 0), 2.0)
    assert 0.0 < M.vif_pair(ref, blurred) < 0.9
    assert M.vif_pair(np.full_like(ref, 50), ref) == 1.0  # nothing to keep: defined as 1


def test_vif_sums_over_both_sources():
    a, b = smooth_image(10), smooth_image(11)
    assert M.vif(a, a, b) == pytest.approx(1.0 + M.vif_pair(b, a))


# --- Qabf ------------------------------------------------------------------------------

Q_PERFECT = 0.9994 / (1 + math.exp(-15 * (1 - 0.5))) * 0.9879 / (1 + math.exp(-22 * (1 - 0.8)))


def test_sobel_matches_scipy_convolution_with_protocol_signs():
    img = smooth_image(12).astype(np.float64)
    strength, orientation = M.sobel_strength_orientation(img)
    sx = convolve2d(img, np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float), mode="same")
    sy = convolve2d(img, np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], float), mode="same")
    np.testing.assert_allclose(strength, np.hypot(sx, sy), atol=1e-9)
    nz = sx != 0
    np.testing.assert_allclose(orientation[nz], np.arctan(sy[nz] / sx[nz]), atol=1e-12)
    assert np.all(orientation[~nz] == math.pi / 2)


def test_sobel_step_edge_by_hand():
    step = np.zeros((5, 6), np.uint8)
    step[:, 3:] = 10
    strength, orientation = M.sobel_strength_orientation(step)
    # interior rows, columns 2 and 3 straddle the edge: (1 + 2 + 1) * 10 horizontally, nothing vertically
    assert strength[2, 2] == strength[2, 3] == 40.0
    assert orientation[2, 2] == 0.0
    assert strength[2, 0] == 0.0 and orientation[2, 0] == math.pi / 2


def test_qabf_by_hand():
    a, b = smooth_image(13), smooth_image(14)
    assert M.qabf(a, a, a) == pytest.approx(Q_PERFECT)
    # an all-zero second source has no edges (the border is zero-padded, so only 0 is truly
    # flat), hence no weight: F = A scores the perfect value
    assert M.qabf(a, a, np.zeros_like(a)) == pytest.approx(Q_PERFECT)
    assert M.qabf(a, a, np.full_like(a, 9)) < Q_PERFECT  # 9 has edges against the zero padding
    assert M.qabf(np.full_like(a, 9), a, b) < 0.01
    assert 0.0 < M.qabf(((a.astype(int) + b) // 2).astype(np.uint8), a, b) < Q_PERFECT


# --- SSIM ------------------------------------------------------------------------------


@pytest.mark.parametrize("data_range", [M.SSIM_PROTOCOL_DATA_RANGE, 255.0])
def test_ssim_matches_skimage(data_range):
    a, b = smooth_image(15).astype(np.float64), smooth_image(16).astype(np.float64)
    expected = structural_similarity(a, b, data_range=data_range)
    assert M.ssim_pair(a, b, data_range=data_range) == pytest.approx(expected, abs=1e-9)


def test_ssim_identity_and_protocol_sum():
    a, b = smooth_image(17), smooth_image(18)
    assert M.ssim_pair(a, a) == pytest.approx(1.0)
    assert M.ssim(a, a, b) == pytest.approx(1.0 + M.ssim_pair(a, b))


# --- together --------------------------------------------------------------------------


def test_score_all_names_and_shape_check():
    a, b = smooth_image(19), smooth_image(20)
    scores = M.score_all(np.maximum(a, b), a, b)
    assert tuple(scores.as_dict()) == M.METRIC_NAMES == ("EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM")
    assert all(math.isfinite(v) for v in scores.as_dict().values())
    with pytest.raises(ValueError, match="differ in shape"):
        M.score_all(a, a, b[:-1])
