"""Training checkpoints: one safetensors file per run, written atomically, resumable.

``<run>/checkpoint.safetensors`` holds everything needed to continue exactly where a run
stopped: model weights (``model.*``), optimiser moments (``opt.<name>.<i>.<key>``), the
prompt context (``prompt.*``), torch's RNG state, plus JSON metadata (step, stage, scalar
optimiser state, the data sampler's RNG state, the config).  It is written to a temporary
name and renamed, so an interrupted write (Ctrl-C, power loss) leaves the previous
checkpoint intact.  Beside it, ``<run>/<model>.safetensors`` is the model alone in the
format ``load_model`` / ``pf-eval --weights`` read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from pf_stream.errors import UserError

CHECKPOINT = "checkpoint.safetensors"
META_KEY = "pf_train"


@dataclass
class TrainState:
    stage: int = 1  # 1 = autoencoder, 2 = fusion
    step: int = 0  # steps done in the current stage
    sampler: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)


def _optimizer_tensors(name: str, opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = opt.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        scalars["state"][str(idx)] = {}
        for key, value in st.items():
            if torch.is_tensor(value) and value.dim() > 0:
                tensors[f"opt.{name}.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars["state"][str(idx)][key] = float(value)
    return tensors, scalars


def _restore_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict, scalars: dict) -> None:
    state = {}
    for idx, st in scalars["state"].items():
        entry = {k: torch.tensor(v) for k, v in st.items()}
        prefix = f"opt.{name}.{idx}."
        for key, value in tensors.items():
            if key.startswith(prefix):
                entry[key[len(prefix) :]] = value
        state[int(idx)] = entry
    opt.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})


def save_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    state: TrainState,
    config: dict,
    prompt: nn.Module | None = None,
) -> Path:
    from pf_stream.model.weights import _is_fixed_buffer  # fixed contourlet filters are rebuilt from the config

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not _is_fixed_buffer(k)}
    if prompt is not None:
        tensors.update({f"prompt.{k}": v.detach().cpu().contiguous() for k, v in prompt.state_dict().items()})
    opt_scalars = {}
    for name, opt in optimizers.items():
        t, s = _optimizer_tensors(name, opt)
        tensors.update(t)
        opt_scalars[name] = s
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"state": state.__dict__, "optimizers": opt_scalars, "config": config}
    path = run_dir / CHECKPOINT
    tmp = path.with_name(path.name + ".tmp")
    try:
        save_file(tensors, str(tmp), metadata={META_KEY: json.dumps(meta)})
        tmp.replace(path)
    except OSError as exc:
        raise UserError(f"cannot write checkpoint {path}: {exc.strerror}") from None
    return path


def load_checkpoint(
    run_dir: Path,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer],
    prompt: nn.Module | None = None,
) -> TrainState:
    """Restore a run's state in place; returns where it stopped."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} not found (start without --resume, or point --out at the run folder)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})[META_KEY])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as exc:
        raise UserError(f"checkpoint {path} is unreadable ({exc}); delete it to start over") from None
    model_state = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    from pf_stream.model.weights import apply_state

    apply_state(model, model_state, str(path))
    if prompt is not None:
        prompt_state = {k[len("prompt.") :]: v for k, v in tensors.items() if k.startswith("prompt.")}
        if prompt_state:
            prompt.load_state_dict(prompt_state)
    for name, opt in optimizers.items():
        if name in meta["optimizers"]:
            _restore_optimizer(name, opt, tensors, meta["optimizers"][name])
    torch.set_rng_state(tensors["rng.torch"])
    return TrainState(**meta["state"])


def checkpoint_config(run_dir: Path) -> dict | None:
    """The config stored in a run's checkpoint (None when there is no checkpoint)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get(META_KEY, "{}")).get("config")
