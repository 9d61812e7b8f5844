"""Model -> ONNX file, checked with onnx.checker and compared against torch in ONNX Runtime.

Inputs are named ``ir`` and ``vis`` (N, 1, H, W) float32 in [0, 1]; the output ``fused``.
With ``dynamic=True`` batch, height and width are symbolic, so one file serves any size.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pf_stream.errors import UserError

OPSET = 17


@dataclass
class OnnxCheck:
    size: tuple[int, int]  # (width, height) checked
    max_abs_err: float


def export_onnx(model: nn.Module, path: str | Path, size: tuple[int, int], dynamic: bool = False) -> Path:
    """Export ``model`` traced at ``size`` (width, height); returns the written path."""
    path = Path(path)
    w, h = size
    example = (torch.rand(1, 1, h, w), torch.rand(1, 1, h, w))
    axes = {0: "batch", 2: "height", 3: "width"}
    dynamic_axes = {"ir": axes, "vis": axes, "fused": axes} if dynamic else None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {path.parent}: {exc.strerror}") from None
    tmp = path.with_name(path.name + ".tmp")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape arithmetic we intend
        # The TorchScript exporter: mature, no onnxscript dependency, exact dynamic axes.
        torch.onnx.export(
            model.eval().cpu(),
            example,
            str(tmp),
            input_names=["ir", "vis"],
            output_names=["fused"],
            opset_version=OPSET,
            dynamic_axes=dynamic_axes,
            dynamo=False,
        )
    tmp.replace(path)
    return path


def check_onnx(path: str | Path, model: nn.Module, sizes: list[tuple[int, int]], seed: int = 0) -> list[OnnxCheck]:
    """onnx.checker + ONNX Runtime (CPU) vs torch on the same random inputs, per size."""
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(onnx.load(str(path)))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gen = torch.Generator().manual_seed(seed)
    results = []
    for w, h in sizes:
        ir, vis = torch.rand(1, 1, h, w, generator=gen), torch.rand(1, 1, h, w, generator=gen)
        with torch.no_grad():
            expected = model.eval().cpu()(ir, vis).numpy()
        got = session.run(["fused"], {"ir": ir.numpy(), "vis": vis.numpy()})[0]
        results.append(OnnxCheck(size=(w, h), max_abs_err=float(np.abs(got - expected).max())))
    return results
