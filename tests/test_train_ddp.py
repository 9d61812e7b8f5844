"""pf-train under DDP: 2 CPU processes (gloo) train a few steps and end with identical weights."""

from __future__ import annotations

import socket
from pathlib import Path

import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.train_helpers import ddp_worker, make_pairs, tiny_clip

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_gloo_ranks_end_with_identical_weights(tmp_path):
    data = make_pairs(tmp_path / "set", ["a", "b", "c", "d"], seed=1)
    clip_cfg, clip_weights = tiny_clip(tmp_path)
    out = tmp_path / "run"
    args = {"config": str(REPO / "configs/train/tiny.yaml"), "data": str(data), "out": str(out),
            "clip_cfg": str(clip_cfg), "clip_weights": str(clip_weights)}
    mp.spawn(ddp_worker, args=(2, _free_port(), args), nprocs=2, join=True)

    r0, r1 = load_file(str(out / "rank0.safetensors")), load_file(str(out / "rank1.safetensors"))
    assert r0.keys() == r1.keys() and "prompt.ctx" in r0
    for key in r0:
        assert torch.equal(r0[key], r1[key]), key
    # ... and they trained: the weights moved away from the common initial state.
    from pf_stream.model.registry import build_model

    init = build_model("lite", {"levels": [3, 0], "widths": [8], "low_width": 8, "fine_ctx": 2, "dir_kernel": 5,
                                "global_context": True}).state_dict()
    assert any(not torch.equal(init[k], r0[f"net.{k}"]) for k in init if f"net.{k}" in r0)
    assert (out / "lite.safetensors").is_file() and (out / "log_stage2.csv").is_file()
