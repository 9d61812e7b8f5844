"""Training configuration: one YAML file (configs/train/*.yaml) + command-line overrides.

Every section is a typed dataclass; an unknown key is a one-line error with a "did you
mean" hint rather than a silently ignored typo.  Relative data paths are resolved against
the current directory (run pf-train from the repository root, as the configs assume).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from pf_stream.config import coerce_value
from pf_stream.errors import UserError, check_choice, did_you_mean, read_yaml
from pf_stream.train.data import DataConfig
from pf_stream.train.losses import CompositeTarget, FusionLossConfig


@dataclass
class StageConfig:
    steps: int = 0
    batch: int = 8
    lr: float = 1e-3
    lr_min_ratio: float = 0.02  # cosine decay down to lr * this
    warmup: int = 100


@dataclass
class Stage1Config(StageConfig):
    """Autoencoder pre-training (``full`` only; ``lite``'s contourlet is fixed and exact)."""

    gradient: float = 1.0  # weight of the gradient term of the reconstruction loss
    decomposition: float = 2.0  # weight of the base/detail correlation loss


@dataclass
class BilevelConfig:
    """Bi-level asymptotic convergence (BDA) schedule; see :mod:`pf_stream.train.bilevel`."""

    alpha0: float = 0.5  # coupling weight of the upper-level (prompt) objective at step 0
    half_life: int = 1000  # alpha_k = alpha0 / (1 + k / half_life): halves after half_life steps, -> 0
    upper_every: int = 1  # one upper-level (prompt) step every this many lower-level steps
    upper_lr: float = 2e-3


@dataclass
class PromptConfig:
    """CLIP prompt stage (Stage II upper level).  Skipped when no CLIP weights are given."""

    positive: str = "harmonious fusion, clear texture, striking targets"
    negative: str = "disharmonious fusion, blurry texture, faint targets"
    n_ctx: int = 4  # learnable context tokens per prompt (CoOp)
    weight: float = 1.0  # scale of the prompt loss inside the coupled lower-level objective
    temperature: float = 0.07
    image_size: int = 0  # CLIP input size; 0 = the model's own
    bilevel: BilevelConfig = field(default_factory=BilevelConfig)


@dataclass
class DistillConfig:
    weight: float = 1.0  # L1 towards the teacher's output (used only when a teacher is given)
    teacher: str | None = None  # a `full` weights file


@dataclass
class RunConfig:
    checkpoint_every: int = 200
    log_every: int = 20
    threads: int = 1  # CPU threads per process (torch.set_num_threads)
    # bf16: forward passes and losses under torch.autocast (bf16 convolutions and matmuls, fp32
    # weights, optimiser and reductions).  For GPUs: on an H200 (session 11) full trained at
    # 90 / 77.5 ms per stage I / II step against fp32's 196 / 112.5 (docs/TRAINING.md).
    precision: Literal["fp32", "bf16"] = "fp32"


@dataclass
class TrainConfig:
    model: str = "lite"
    model_config: dict = field(default_factory=dict)
    seed: int = 0
    data: DataConfig = field(default_factory=lambda: DataConfig(folders=[]))
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: StageConfig = field(default_factory=lambda: StageConfig(steps=1000))
    loss: FusionLossConfig = field(default_factory=FusionLossConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    run: RunConfig = field(default_factory=RunConfig)


def _build(cls, values: Any, where: str):
    """Recursively turn a plain dict into dataclass ``cls``; unknown keys and values of the
    wrong type are one-line UserErrors (``--set stage2.lr=abc`` used to end in a traceback)."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise UserError(f"config section {where or 'top level'} must be a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)  # the annotations are strings here (postponed)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise UserError(f"unknown config key {where + key!r}{did_you_mean(key, list(hints))}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, f"{where}{key}.")
        else:
            kwargs[key] = coerce_value(value, hint, where + key, where="training config")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise UserError(f"bad config section {where or 'top level'}: {exc}") from None


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text)


def apply_override(raw: dict, assignment: str) -> None:
    """``a.b.c=value`` (value parsed as YAML) into the nested dict ``raw``."""
    if "=" not in assignment:
        raise UserError(f"override {assignment!r} must look like section.key=value, e.g. stage2.steps=500")
    path, value = assignment.split("=", 1)
    keys = path.strip().split(".")
    node = raw
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f"override {assignment!r}: {key!r} is not a section")
    node[keys[-1]] = _parse_value(value)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    raw: dict = {}
    if path is not None:
        raw = read_yaml(path, "training config", "see configs/train/ for examples") or {}
    for item in overrides:
        apply_override(raw, item)
    config = _build(TrainConfig, raw, "")
    check(config)
    return config


def check(config: TrainConfig) -> None:
    """Value checks that a type annotation cannot express."""
    for name, stage in (("stage1", config.stage1), ("stage2", config.stage2)):
        if stage.steps < 0 or stage.batch < 1 or stage.lr <= 0:
            raise UserError(f"{name}: steps must be >= 0, batch >= 1 and lr > 0")
    if config.stage1.steps + config.stage2.steps == 0:
        raise UserError("nothing to train: stage1.steps and stage2.steps are both 0")
    if config.data.crop < 16:
        raise UserError(f"data.crop {config.data.crop} is too small: use at least 16 pixels")
    if config.run.checkpoint_every < 1 or config.run.log_every < 1:
        raise UserError("run.checkpoint_every and run.log_every must be >= 1")
    # Here, not where the target is built: a misspelled rule must fail before the data loads.
    check_choice("loss.target_low", config.loss.target_low, CompositeTarget.LOWPASS_RULES)


def as_dict(config: TrainConfig) -> dict:
    return dataclasses.asdict(config)
