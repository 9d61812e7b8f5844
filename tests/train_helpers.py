"""Small synthetic training data and a tiny random-weight CLIP for the pf-train tests."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np


def make_pairs(folder: Path, names: list[str], size: tuple[int, int] = (48, 64), seed: int = 0, colour: bool = True) -> Path:
    """ir/ + vi/ with matching names: a warm blob scene (IR) and a textured scene (VIS)."""
    rng = np.random.default_rng(seed)
    (folder / "ir").mkdir(parents=True, exist_ok=True)
    (folder / "vi").mkdir(parents=True, exist_ok=True)
    h, w = size
    for name in names:
        base = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 3)
        ir = (np.clip(base * 3 - 0.5, 0, 1) * 255).astype(np.uint8)
        vi = (np.clip(1 - base * 2 + rng.random((h, w)) * 0.3, 0, 1) * 255).astype(np.uint8)
        cv2.imwrite(str(folder / "ir" / f"{name}.png"), ir)
        cv2.imwrite(str(folder / "vi" / f"{name}.png"), cv2.merge([vi, vi // 2, vi]) if colour else vi)
    return folder


def tiny_clip(tmp: Path) -> tuple[Path, Path]:
    """(config json, safetensors weights) of a tiny open_clip model with random weights."""
    from safetensors.torch import save_file

    from pf_stream.train.clip_prompts import import_open_clip, register_model_config, tiny_clip_config

    cfg = tmp / "pf-tiny-clip.json"
    cfg.write_text(json.dumps(tiny_clip_config()))
    register_model_config("pf-tiny-clip", tiny_clip_config())
    import torch

    # Seeded: the random weights must not depend on which tests ran before this one.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = import_open_clip().create_model("pf-tiny-clip", pretrained=None, pretrained_text=False)
    weights = tmp / "tiny-clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    return cfg, weights


def ddp_worker(rank: int, world: int, port: int, args: dict) -> None:
    """One rank of a CPU (gloo) DDP run of the real Trainer; saves what this rank holds."""
    import os

    import torch
    from safetensors.torch import save_file

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    from pf_stream.train.config import load_config
    from pf_stream.train.loop import RunOptions, Trainer

    config = load_config(args["config"], [f'data.folders=["{args["data"]}"]', "stage2.steps=3"])
    trainer = Trainer(config, RunOptions(out=Path(args["out"]), clip_model=args["clip_cfg"], clip_weights=args["clip_weights"],
                                         device="cpu", progress=False))
    trainer.run()
    held = {f"net.{k}": v.detach().clone().contiguous() for k, v in trainer.net.state_dict().items()}
    held["prompt.ctx"] = trainer.prompt.ctx.detach().clone().contiguous()
    save_file(held, str(Path(args["out"]) / f"rank{rank}.safetensors"))
    del torch
