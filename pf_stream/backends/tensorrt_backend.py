"""TensorRT backend: a serialized engine run with its device buffers bound once per size.

Which engine runs:

* ``weights=FILE.engine``: that file.  If its name or sidecar says it was built for another
  GPU or TensorRT version it is refused with a one-line error (TensorRT could not load it).
* otherwise the model's ONNX (exported once to the cache, see ``onnxruntime_backend.onnx_for``)
  is built into ``$PF_STREAM_CACHE/engines/<name for this GPU, TensorRT, precision and
  shapes>.engine`` on first use; engines for other devices in that folder are left alone.

Buffers: for each frame size the input and output tensors are allocated once on the GPU
(as torch tensors, so no pycuda / cuda-python is needed) and their addresses given to the
execution context once.  A frame then costs two device-to-device copies into the bound
inputs and one ``execute_async_v3`` on torch's current stream.  :class:`EngineRunner`
holds that logic and talks to the engine and context only through their TensorRT 10 methods,
so it is unit-tested on the CPU with a stand-in context.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pf_stream.backends.base import Backend, require_tensorrt
from pf_stream.backends.engine_cache import (
    DEFAULT_RANGE,
    DeviceInfo,
    EngineKey,
    mismatch,
    other_device_engines,
    read_engine_key,
    source_digest,
)
from pf_stream.errors import UserError
from pf_stream.model.registry import ModelInfo

log = logging.getLogger("pf_stream.backends")

# TensorRT DataType names -> torch dtype names (resolved lazily: torch is imported by callers)
_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT8": "int8", "INT32": "int32",
           "INT64": "int64", "BOOL": "bool", "UINT8": "uint8"}


def torch_dtype(trt_dtype):
    import torch

    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    try:
        return getattr(torch, _DTYPES[name])
    except KeyError:
        raise UserError(f"engine tensor type {name} is not supported; rebuild the engine with pf-export") from None


class EngineRunner:
    """Run an engine on (1,1,H,W) tensors; buffers are (re)bound only when H or W change.

    ``stream`` returns the CUDA stream handle (int) to enqueue on; by default torch's
    current stream, so the engine orders correctly with torch ops and CUDA graphs.
    """

    def __init__(self, engine, context, input_names=("ir", "vis"), stream: Callable[[], int] | None = None,
                 device: str = "cuda"):
        import torch

        self.engine, self.context, self.device = engine, context, device
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        modes = {n: getattr(engine.get_tensor_mode(n), "name", str(engine.get_tensor_mode(n))) for n in names}
        self.inputs = [n for n in names if modes[n].endswith("INPUT")]
        self.outputs = [n for n in names if modes[n].endswith("OUTPUT")]
        if sorted(self.inputs) != sorted(input_names) or len(self.outputs) != 1:
            raise UserError(f"engine has inputs {self.inputs} and outputs {self.outputs}; expected {list(input_names)} "
                            "and one output: build it with pf-export --format engine")
        self.input_order = list(input_names)
        self.stream = stream or (lambda: torch.cuda.current_stream().cuda_stream)
        self.buffers: dict[str, torch.Tensor] = {}
        self.bound_shape: tuple[int, ...] | None = None
        self.binds = 0  # how many times buffers were allocated and bound (tests read it)
        self.profile = {n: tuple(tuple(d) for d in engine.get_tensor_profile_shape(n, 0)) for n in self.inputs}

    def check_shape(self, shape: tuple[int, ...]) -> None:
        lo, _, hi = self.profile[self.inputs[0]]
        if len(shape) != len(lo) or any(s < a or s > b for s, a, b in zip(shape, lo, hi)):
            raise UserError(f"frame shape {tuple(shape)} is outside this engine's range {tuple(lo)}..{tuple(hi)}: "
                            "rebuild it with pf-export --format engine --min-size/--max-size covering it")

    def _bind(self, shape: tuple[int, ...]) -> None:
        import torch

        self.check_shape(shape)
        if self.buffers and self.device == "cuda":
            torch.cuda.synchronize()  # an enqueued run may still use the old buffers (size changes are rare)
        self.buffers = {}
        for name in self.inputs:
            if not self.context.set_input_shape(name, shape):
                raise UserError(f"TensorRT refused input shape {shape} for {name}")
        for name in self.inputs + self.outputs:
            dims = tuple(self.context.get_tensor_shape(name))
            dtype = torch_dtype(self.engine.get_tensor_dtype(name))
            buf = torch.empty(dims, dtype=dtype, device=self.device)
            self.buffers[name] = buf
            self.context.set_tensor_address(name, buf.data_ptr())
        self.bound_shape = tuple(shape)
        self.binds += 1

    def __call__(self, ir, vis):
        """Fuse device tensors; returns the bound output buffer (overwritten by the next call)."""
        if tuple(ir.shape) != self.bound_shape:
            self._bind(tuple(ir.shape))
        for name, value in zip(self.input_order, (ir, vis)):
            self.buffers[name].copy_(value, non_blocking=True)
        if not self.context.execute_async_v3(self.stream()):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
        return self.buffers[self.outputs[0]]


def load_engine(trt, path: Path):
    """Deserialize an engine file; None when TensorRT refuses it (another GPU/version, damaged)."""
    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    try:
        engine = runtime.deserialize_cuda_engine(path.read_bytes())
    except Exception:  # noqa: BLE001 - some versions raise instead of returning None
        engine = None
    return engine, runtime  # keep the runtime alive as long as the engine


def cache_engine_for(model: str, weights, precision: str, device: DeviceInfo) -> Path:
    """The engine for ``model`` on this device, built into the cache first if missing."""
    from pf_stream.backends.onnxruntime_backend import cache_dir, onnx_for
    from pf_stream.export.tensorrt import build_engine

    onnx_path = onnx_for(model, weights)
    source = source_digest(onnx_path)
    key = EngineKey.for_device(model, source, device, precision, DEFAULT_RANGE)
    folder = cache_dir() / "engines"
    path = folder / key.filename()
    if not path.is_file():
        others = other_device_engines(folder, model, source, device) if folder.is_dir() else []
        if others:
            log.info("not reusing %d engine(s) built for other GPUs/TensorRT versions, e.g. %s", len(others), others[0].name)
        log.warning("building TensorRT %s engine for %s on %s (first use here; takes a minute)", precision, model, device.gpu)
        build_engine(onnx_path, path, precision=precision, shapes=DEFAULT_RANGE, model=model)
    return path


class TensorRTBackend(Backend):
    name = "tensorrt"
    device = "cuda"

    def __init__(self, model: str, precision: str = "fp32", weights=None, cuda_graphs: bool = False):
        import torch

        trt = require_tensorrt()
        self.precision = precision
        here = DeviceInfo.current(trt.__version__)
        if weights is not None and str(weights).endswith(".engine"):
            path = Path(weights)
            if not path.is_file():
                raise UserError(f"engine file {path} not found")
            key = read_engine_key(path)
            why = mismatch(key, here) if key is not None else None
            if why:
                raise UserError(f"cannot run {path.name} here: {why}; rebuild it on this machine with "
                                f"pf-export --model {key.model} --format engine --precision {key.precision}")
            if key is not None:
                self.precision = key.precision
        else:
            path = cache_engine_for(model, weights, precision, here)
        self.engine, self._runtime = load_engine(trt, path)
        if self.engine is None:
            raise UserError(f"TensorRT could not load {path} (built for another GPU or TensorRT version, or damaged): "
                            "delete it and rebuild with pf-export --format engine")
        self.context = self.engine.create_execution_context()
        self.runner = EngineRunner(self.engine, self.context)
        self.info = ModelInfo(name=model, weights=str(path), trained=True)
        self._graph = None
        if cuda_graphs:
            from pf_stream.backends.cuda_graph import GraphRunner

            self._graph = GraphRunner(self.runner)
        self._torch = torch
        self._io = None
        log.info("fusing with TensorRT engine %s on %s", path.name, here.gpu)

    def fuse_tensor(self, ir, vis):
        """(1,1,H,W) tensors on any device -> fused (1,1,H,W) float32 on the GPU (a reused buffer)."""
        torch = self._torch
        ir = ir.to("cuda", torch.float32, non_blocking=True)
        vis = vis.to("cuda", torch.float32, non_blocking=True)
        return (self._graph or self.runner)(ir, vis)

    def submit(self, ir: np.ndarray, vis: np.ndarray):
        """Queue one frame (pinned upload, engine, download); ``.result()`` gives the fused array."""
        if self._io is None:
            from pf_stream.backends.cuda_io import CudaFrameIO

            self._io = CudaFrameIO(self.fuse_tensor)
        return self._io.submit(ir, vis)

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        return self.submit(ir, vis).result()

    def close(self) -> None:
        if self._graph is not None:
            self._graph.close()
            self._graph = None
        self.context = None
        self.engine = None
