"""Weights on disk: safetensors tensors + JSON metadata (model name, config, how trained).

The metadata travels inside the safetensors header (key ``pf_stream``) so a weights file
is self-describing; a readable copy is written beside it as ``<name>.json``.  Pickled
``.pth``/``.pt`` files can run arbitrary code when loaded, so they are refused unless the
user passes an explicit trust flag.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from pf_stream.errors import UserError

METADATA_KEY = "pf_stream"


@dataclass
class WeightsMeta:
    model: str
    config: dict = field(default_factory=dict)
    trained: dict = field(default_factory=dict)  # data, steps, hardware, time, command, ...


def save_weights(model: nn.Module, path: str | Path, meta: WeightsMeta) -> Path:
    """Write ``path`` (.safetensors) and a readable ``.json`` copy of the metadata, atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise UserError(f"weights file {path} must end in .safetensors")
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not _is_fixed_buffer(k)}
    text = json.dumps(asdict(meta), sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        # Written through Python (mode 0666 less the umask): safetensors' own writer makes the
        # file 0600, which a service running pf-stream as another user could not read.
        tmp.write_bytes(save(tensors, metadata={METADATA_KEY: text}))
        tmp.replace(path)
        path.with_suffix(".json").write_text(json.dumps(asdict(meta), indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise UserError(f"cannot write weights to {path}: {exc.strerror}") from None
    return path


def read_meta(path: str | Path) -> WeightsMeta:
    """Metadata of a safetensors weights file (one-line error if it has none)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            raw = (f.metadata() or {}).get(METADATA_KEY)
    except (SafetensorError, OSError) as exc:
        raise UserError(f"{path} is not a readable safetensors file ({exc}); pass a file written by pf-train") from None
    if raw is None:
        raise UserError(f"{path} has no pf-stream metadata; pass a file written by pf-train")
    data = json.loads(raw)
    return WeightsMeta(model=data.get("model", ""), config=data.get("config", {}), trained=data.get("trained", {}))


def load_state(path: str | Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    """Tensors (and metadata, for safetensors) from a weights file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {path} not found: check the path, or leave --weights out to use the shipped weights")
    if path.suffix in (".pth", ".pt", ".ckpt", ".bin"):
        if not trust_pickle:
            raise UserError(
                f"{path} is a pickle file, which can run arbitrary code when loaded; convert it to .safetensors, "
                f"or, if you trust its source, turn it into ONNX with pf-export --trust-pickle --weights {path}"
            )
        state = torch.load(str(path), map_location="cpu", weights_only=False)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        return state, None
    if path.suffix != ".safetensors":
        raise UserError(f"unsupported weights file {path}: use a .safetensors file written by pf-train")
    meta = read_meta(path)
    try:
        return load_file(str(path)), meta
    except (SafetensorError, OSError) as exc:
        raise UserError(f"cannot read weights {path}: {exc}") from None


def apply_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``; any missing/unexpected/mis-shaped tensor is one UserError line."""
    own = {k: v for k, v in model.state_dict().items() if not _is_fixed_buffer(k)}
    state = {k: v for k, v in state.items() if not _is_fixed_buffer(k)}
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise UserError(f"weights {source} do not fit this architecture ({what}); check --model and the model config")
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[key].shape):
            raise UserError(
                f"weights {source}: {key} has shape {tuple(tensor.shape)}, the model expects {tuple(own[key].shape)}; "
                "check --model and the model config"
            )
    model.load_state_dict(state, strict=False)


def _is_fixed_buffer(key: str) -> bool:
    """Contourlet filters are derived from the config, not learned: never stored or compared."""
    name = key.split(".")[-1]
    return name.startswith(("pyr_", "wedges_")) or name in ("down_k", "up_k")  # down_k/up_k: files before 0.1
