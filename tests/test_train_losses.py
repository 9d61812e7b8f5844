"""pf-train losses on tiny inputs, and the bi-level schedule."""

from __future__ import annotations

import pytest
import torch

from pf_stream.train.bilevel import BdaSchedule
from pf_stream.train.losses import (
    CompositeTarget,
    FusionLoss,
    FusionLossConfig,
    decomposition_loss,
    reconstruction_loss,
    fit_range,
    salient_lowpass,
    ssim,
)


def _images(seed=0, n=2, size=32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g), torch.rand(n, 1, size, size, generator=g)


def test_composite_target_is_the_ir_image_when_vis_is_black():
    ir, _ = _images()
    target = CompositeTarget(gain=1.0)(ir, torch.zeros_like(ir))
    assert torch.allclose(target, ir, atol=1e-5)


def test_fit_range_centres_each_image_and_squeezes_only_when_too_wide():
    ir, _ = _images()
    pct = lambda t, q: t.flatten(1).quantile(q, dim=1)
    narrow = 0.5 * ir + 0.8  # span 0.5, above the range: moved down, contrast kept
    moved = fit_range(narrow)
    assert torch.allclose(moved - narrow, (moved - narrow).flatten(1)[:, :1, None, None].expand_as(moved), atol=1e-5)
    assert torch.allclose((pct(moved, 0.005) + pct(moved, 0.995)) / 2, torch.full((2,), 0.5), atol=1e-5)
    wide = 2.0 * ir - 0.5  # span 2: squeezed into [0, 1], order kept
    fitted = fit_range(wide)
    assert torch.allclose(pct(fitted, 0.005), torch.zeros(2), atol=1e-5) and torch.allclose(pct(fitted, 0.995), torch.ones(2), atol=1e-5)
    assert torch.equal(fitted.flatten(1).argsort(dim=1), wide.flatten(1).argsort(dim=1))


def test_fit_range_takes_bf16_lowpass():
    """Under bf16 autocast on a GPU the lowpass arrives in bf16, which torch.quantile refuses
    (found on an H200, session 11: pf-train --set run.precision=bf16 failed at its first step)."""
    ir, _ = _images()
    low = (2.0 * ir - 0.5).bfloat16()
    fitted = fit_range(low)
    assert torch.allclose(fitted, fit_range(low.float()), atol=1e-6)


def test_composite_target_with_fit_keeps_a_hot_target_in_a_dark_visible_region():
    """A bright VIS half over a dark IR frame: the clip used to erase the hot object in the dark half."""
    ir = torch.full((1, 1, 64, 64), 0.1)
    ir[..., 16:48, 4:28] = 0.4  # the hot object, where the VIS camera sees only darkness
    vis = torch.full((1, 1, 64, 64), 0.1)
    vis[..., 32:] = 0.9
    contrast = lambda t: float(t[..., 26:38, 10:22].mean() - t[..., 2:10, 4:28].mean())
    clipped, fitted = contrast(CompositeTarget(gain=1.0)(ir, vis)), contrast(CompositeTarget(gain=1.0, fit=True)(ir, vis))
    assert fitted > 0.25 and fitted > 2 * clipped, (clipped, fitted)  # the object is 0.3 above its surround


def test_salient_lowpass_follows_the_locally_stronger_camera():
    """IR sees an object on the left, VIS one on the right; the same faint texture is then
    added to one camera at a time.  In the additive base it moves the target equally
    whichever camera carries it; in the salient lowpass the object's own camera weighs
    clearly more, on both sides.  With power 0 the rule is exactly the additive base."""
    y, x = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    bump = lambda cx: torch.exp(-((x - cx) ** 2 + y**2) / 0.05)[None, None]
    ir, vis = 0.3 + 0.5 * bump(-0.5), 0.6 + 0.5 * bump(0.5)
    texture = 0.03 * torch.sin(6 * y)[None, None]
    additive = lambda a, b: a + b - b.mean()
    assert torch.allclose(salient_lowpass(ir + texture, vis, power=0.0), additive(ir + texture, vis), atol=1e-6)
    left, right = (..., slice(10, 22), slice(4, 12)), (..., slice(10, 22), slice(20, 28))
    for rule, lo, hi in ((additive, 0.99, 1.01), (salient_lowpass, 1.5, 10.0)):
        via_ir = rule(ir + texture, vis) - rule(ir, vis)
        via_vis = rule(ir, vis + texture) - rule(ir, vis)
        assert lo < float(via_ir[left].std() / via_vis[left].std()) < hi
        assert lo < float(via_vis[right].std() / via_ir[right].std()) < hi


