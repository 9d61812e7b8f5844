"""ONNX Runtime backend: the model exported once (dynamic size), then run by ORT.

Give ``weights=FILE.onnx`` to run an exported file directly; otherwise the model (with
its shipped or given weights) is exported to a cache folder on first use
(``$PF_STREAM_CACHE`` or ``~/.cache/pf-stream``) under a name that changes whenever the
weights, the model code's version or torch change.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from pf_stream import __version__
from pf_stream.backends.base import Backend
from pf_stream.errors import UserError

log = logging.getLogger("pf_stream.backends")


def cache_dir() -> Path:
    return Path(os.environ.get("PF_STREAM_CACHE", Path.home() / ".cache" / "pf-stream"))


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, model: str, device: str = "cpu", precision: str = "fp32", weights=None, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from None
        self.device, self.precision = device, precision
        path = Path(weights) if weights is not None and str(weights).endswith(".onnx") else onnx_for(model, weights)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise UserError("--backend onnxruntime --device cuda needs onnxruntime-gpu: pip install 'pf-stream[gpu]'")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise UserError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None
        log.info("fusing with %s in onnxruntime (%s)", path.name, ", ".join(self.session.get_providers()))

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        feed = {"ir": ir[None, None].astype(np.float32, copy=False), "vis": vis[None, None].astype(np.float32, copy=False)}
        return self.session.run(["fused"], feed)[0][0, 0]


def onnx_for(model_name: str, weights) -> Path:
    """Export (once) the model with its weights to the cache; return the .onnx path."""
    import torch

    from pf_stream.export.onnx import export_onnx
    from pf_stream.model.registry import load_model

    module, info = load_model(model_name, weights)
    digest = hashlib.sha256(f"{__version__}|{torch.__version__}|{model_name}|{info.config}".encode())
    if info.weights:
        digest.update(Path(info.weights).read_bytes())
    path = cache_dir() / "onnx" / f"{model_name}-{digest.hexdigest()[:12]}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s (first use)", info.describe(), path)
        export_onnx(module, path, size=(64, 64), dynamic=True)
    return path
