"""CLIP prompt learning on a tiny open_clip model with random weights (the real code path)."""

from __future__ import annotations

import pytest
import torch

from pf_stream.errors import UserError
from pf_stream.train.clip_prompts import PromptLearner, PromptLoss, load_clip
from tests.train_helpers import tiny_clip


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip"))


def test_prompt_learner_shapes_and_only_context_is_learned(clip_files):
    cfg, weights = clip_files
    clip = load_clip(str(cfg), weights)
    learner = PromptLearner(clip, "harmonious fusion, clear texture, striking targets", "blurry fusion", n_ctx=3)
    text = learner.text_features()
    assert text.shape == (2, 32)
    assert torch.allclose(text.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert [name for name, _ in learner.named_parameters()] == ["ctx"]
    assert learner.ctx.shape == (2, 3, 32)
    assert not any(p.requires_grad for p in clip.parameters())


def test_prompt_loss_decreases_on_a_toy_problem(clip_files):
    torch.manual_seed(0)
    cfg, weights = clip_files
    clip = load_clip(str(cfg), weights)
    learner = PromptLearner(clip, "harmonious fusion", "disharmonious fusion", n_ctx=4)
    loss = PromptLoss(learner, temperature=0.07)
    fused = torch.rand(4, 1, 32, 32)
    opt = torch.optim.Adam(learner.parameters(), lr=1e-2)
    first = float(loss.prompt_loss(fused).loss.detach())
    for _ in range(8):
        out = loss.prompt_loss(fused)
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    assert float(loss.prompt_loss(fused).loss.detach()) < first

    # The fusion side sends gradients to the image only, never to the prompts.
    image = fused.clone().requires_grad_()
    learner.zero_grad()
    loss.fusion_loss(image).loss.backward()
    assert image.grad is not None and float(image.grad.abs().sum()) > 0
    assert learner.ctx.grad is None or float(learner.ctx.grad.abs().sum()) == 0


def test_clip_weights_that_do_not_fit_the_model_are_refused(clip_files):
    _, weights = clip_files
    from pf_stream.train.clip_prompts import register_model_config, tiny_clip_config

    wider = tiny_clip_config()
    wider["text_cfg"]["width"] = 48
    register_model_config("pf-tiny-clip-wide", wider)
    with pytest.raises(UserError, match="do not fit --clip-model pf-tiny-clip-wide"):
        load_clip("pf-tiny-clip-wide", weights)
    with pytest.raises(UserError, match="unknown CLIP model"):
        load_clip("ViT-B-33x", weights)
