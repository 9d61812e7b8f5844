"""Models behind the registry: contract (shapes, range, any size), determinism, weights
files (safetensors round trip, mismatches, pickles refused), and the classic rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from pf_stream.errors import UserError
from pf_stream.model.registry import build_model, count_gmac, count_params, load_model
from pf_stream.model.weights import WeightsMeta, save_weights

LEARNED = ["lite", "full"]


@pytest.mark.parametrize("name", ["classic", "lite", "full"])
@pytest.mark.parametrize("shape", [(1, 1, 37, 53), (2, 1, 64, 48)])
def test_contract_any_size_in_unit_range(name, shape):
    model, _ = load_model(name)
    torch.manual_seed(0)
    ir, vis = torch.rand(shape), torch.rand(shape)
    with torch.no_grad():
        out = model(ir, vis)
    assert out.shape == shape
    assert out.dtype == torch.float32
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["lite", "full"])
def test_each_frame_of_a_batch_fused_on_its_own(name):
    """A batch of frames gives each frame's own result: lite stacks IR and VIS on the batch axis
    inside (one contourlet transform for both cameras) and must split them back frame by frame."""
    model, _ = load_model(name)
    torch.manual_seed(1)
    ir, vis = torch.rand(3, 1, 40, 56), torch.rand(3, 1, 40, 56)
    with torch.no_grad():
        batch = model(ir, vis)
        alone = torch.cat([model(ir[i : i + 1], vis[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, alone, atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])  # frames differ, so a mix-up would show


def test_lite_budget_at_640x512():
    model = build_model("lite")
    assert count_params(model) <= 1_000_000
    assert count_gmac(model, 512, 640) <= 3.0


@pytest.mark.parametrize("name", LEARNED)
def test_deterministic_initial_weights(name):
    a, b = build_model(name, seed=3), build_model(name, seed=3)
    c = build_model(name, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point() and sa[k].numel() > 1)


def test_classic_takes_the_stronger_detail():
    """A sharp edge seen by one camera only survives fusion; flat regions average."""
    model, _ = load_model("classic")
    ir = torch.full((1, 1, 64, 64), 0.5)
    vis = torch.full((1, 1, 64, 64), 0.3)
    vis[..., :, 32:] = 0.7  # a vertical edge only in the visible image
    with torch.no_grad():
        out = model(ir, vis)[0, 0]
    edge = float((out[:, 1:] - out[:, :-1]).max())
    assert edge > 0.8 * 0.4  # the VIS edge (0.4 high) stays sharp; averaging would give 0.2
    assert abs(float(out.mean()) - 0.5) < 0.05  # brightness averaged: (0.5 + 0.5) / 2


def test_weights_round_trip(tmp_path):
    model = build_model("lite", seed=7)
    path = save_weights(model, tmp_path / "lite.safetensors", WeightsMeta(model="lite", trained={"steps": 1}))
    assert json.loads(path.with_suffix(".json").read_text())["model"] == "lite"
    loaded, info = load_model("lite", path)
    assert info.trained and info.meta == {"steps": 1}
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        assert torch.equal(loaded(x, x), model.eval()(x, x))
    # Readable by whoever may read the folder (a service user), like any file the user writes:
    # safetensors' own writer made it 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_weights_for_another_model_refused(tmp_path):
    path = save_weights(build_model("lite"), tmp_path / "w.safetensors", WeightsMeta(model="lite"))
    with pytest.raises(UserError, match="for model 'lite'"):
        load_model("full", path)


def test_weights_with_wrong_shapes_refused(tmp_path):
    small = build_model("lite", {"widths": [8, 8]})
    path = save_weights(small, tmp_path / "w.safetensors", WeightsMeta(model="lite"))  # config not recorded
    with pytest.raises(UserError, match="has shape"):
        load_model("lite", path)


def test_pickle_refused_without_trust(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(build_model("lite").state_dict(), path)
    with pytest.raises(UserError, match="--trust-pickle"):
        load_model("lite", path)
    model, info = load_model("lite", path, trust_pickle=True)
    assert info.trained


def test_unknown_model_suggests():
    with pytest.raises(UserError, match="did you mean 'lite'"):
        load_model("lte")


def test_missing_weights_cli_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pf_stream.cli.bench", "--model", "lite", "--weights", str(tmp_path / "nope.safetensors"),
         "--iters", "1", "--size", "64x64"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "not found" in proc.stderr.strip().splitlines()[-1]


def test_colour_helpers_keep_vis_chroma():
    from pf_stream.model.colour import merge_luma_chroma, split_luma_chroma

    rng = np.random.default_rng(0)
    vis = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    y, chroma = split_luma_chroma(vis)
    back = merge_luma_chroma(y, chroma)
    assert np.abs(back.astype(int) - vis.astype(int)).max() <= 3  # YCrCb round trip in 8 bits
    gray_y, none = split_luma_chroma(vis[:, :, 0])
    assert none is None and gray_y.shape == (20, 30)
    assert merge_luma_chroma(gray_y, None).shape == (20, 30, 3)
