"""ONNX Runtime backend: the model exported once (dynamic size), then run by ORT.

Give ``weights=FILE.onnx`` to run an exported file directly; otherwise the model (with
its shipped or given weights) is exported to a cache folder on first use
(``$PF_STREAM_CACHE`` or ``~/.cache/pf-stream``) under a name that changes whenever the
weights, the model code's version or torch change.

On ``device="cuda"`` (needs onnxruntime-gpu) the execution providers are, in order:
TensorRT (when ORT offers it: engines cached per GPU and TensorRT version under
``$PF_STREAM_CACHE/ort-trt/``, fp16 when asked), CUDA, then CPU for anything left.  If the
TensorRT provider is offered but cannot start (libnvinfer missing), the session is made
again without it, with a warning.  fp16 needs the TensorRT provider: the CUDA provider runs
an fp32 ONNX file in fp32.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from pf_stream import __version__
from pf_stream.backends.base import Backend
from pf_stream.backends.engine_cache import DEFAULT_RANGE, ShapeRange, gpu_slug
from pf_stream.errors import UserError

log = logging.getLogger("pf_stream.backends")

TRT_EP, CUDA_EP, CPU_EP = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def cache_dir() -> Path:
    return Path(os.environ.get("PF_STREAM_CACHE", Path.home() / ".cache" / "pf-stream"))


def _profile_text(shapes: ShapeRange, size) -> str:
    n, c, h, w = shapes.nchw(size)
    return ",".join(f"{name}:{n}x{c}x{h}x{w}" for name in ("ir", "vis"))


def gpu_providers(precision: str, available: list[str], trt_cache: Path, shapes: ShapeRange = DEFAULT_RANGE,
                  use_tensorrt: bool = True) -> list:
    """The provider list for a CUDA session: [(TensorRT, opts)?, (CUDA, opts), CPU].

    Pure function of what ORT offers, so the choice is tested without a GPU.
    """
    if CUDA_EP not in available:
        raise UserError("--backend onnxruntime --device cuda needs onnxruntime-gpu: "
                        "pip uninstall onnxruntime && pip install onnxruntime-gpu")
    if precision == "bf16":
        raise UserError("--backend onnxruntime has no bf16 path; use --precision fp16, or --backend torch for bf16")
    providers: list = []
    if use_tensorrt and TRT_EP in available:
        trt_cache.mkdir(parents=True, exist_ok=True)
        providers.append((TRT_EP, {
            "device_id": 0,
            "trt_fp16_enable": precision == "fp16",
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(trt_cache),
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(trt_cache),
            # One explicit profile for the frame sizes we expect, so a size change inside it
            # does not trigger a rebuild of the engine.
            "trt_profile_min_shapes": _profile_text(shapes, shapes.min),
            "trt_profile_opt_shapes": _profile_text(shapes, shapes.opt),
            "trt_profile_max_shapes": _profile_text(shapes, shapes.max),
        }))
    elif precision == "fp16":
        raise UserError("fp16 in onnxruntime needs its TensorRT provider (onnxruntime-gpu built with TensorRT, plus "
                        "pip install tensorrt); use --precision fp32, or --backend torch --precision fp16")
    providers.append((CUDA_EP, {"device_id": 0, "cudnn_conv_algo_search": "EXHAUSTIVE"}))
    providers.append(CPU_EP)
    return providers


def ort_trt_cache() -> Path:
    """Per-GPU folder for ORT's TensorRT engines (ORT checks versions; the folder keeps GPUs apart)."""
    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "unknown-gpu"
    return cache_dir() / "ort-trt" / gpu_slug(name)


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
        if device == "cuda":
            providers = gpu_providers(precision, ort.get_available_providers(), ort_trt_cache())
        else:
            providers = [CPU_EP]
        try:
            self.session = self._session(ort, path, options, providers)
        except Exception as exc:  # ORT raises its own exception types for bad files
            raise UserError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from None
        used = self.session.get_providers()
        if device == "cuda" and CUDA_EP not in used:
            raise UserError(f"ONNX Runtime could not start its CUDA provider (running on {used}): check the CUDA/cuDNN "
                            "libraries onnxruntime-gpu needs")
        if precision == "fp16" and TRT_EP not in used:
            raise UserError("ONNX Runtime could not start its TensorRT provider, which fp16 needs; use --precision fp32")
        log.info("fusing with %s in onnxruntime (%s)", path.name, ", ".join(used))
        self.path = path
        # A file exported without --dynamic takes one frame size only; ORT's own error for any
        # other size is a multi-line traceback, so say it in one line (see fuse).
        dims = self.session.get_inputs()[0].shape
        self._fixed_hw = tuple(dims[2:4]) if len(dims) == 4 and all(isinstance(d, int) for d in dims[2:4]) else None

    def _check_size(self, h: int, w: int) -> None:
        if self._fixed_hw is not None and (h, w) != self._fixed_hw:
            fh, fw = self._fixed_hw
            raise UserError(f"{self.path.name} was exported for {fw}x{fh} frames only, these are {w}x{h}: "
                            f"re-export it with pf-export --dynamic (or --size {w}x{h}), or drop --weights")

    @staticmethod
    def _session(ort, path: Path, options, providers):
        try:
            return ort.InferenceSession(str(path), options, providers=providers)
        except Exception:
            names = [p[0] if isinstance(p, tuple) else p for p in providers]
            if TRT_EP not in names:
                raise
            # TensorRT provider offered by the wheel but unusable here: fall back cleanly.
            log.warning("ONNX Runtime's TensorRT provider failed to start; using the CUDA provider")
            return ort.InferenceSession(str(path), options, providers=[p for p, n in zip(providers, names) if n != TRT_EP])

    def fuse(self, ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
        self._check_size(*ir.shape[-2:])
        feed = {"ir": ir[None, None].astype(np.float32, copy=False), "vis": vis[None, None].astype(np.float32, copy=False)}
        return self.session.run(["fused"], feed)[0][0, 0]

    def fuse_tensor(self, ir, vis):
        """(1,1,H,W) float32 CUDA tensors -> fused CUDA tensor, without host copies (IO binding)."""
        import torch

        self._check_size(*ir.shape[-2:])
        if self.device != "cuda":
            return torch.from_numpy(self.fuse(ir[0, 0].cpu().numpy(), vis[0, 0].cpu().numpy()))[None, None]
        ir, vis = ir.contiguous().float(), vis.contiguous().float()
        out = torch.empty_like(ir)
        binding = self.session.io_binding()
        for name, t in (("ir", ir), ("vis", vis)):
            binding.bind_input(name, "cuda", 0, np.float32, tuple(t.shape), t.data_ptr())
        binding.bind_output("fused", "cuda", 0, np.float32, tuple(out.shape), out.data_ptr())
        torch.cuda.current_stream().synchronize()  # ORT runs on its own stream: inputs must be ready
        self.session.run_with_iobinding(binding)  # returns once its stream is done
        return out


def onnx_for(model_name: str, weights) -> Path:
    """Export (once) the model with its weights to the cache; return the .onnx path."""
    import torch

    from pf_stream.export.onnx import export_onnx
    from pf_stream.model.registry import load_model

    module, info = load_model(model_name, weights)
    digest = hashlib.sha256(f"{__version__}|{torch.__version__}|{model_name}|{info.config}".encode())
    if info.weights:
        digest.update(Path(info.weights).read_bytes())
    # The model code too: an edited architecture must never run from a stale export.
    for source in sorted(Path(__file__).resolve().parents[1].joinpath("model").glob("*.py")):
        digest.update(source.read_bytes())
    path = cache_dir() / "onnx" / f"{model_name}-{digest.hexdigest()[:12]}.onnx"
    if not path.is_file():
        log.info("exporting %s to %s (first use)", info.describe(), path)
        export_onnx(module, path, size=(64, 64), dynamic=True)
    return path
