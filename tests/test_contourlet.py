"""The contourlet transform: exact reconstruction, directional selectivity, agreement with
an independent numpy implementation, gradients, and ONNX Runtime parity."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from pf_stream.model.contourlet import Contourlet, band_sizes, wedge_kernels
from tests.contourlet_numpy import decompose as np_decompose


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("size", [(64, 64), (65, 37), (128, 97), (7, 9), (3, 2)])
@pytest.mark.parametrize("levels", [(0, 3, 3, 3), (3, 3, 0), (2, 4)])
def test_reconstruction_random(size, levels):
    torch.manual_seed(0)
    c = Contourlet(channels=3, levels=levels)
    x = torch.rand(2, 3, *size)
    low, bands = c.decompose(x)
    assert [tuple(b.shape[-2:]) for b in bands] == band_sizes(*size, len(levels))
    assert [b.shape[1] for b in bands] == [3 * 2**n for n in levels]
    assert rel_err(c.reconstruct(low, bands), x) <= 1e-5


def test_reconstruction_real_images(shared_data):
    c = Contourlet()
    for rel in ["tno/ir/01.png", "tno/vi/07.png", "roadscene/ir/FLIR_00006.jpg", "msrs_test/vi/00004N.png"]:
        path = shared_data / rel
        if not path.exists():  # names differ between data snapshots: take the first file there
            path = sorted(path.parent.iterdir())[0]
        img = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        x = torch.from_numpy(img).float()[None, None] / 255.0
        low, bands = c.decompose(x)
        assert rel_err(c.reconstruct(low, bands), x) <= 1e-5, path
        # and odd sizes cut from the real image
        y = x[..., : x.shape[-2] // 2 * 2 - 1, : x.shape[-1] // 2 * 2 - 3]
        assert rel_err(c.reconstruct(*c.decompose(y)), y) <= 1e-5


def test_wedges_sum_to_impulse():
    for n in (1, 2, 3, 4):
        k = wedge_kernels(2**n, 11)
        impulse = np.zeros((11, 11))
        impulse[5, 5] = 1.0
        assert np.abs(k.sum(axis=0) - impulse).max() < 1e-12


@pytest.mark.parametrize("angle_deg", np.arange(0.0, 180.0, 11.25))
def test_directional_selectivity(angle_deg):
    """A grating's band-pass energy lands in the one or two wedges around its orientation."""
    c = Contourlet(levels=(3, 3, 3))
    n = 256
    yy, xx = np.mgrid[0:n, 0:n]
    theta = math.radians(angle_deg)
    freq = 2 * math.pi * 0.18  # cycles/pixel, inside the finest level's band
    img = np.cos(freq * (math.cos(theta) * xx + math.sin(theta) * yy))
    _, bands = c.decompose(torch.tensor(img, dtype=torch.float32)[None, None])
    energy = np.zeros(8)
    for band in bands:
        m = band.shape[-1] // 16  # ignore the borders, where edge replication bends stripes
        energy += (band[0, :, m:-m, m:-m] ** 2).sum(dim=(1, 2)).numpy()
    best_pair = max(energy[i] + energy[(i + 1) % 8] for i in range(8))
    assert best_pair / energy.sum() >= 0.6
    # and the right pair: the wedge nearest the grating's orientation is one of the two
    expected = int(round(angle_deg / 22.5)) % 8
    top2 = set(np.argsort(energy)[-2:])
    assert expected in top2


@pytest.mark.parametrize("size", [(40, 56), (33, 47)])
def test_matches_numpy_float64(size):
    rng = np.random.default_rng(1)
    img = rng.random(size)
    c = Contourlet(levels=(0, 3, 3, 3)).double()
    low, bands = c.decompose(torch.from_numpy(img)[None, None])
    ref_low, ref_bands = np_decompose(img, levels=(0, 3, 3, 3))
    assert np.abs(low[0].numpy() - ref_low).max() < 1e-10
    for got, ref in zip(bands, ref_bands):
        assert got[0].shape == ref.shape
        assert np.abs(got[0].numpy() - ref).max() < 1e-10


def test_backpropagates():
    c = Contourlet(channels=2)
    x = torch.rand(1, 2, 31, 29, requires_grad=True)
    low, bands = c.decompose(x)
    loss = low.square().sum() + sum(b.abs().sum() for b in bands)
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_onnx_runtime_matches(tmp_path):
    import onnxruntime as ort

    class RoundTrip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c = Contourlet()

        def forward(self, x):
            low, bands = self.c.decompose(x)
            return (self.c.reconstruct(low, bands), low, *bands)

    model = RoundTrip().eval()
    path = tmp_path / "contourlet.onnx"
    axes = {0: "n", 2: "h", 3: "w"}
    torch.onnx.export(model, (torch.rand(1, 1, 64, 64),), str(path), opset_version=17, dynamo=False,
                      input_names=["x"], dynamic_axes={"x": axes})
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for h, w in [(64, 64), (77, 51)]:
        x = torch.rand(1, 1, h, w)
        expected = [t.numpy() for t in model(x)]
        got = session.run(None, {"x": x.numpy()})
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.shape == e.shape
            assert np.abs(g - e).max() <= 1e-5
