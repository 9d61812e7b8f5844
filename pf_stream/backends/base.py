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
    cuda_graphs: bool = False,
    channels_last: bool = False,
    torch_compile: bool = False,
) -> Backend:
    """Build a ready-to-run backend; every bad choice is a one-line UserError.

    GPU-only packages (TensorRT, onnxruntime-gpu, torch-tensorrt) are imported only here,
    on demand, so a CPU machine never needs them; asking for them there says what to install.
    """
    check_choice("backend", backend, BACKENDS)
    check_choice("device", device, DEVICES)
    check_choice("precision", precision, PRECISIONS)
    if backend == "tensorrt":
        require_tensorrt()
        if device != "cuda":
            raise UserError("--backend tensorrt runs TensorRT engines on an NVIDIA GPU: add --device cuda")
    if device == "cuda":
        require_cuda()
    if precision != "fp32" and device == "cpu":
        raise UserError(f"--precision {precision} runs on the GPU only; use --precision fp32 with --device cpu")
    if cuda_graphs and device != "cuda":
        raise UserError("CUDA graphs need --device cuda; drop --cuda-graphs on the CPU")
    if backend == "auto":
        backend = "torch" if device == "cuda" else "onnxruntime"
    if cuda_graphs and backend == "onnxruntime":
        raise UserError("--cuda-graphs applies to --backend torch or tensorrt, not onnxruntime")
    if torch_compile and backend != "torch":
        raise UserError(f"--compile applies to --backend torch (torch.compile), not {backend}")
    if backend == "torch":
        from pf_stream.backends.torch_backend import TorchBackend

        return TorchBackend(model, device=device, precision=precision, weights=weights, threads=threads,
                            cuda_graphs=cuda_graphs, channels_last=channels_last, torch_compile=torch_compile)
    if backend == "onnxruntime":
        from pf_stream.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(model, device=device, precision=precision, weights=weights, threads=threads)
    from pf_stream.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(model, precision=precision, weights=weights, cuda_graphs=cuda_graphs)


def require_cuda() -> None:
    """A one-line error unless torch sees a CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        why = "this torch is a CPU-only build" if torch.version.cuda is None else "torch sees no CUDA GPU"
        raise UserError(
            f"--device cuda needs an NVIDIA GPU and a CUDA build of torch ({why}): "
            "install one from https://pytorch.org/get-started/locally/ on the GPU machine, or use --device cpu here"
        )


def require_tensorrt():
    """Import TensorRT's Python package or fail with one line saying how to get it."""
    try:
        import tensorrt
    except (ImportError, OSError):  # OSError: the wheel is there but libnvinfer is not
        raise UserError(
            "TensorRT is not installed: pip install tensorrt on a desktop GPU machine, or on a Jetson use "
            "JetPack's python3-libnvinfer (torch and onnxruntime backends need neither)"
        ) from None
    return tensorrt