def test_composite_target_salient_option_and_unknown_name():
    from pf_stream.errors import UserError

    ir, vis = _images()
    loss = FusionLoss(FusionLossConfig(target="contourlet", target_low="salient", target_low_power=0.0))
    assert torch.allclose(loss.intensity_target(ir, vis), CompositeTarget()(ir, vis), atol=1e-5)
    assert not torch.allclose(CompositeTarget(low="salient")(ir, vis), CompositeTarget()(ir, vis), atol=1e-3)
    with pytest.raises(UserError, match="target_low 'salinet'.*did you mean 'salient'"):
        CompositeTarget(low="salinet")


def test_fusion_loss_prefers_its_target_and_reports_every_term():
    ir, vis = _images()
    loss = FusionLoss(FusionLossConfig(target="contourlet", target_gradient=10, ssim=0.5, contrast=1.0))
    at_target, terms = loss(loss.intensity_target(ir, vis), ir, vis)
    flat, _ = loss(torch.full_like(ir, 0.5), ir, vis)
    assert set(terms) == {"intensity", "target_gradient", "gradient", "ssim", "contrast"}
    assert terms["intensity"] == pytest.approx(0.0, abs=1e-6)
    assert float(at_target) < float(flat)


def test_max_target_and_gradient_term():
    ir, vis = _images()
    loss = FusionLoss(FusionLossConfig(target="max", ssim=0.0))
    _, terms = loss(torch.maximum(ir, vis), ir, vis)
    assert terms["intensity"] == pytest.approx(0.0, abs=1e-7)
    assert terms["gradient"] > 0  # max(ir, vis) does not keep every strongest edge
    fused = torch.maximum(ir, vis).requires_grad_()
    total, _ = loss(fused, ir, vis)
    total.backward()
    assert fused.grad is not None and float(fused.grad.abs().sum()) > 0


def test_unknown_target_is_a_user_error():
    from pf_stream.errors import UserError

    with pytest.raises(UserError, match="unknown loss target"):
        FusionLoss(FusionLossConfig(target="mean"))


def test_stage1_losses():
    ir, vis = _images()
    assert float(ssim(ir, ir)) == pytest.approx(1.0, abs=1e-4)
    assert float(reconstruction_loss(ir, ir)) == pytest.approx(0.0, abs=1e-4)
    assert float(reconstruction_loss(vis, ir)) > 0.1
    base = torch.randn(2, 4, 8, 8)
    shared_detail = torch.randn(2, 4, 8, 8)
    same = decomposition_loss(base, base, shared_detail, shared_detail)
    different = decomposition_loss(base, base, shared_detail, torch.randn(2, 4, 8, 8))
    assert float(different) < float(same)


def test_bda_schedule_converges():
    s = BdaSchedule(alpha0=0.5, half_life=100, upper_every=2)
    assert s.alpha(0) == 0.5 and s.alpha(100) == pytest.approx(0.25)
    values = [s.alpha(k) for k in range(0, 100000, 1000)]
    assert all(a > b for a, b in zip(values, values[1:])) and values[-1] < 0.001
    w_f, w_F = s.lower_weights(0)
    assert w_f + w_F == pytest.approx(1.0)
    assert [s.upper_step_due(k) for k in range(4)] == [True, False, True, False]
    with pytest.raises(ValueError):
        BdaSchedule(alpha0=1.0)
