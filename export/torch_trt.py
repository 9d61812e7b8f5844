"""Model -> torch-tensorrt program (``*.ep``), compiled ahead of time on the target GPU.

The alternative to a bare TensorRT engine when the application stays in PyTorch: the
program is a ``torch.export`` ExportedProgram whose subgraphs run as TensorRT engines, loaded
with ``torch.export.load(path).module()`` after ``import torch_tensorrt`` (the torch backend
does that for ``--weights FILE.ep``).  Like engines, it only runs on the GPU model and the
torch-tensorrt / TensorRT versions that built it.

Precision: the model itself is cast (fp16/bf16) inside a wrapper that keeps fp32 inputs and
output, so the saved program has the same interface whatever its precision.  Dynamic sizes
follow the same min/opt/max range as engines.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import nn

from pf_stream.backends.engine_cache import ShapeRange
from pf_stream.errors import UserError

log = logging.getLogger("pf_stream.export")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Fp32Interface(nn.Module):
    """Runs ``model`` in ``dtype`` behind float32 inputs and output."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = model.to(dtype)
        self.dtype = dtype

    def forward(self, ir: torch.Tensor, vis: torch.Tensor) -> torch.Tensor:
        return self.model(ir.to(self.dtype), vis.to(self.dtype)).float()


def require_torch_tensorrt():
    try:
        import torch_tensorrt
    except (ImportError, OSError):
        raise UserError(
            "--format torch-trt needs torch-tensorrt matching this torch: pip install torch-tensorrt "
            "on the GPU machine (or use --format engine / onnx)"
        ) from None
    return torch_tensorrt


def compile_torch_trt(model: nn.Module, out: str | Path, precision: str, shapes: ShapeRange) -> float:
    """Compile and save; returns the compile time in seconds."""
    torch_tensorrt = require_torch_tensorrt()
    if not torch.cuda.is_available():
        raise UserError("--format torch-trt compiles on an NVIDIA GPU; torch sees none here")
    wrapped = Fp32Interface(model.eval(), DTYPES[precision]).cuda().eval()
    spec = [
        torch_tensorrt.Input(min_shape=shapes.nchw(shapes.min), opt_shape=shapes.nchw(shapes.opt),
                             max_shape=shapes.nchw(shapes.max), dtype=torch.float32)
        for _ in ("ir", "vis")
    ]
    t0 = time.perf_counter()
    with torch.no_grad():
        compiled = torch_tensorrt.compile(wrapped, ir="dynamo", inputs=spec, min_block_size=1)
    compile_s = time.perf_counter() - t0
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        # torch-tensorrt >= 2.9 infers the dynamic sizes from the Input specs given here.
        torch_tensorrt.save(compiled, str(out), output_format="exported_program", arg_inputs=spec)
    except TypeError:
        # Older releases take example tensors under `inputs` (and keep the traced range).
        example = [torch.rand(shapes.nchw(shapes.opt), device="cuda") for _ in ("ir", "vis")]
        torch_tensorrt.save(compiled, str(out), output_format="exported_program", inputs=example)
    log.info("compiled %s with torch-tensorrt (%.1f s, %.2f MB)", out, compile_s, out.stat().st_size / 1e6)
    return compile_s
