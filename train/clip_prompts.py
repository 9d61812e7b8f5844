"""CLIP prompt learning for Stage II (the "Prompt" of PromptFusion), CoOp-style.

Frozen: CLIP's image and text encoders (open_clip, any architecture, weights from a
local file: nothing is downloaded).  Learned: ``n_ctx`` context embeddings in front of
each of two prompts,

    positive:  [ctx_1 .. ctx_n] "harmonious fusion, clear texture, striking targets"
    negative:  [ctx'_1 .. ctx'_n] "disharmonious fusion, blurry texture, faint targets"

which go through the frozen text encoder like ordinary token embeddings.  Two losses use
the resulting text features (see :mod:`pf_stream.train.bilevel` for how they alternate):

* fusion side (lower level's coupling term): the fused image should be closer to the
  positive than to the negative prompt -- a two-way softmax over CLIP similarities,
  ``-log softmax(s_pos / T, s_neg / T)[pos]``, the contrastive form of the ratio
  sim(fused, negative) / sim(fused, positive);
* prompt side (upper level): the prompts learn what the two words mean *for fusion*: the
  current fused image and the composite target are positives; degraded versions of the
  fused image (blurred, flattened in contrast) are negatives.
"""

from __future__ import annotations

import importlib
import logging
import json
import sys
import tempfile
import types
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from pf_stream.errors import UserError

# CLIP's own normalisation constants (OpenAI CLIP preprocessing).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def import_open_clip():
    """Import open_clip even where torchvision's compiled ops do not match torch.

    The PyPI torchvision wheel registers fake kernels for its C++ ops
    (``torchvision._meta_registrations``) at import; beside a CPU-only torch build those
    ops do not exist and the import dies with "operator torchvision::nms does not exist".
    open_clip only needs torchvision's pure-Python transforms, so on that exact error we
    stub the meta-registration module, drop the half-imported torchvision modules and
    import again.
    """
    try:
        return importlib.import_module("open_clip")
    except ImportError as exc:
        raise UserError("the prompt stage needs open_clip: pip install open_clip_torch") from exc
    except RuntimeError as exc:
        if "torchvision::" not in str(exc):
            raise
    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.") or m.startswith("open_clip")]:
        del sys.modules[name]
    sys.modules["torchvision._meta_registrations"] = types.ModuleType("torchvision._meta_registrations")
    return importlib.import_module("open_clip")


