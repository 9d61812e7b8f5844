"""Torch backend: the model in eager mode on CPU (fp32) or CUDA (fp32/fp16/bf16).

On CUDA it adds what makes a small network fast on a big GPU:

* fp16 / bf16: the whole model cast once (weights and activations), fp32 in and out;
* channels_last memory layout (optional): tensor cores prefer NHWC for dense convs;
* CUDA graphs (``cuda_graphs=True``): one replay instead of hundreds of kernel launches,
  re-captured when the frame size changes (see ``cuda_graph.py``);
* torch.compile (``torch_compile=True``): Inductor fuses the many tiny kernels (pads,
  element-wise work) into fewer; on an H100 `lite` is bound by kernel count, not arithmetic
  (docs/GPU.md).  Compiled once per frame size on first use (half a minute or more);
* numpy frames cross PCIe through pinned buffers on a side stream (see ``cuda_io.py``);
  :meth:`submit` lets the caller overlap frame n+1's upload with frame n's compute.

``weights`` may also name a torch-tensorrt program saved by ``pf-export --format torch-trt``
(``*.ep``); it then runs that instead of the eager model.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from pf_stream.backends.base import Backend
from pf_stream.errors import UserError
from pf_stream.model.registry import ModelInfo, load_model

log = logging.getLogger("pf_stream.backends")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def load_torch_trt_program(path: str | Path) -> torch.nn.Module:
    """Load a ``*.ep`` written by pf-export --format torch-trt (needs torch-tensorrt installed)."""
    try:
        import torch_tensorrt  # noqa: F401  (registers the TensorRT runtime ops the program calls)
    except ImportError:
        raise UserError(f"{path} is a torch-tensorrt program: pip install torch-tensorrt (same version that saved it)") from None
    try:
        return torch.export.load(str(path)).module()
    except Exception as exc:  # noqa: BLE001 - any failure to load is the user's file or versions
        raise UserError(f"cannot load torch-tensorrt program {path}: {str(exc).splitlines()[0]}") from None


class TorchBackend(Backend):
    name = "torch"

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        precision: str = "fp32",
        weights=None,
        threads: int | None = None,
        cuda_graphs: bool = False,
        channels_last: bool = False,
        torch_compile: bool = False,
    ):
        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.precision = precision
        self.dtype = DTYPES[precision]
        self.cuda_graphs = cuda_graphs
        self.channels_last = channels_last
        if weights is not None and str(weights).endswith(".ep"):
            # A compiled TensorRT program: its precision was fixed when it was built; fp32 I/O.
            self.model_module = load_torch_trt_program(weights)
            self.info = ModelInfo(name=model, weights=str(weights), trained=True)
            self.dtype = torch.float32
        else:
            module, self.info = load_model(model, weights)
            module = module.to(device=device, dtype=self.dtype)
            if channels_last:
                module = module.to(memory_format=torch.channels_last)
            if torch_compile:
                # Shapes are fixed per stream: dynamic=False compiles one kernel set per size.
                module = torch.compile(module, fullgraph=True, dynamic=False)
            self.model_module = module
        if device == "cuda":
            # Frame sizes are fixed for a stream: let cuDNN time its algorithms once per size.
            torch.backends.cudnn.benchmark = True
        self._graph = None
        self._io = None
        if cuda_graphs:
            from pf_stream.backends.cuda_graph import GraphRunner

            self._graph = GraphRunner(self._forward)
        log.info("fusing with %s on torch/%s/%s%s%s%s", self.info.describe(), device, precision,
                 " + CUDA graphs" if cuda_graphs else "", " channels_last" if channels_last else "",
                 " + torch.compile" if torch_compile else "")

    def _forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """Model on device tensors already in the backend's dtype; returns float32."""
        if self.channels_last:
            ir = ir.contiguous(memory_format=torch.channels_last)
            vis = vis.contiguous(memory_format=torch.channels_last)
        return self.model_module(ir, vis).float()

    @torch.inference_mode()
    def fuse_tensor(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        """(N,1,H,W) tensors on any device -> fused (N,1,H,W) float32 on the backend's device.

        With CUDA graphs the result is the graph's static output: copy it before the next call
        if you keep it.
        """
        ir = ir.to(self.device, self.dtype, non_blocking=True)
        vis = vis.to(self.device, self.dtype, non_blocking=True)
        if self._graph is not None:
            return self._graph(ir, vis)
        return self._forward(ir, vis)

    @property
    def graph_captures(self) -> int:
        return self._graph.captures if self._graph is not None else 0

    def submit(self, ir: np.ndarray, vis: np.ndarray):
        """Start fusing one frame; returns an object whose ``result()`` gives the fused array.

        On CUDA the upload, model and download are queued and this returns at once, so the
        caller can prepare (and submit) the next frame meanwhile.  On CPU it runs now.
        """
        if self.device != "cuda":
            return _Done(self._fuse_cpu(ir, vis))
        if self._io is None:
            from pf_stream.backends.cuda_io import CudaFrameIO

            self._io = CudaFrameIO(self._fuse_on_device)
        return self._io.submit(ir, vis)

    @torch.inference_mode()
    def _fuse_on_device(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.fuse_tensor(ir, vis)

    def _fuse_cpu(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        out = self.fuse_tensor(torch.from_numpy(ir)[None, None], torch.from_numpy(vis)[None, None])
        return out[0, 0].numpy().copy() if self._graph is not None else out[0, 0].numpy()

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return self.submit(ir, vis).result()

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None


class _Done:
    def __init__(self, value: np.ndarray):
        self._value = value

    def result(self) -> np.ndarray:
        return self._value
