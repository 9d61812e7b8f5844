"""All fusion models behind one name -> constructor table, and the one way to load them.

Every model maps IR and VIS luminance (N, 1, H, W) in [0, 1], any H and W, to fused
luminance (N, 1, H, W) in [0, 1].

Weights resolution for ``load_model(name)``:
  1. ``weights=PATH`` given: that file (safetensors; pickles only with trust_pickle=True);
  2. otherwise the weights shipped in the package (``pf_stream/weights/<name>.safetensors``);
  3. otherwise deterministic initial weights (seeded) and a loud warning that the
     model is untrained.  ``classic`` has no weights at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from pf_stream.errors import UserError, check_choice
from pf_stream.model.weights import WeightsMeta, apply_state, load_state

log = logging.getLogger("pf_stream.model")


def _classic(**cfg) -> nn.Module:
    from pf_stream.model.classic import ClassicFusion

    return ClassicFusion(**cfg)


def _lite(**cfg) -> nn.Module:
    from pf_stream.model.lite import LiteFusion

    return LiteFusion(**cfg)


def _full(**cfg) -> nn.Module:
    from pf_stream.model.full import FullFusion

    return FullFusion(**cfg)


MODELS: dict[str, Callable[..., nn.Module]] = {"lite": _lite, "full": _full, "classic": _classic}
WEIGHT_FREE = {"classic"}


@dataclass
class ModelInfo:
    name: str
    config: dict = field(default_factory=dict)
    weights: str | None = None  # path of the loaded file, None when untrained or weight-free
    trained: bool = False
    meta: dict = field(default_factory=dict)  # how it was trained, when known

    def describe(self) -> str:
        if self.name in WEIGHT_FREE:
            return f"{self.name} (fixed rules, no weights)"
        if not self.trained:
            return f"{self.name} (UNTRAINED deterministic initial weights)"
        return f"{self.name} ({self.weights})"


def build_model(name: str, config: dict | None = None, seed: int = 0) -> nn.Module:
    """A fresh model with deterministic initial weights (same seed, same weights)."""
    check_choice("model", name, MODELS)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            return MODELS[name](**(config or {}))
        except (TypeError, ValueError, RuntimeError) as exc:
            # An unknown key (TypeError), a value the model refuses (ValueError: "kernel size must
            # be odd"), or one torch cannot build (RuntimeError: a negative width) is the config's fault.
            raise UserError(f"bad config for model {name!r}: {str(exc).splitlines()[0]}") from None


def shipped_weights(name: str) -> Path | None:
    """Path of the weights shipped in the package for ``name``, if any."""
    path = Path(str(resources.files("pf_stream.weights").joinpath(f"{name}.safetensors")))
    return path if path.is_file() else None


def load_model(
    name: str, weights: str | Path | None = None, *, trust_pickle: bool = False, seed: int = 0
) -> tuple[nn.Module, ModelInfo]:
    """Build ``name`` and load its weights (see module docstring); returns (model in eval mode, info)."""
    check_choice("model", name, MODELS)
    if name in WEIGHT_FREE:
        if weights is not None:
            raise UserError(f"model {name!r} has no weights; drop --weights or choose --model lite/full")
        return build_model(name).eval(), ModelInfo(name=name)

    path = Path(weights) if weights is not None else shipped_weights(name)
    if path is None:
        log.warning(
            "model %s: no trained weights shipped or given; running UNTRAINED deterministic initial weights "
            "(output is a rough mix, not a trained fusion): train with pf-train and pass --weights", name
        )
        return build_model(name, seed=seed).eval(), ModelInfo(name=name)

    state, meta = load_state(path, trust_pickle=trust_pickle)
    meta = meta or WeightsMeta(model=name)
    if meta.model and meta.model != name:
        raise UserError(f"weights {path} are for model {meta.model!r}, not {name!r}: pass --model {meta.model}")
    model = build_model(name, meta.config)
    apply_state(model, state, str(path))
    return model.eval(), ModelInfo(name=name, config=meta.config, weights=str(path), trained=True, meta=meta.trained)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_gmac(model: nn.Module, height: int, width: int) -> float:
    """Multiply-accumulates (x1e9) of one forward pass at height x width, counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    device = next((b.device for b in model.buffers()), torch.device("cpu"))
    ir = torch.zeros(1, 1, height, width, device=device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(ir, ir)
    return counter.get_total_flops() / 2e9