def register_model_config(name: str, config: dict) -> None:
    """Make an architecture config (open_clip's JSON schema) available under ``name``."""
    open_clip = import_open_clip()
    folder = Path(tempfile.mkdtemp(prefix="pf_clip_cfg_"))
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def load_clip(model_name: str, weights: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """Frozen open_clip model ``model_name`` with the state dict in ``weights`` (local file).

    ``model_name`` may also be a path to an open_clip config JSON.  Any mismatch between
    the file and the named architecture is a one-line UserError.
    """
    open_clip = import_open_clip()
    if model_name.endswith(".json"):
        cfg_path = Path(model_name)
        if not cfg_path.is_file():
            raise UserError(f"CLIP model config {cfg_path} not found")
        open_clip.add_model_config(cfg_path)
        model_name = cfg_path.stem
    if model_name not in open_clip.list_models():
        from pf_stream.errors import did_you_mean

        raise UserError(f"unknown CLIP model {model_name!r}{did_you_mean(model_name, open_clip.list_models())}; "
                        "see open_clip.list_models()")
    weights = Path(weights)
    if not weights.is_file():
        raise UserError(f"CLIP weights {weights} not found: give a local open_clip state dict (nothing is downloaded)")

    state = _read_state(weights)
    # open_clip logs through the root logger and warns "initialized randomly" -- true only
    # until the weights below are loaded; keep that noise out of pf-train's output.
    logging.disable(logging.WARNING)
    try:
        # Check shapes on a weightless (meta) copy first: building a big CLIP with random
        # weights only to find the file does not fit takes many seconds.
        with torch.device("meta"):
            skeleton = open_clip.create_model(model_name, pretrained=None, pretrained_text=False, device="meta")
        _check_fits(skeleton.state_dict(), state, weights, model_name)
        model = open_clip.create_model(model_name, pretrained=None, pretrained_text=False, device="cpu")
    finally:
        logging.disable(logging.NOTSET)
    model.load_state_dict(state, strict=False)
    model = model.to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _check_fits(expected: dict, state: dict, weights: Path, model_name: str) -> None:
    """One UserError line when ``state`` is not a state dict of ``model_name``."""
    missing = [k for k in expected if k not in state and not k.endswith("attn_mask")]
    unexpected = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong:
        if wrong:
            k = wrong[0]
            what = f"{k} is {tuple(state[k].shape)}, the model wants {tuple(expected[k].shape)}"
        else:
            what = f"missing {missing[:2]}" if missing else f"unexpected {unexpected[:2]}"
        raise UserError(f"CLIP weights {weights} do not fit --clip-model {model_name} ({what}): name the matching architecture")


def _read_state(path: Path) -> dict:
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # Plain tensors only (weights_only): a CLIP checkpoint needs no pickled code.
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file is the user's input problem
        raise UserError(f"cannot read CLIP weights {path}: {str(exc).splitlines()[0][:160]}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"CLIP weights {path} hold no state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _text_tower(clip: nn.Module) -> nn.Module:
    """The module holding token_embedding/transformer/ln_final (CLIP or CustomTextCLIP)."""
    tower = getattr(clip, "text", clip)
    if not hasattr(tower, "token_embedding"):
        raise UserError("this CLIP architecture has no token-embedding text tower (e.g. an HF text model): "
                        "choose a standard open_clip model such as ViT-B-32")
    return tower


class PromptLearner(nn.Module):
    """Learnable context for a positive and a negative prompt; frozen CLIP does the rest."""

    def __init__(self, clip: nn.Module, positive: str, negative: str, n_ctx: int = 4, seed: int = 0):
        super().__init__()
        open_clip = import_open_clip()
        self.clip = [clip]  # a list: keep CLIP out of this module's parameters and state dict
        tower = _text_tower(clip)
        width = tower.token_embedding.weight.shape[1]
        context = tower.positional_embedding.shape[0]
        placeholder = " ".join(["X"] * n_ctx)
        tokens = open_clip.tokenize([f"{placeholder} {positive}", f"{placeholder} {negative}"], context_length=context)
        self.register_buffer("tokens", tokens, persistent=False)
        gen = torch.Generator().manual_seed(seed)
        self.ctx = nn.Parameter(torch.randn(2, n_ctx, width, generator=gen) * 0.02)
        self.n_ctx = n_ctx

    def text_features(self) -> torch.Tensor:
        """(2, D) normalised text features: row 0 positive, row 1 negative."""
        tower = _text_tower(self.clip[0])
        tokens = self.tokens.to(self.ctx.device)
        with torch.no_grad():
            embedded = tower.token_embedding(tokens)
        # Position 0 is the start token; the n_ctx placeholders follow it.
        x = torch.cat([embedded[:, :1], self.ctx.to(embedded.dtype), embedded[:, 1 + self.n_ctx :]], dim=1)
        x = x + tower.positional_embedding.to(x.dtype)
        x = tower.transformer(x, attn_mask=tower.attn_mask)
        x = tower.ln_final(x)
        from open_clip.transformer import text_global_pool

        pool = getattr(tower, "text_pool_type", getattr(tower, "pool_type", "argmax"))
        x = text_global_pool(x, tokens, pool, eos_token_id=getattr(tower, "text_eos_id", getattr(tower, "eos_id", None)))
        proj = tower.text_projection
        if proj is not None:
            x = proj(x) if isinstance(proj, nn.Linear) else x @ proj
        return F.normalize(x, dim=-1)


def clip_image_size(clip: nn.Module) -> int:
    size = getattr(clip.visual, "image_size", 224)
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def image_features(clip: nn.Module, gray: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """(N, 1, H, W) luminance in [0, 1] -> (N, D) normalised CLIP image features (differentiable)."""
    size = size or clip_image_size(clip)
    x = F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    x = x.expand(-1, 3, -1, -1)
    mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
    return F.normalize(clip.encode_image((x - mean) / std), dim=-1)


def degrade(fused: torch.Tensor) -> torch.Tensor:
    """What the negative prompt should mean: blurred, flattened contrast, washed out."""
    blurred = F.avg_pool2d(F.pad(fused, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    mean = blurred.mean(dim=(2, 3), keepdim=True)
    return (mean + 0.5 * (blurred - mean)).clamp(0, 1)


@dataclass
class PromptLossOut:
    loss: torch.Tensor
    p_positive: float  # mean probability that the inputs read as "positive"


class PromptLoss:
    """The two prompt objectives around one :class:`PromptLearner`."""

    def __init__(self, learner: PromptLearner, temperature: float = 0.07, image_size: int = 0):
        self.learner, self.t = learner, temperature
        self.size = image_size or None

    def _logits(self, images: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return image_features(self.learner.clip[0], images, self.size) @ text.t() / self.t

    def fusion_loss(self, fused: torch.Tensor) -> PromptLossOut:
        """Lower-level coupling term: fused images should read as the positive prompt.

        Gradients reach the fusion network only: the text features are detached.
        """
        text = self.learner.text_features().detach()
        logits = self._logits(fused, text)
        target = torch.zeros(len(fused), dtype=torch.long, device=fused.device)
        return PromptLossOut(F.cross_entropy(logits, target), float(logits.softmax(-1)[:, 0].mean().detach()))

    def prompt_loss(self, fused: torch.Tensor, anchor: torch.Tensor | None = None) -> PromptLossOut:
        """Upper-level objective over the prompt context, through the current fused images.

        Positives: the fused images (and the composite target, if given); negatives:
        degraded fused images.  Images carry no gradient here.
        """
        with torch.no_grad():
            pos = [fused] + ([anchor] if anchor is not None else [])
            images = torch.cat(pos + [degrade(fused)], dim=0)
            feats = image_features(self.learner.clip[0], images, self.size)
        text = self.learner.text_features()
        logits = feats @ text.t() / self.t
        n_pos = sum(len(p) for p in pos)
        target = torch.cat([torch.zeros(n_pos, dtype=torch.long), torch.ones(len(fused), dtype=torch.long)]).to(logits.device)
        return PromptLossOut(F.cross_entropy(logits, target), float(logits.softmax(-1)[:n_pos, 0].mean().detach()))


def tiny_clip_config() -> dict:
    """A minimal open_clip architecture (random weights) for tests and smoke runs."""
    return {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
