"""Torch backend: the model in eager mode on CPU (fp32) or CUDA (fp32/fp16/bf16)."""

from __future__ import annotations

import logging

import numpy as np
import torch

from pf_stream.backends.base import Backend
from pf_stream.model.registry import load_model

log = logging.getLogger("pf_stream.backends")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class TorchBackend(Backend):
    name = "torch"

    def __init__(self, model: str, device: str = "cpu", precision: str = "fp32", weights=None, threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.model_module, self.info = load_model(model, weights)
        log.info("fusing with %s on torch/%s/%s", self.info.describe(), device, precision)
        self.device = device
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.model_module = self.model_module.to(device=device, dtype=self.dtype)

    @torch.inference_mode()
    def fuse_tensor(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) tensors on any device -> fused (N,1,H,W) float32 on the backend's device."""
        ir = ir.to(self.device, self.dtype, non_blocking=True)
        vis = vis.to(self.device, self.dtype, non_blocking=True)
        return self.model_module(ir, vis).float()

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        out = self.fuse_tensor(torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None])
        return out[0, 0].cpu().numpy()
