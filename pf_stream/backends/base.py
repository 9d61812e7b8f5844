"""The one interface the pipeline fuses through, and the factory that picks an engine.

Every backend takes IR and VIS luminance as float32 HxW arrays in [0, 1] (same size) and
returns fused luminance the same way.  How it gets there (torch eager, CUDA graphs,
ONNX Runtime, a TensorRT engine) is the backend's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from pf_stream.errors import UserError, check_choice

BACKENDS = ("auto", "torch", "onnxruntime", "tensorrt")
DEVICES = ("cpu", "cuda")
PRECISIONS = ("fp32", "fp16", "bf16")


class Backend(ABC):
    name = "backend"
    device = "cpu"
    precision = "fp32"

    @abstractmethod
    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        """IR and VIS luminance (float32 HxW, [0,1]) -> fused luminance (float32 HxW, [0,1])."""

    def close(self) -> None:
        """Release engines/sessions; safe to call twice."""


def create_backend(
    model: str = "lite",
    backend: str = "auto",
    device: str = "cpu",
    precision: str = "fp32",
    weights: str | None = None,
    threads: int | None = None,
) -> Backend:
    """Build a ready-to-run backend; every bad choice is a one-line UserError."""
    check_choice("backend", backend, BACKENDS)
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("--device cuda needs an NVIDIA GPU and a CUDA build of torch; use --device cpu here")
    if precision != "fp32" and device == "cpu":
        raise UserError(f"--precision {precision} runs on the GPU only; use --precision fp32 with --device cpu")
    if backend == "auto":
        backend = "torch" if device == "cuda" else "onnxruntime"
    if backend == "torch":
        from pf_stream.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=device, precision=precision, weights=weights, threads=threads)
    if backend == "onnxruntime":
        from pf_stream.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, device=device, precision=precision, weights=weights, threads=threads)
    from pf_stream.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model, device=device, precision=precision, weights=weights)
