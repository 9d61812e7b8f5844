"""ONNX -> TensorRT engine with the TensorRT Python API (10.x; 8.6 for JetPack 6.0); build it on
the GPU that runs it.

    build_engine(onnx, out, precision="fp16", shapes=ShapeRange(min, opt, max))

* fp16 / bf16: the builder may pick half-precision kernels (layers it cannot run in half
  stay fp32); inputs and output stay fp32.
* int8: post-training calibration with an entropy calibrator (``IInt8EntropyCalibrator2``)
  fed by real IR/VIS frame pairs from a folder (:class:`CalibrationFrames`); the scales go
  to a calibration cache file so later builds skip the calibration pass.  fp16 is enabled
  alongside, for the layers TensorRT keeps out of int8.  (TensorRT 10.1+ marks implicit
  int8 calibration as deprecated in favour of explicit Q/DQ models; it still works.)
* one optimisation profile covering ``shapes`` (min..max, tuned for opt) for both inputs.

The file written is named by the caller (see ``pf_stream.backends.engine_cache``) and a JSON
sidecar records the GPU, TensorRT version, precision, shapes and how it was built.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pf_stream.backends.base import require_tensorrt
from pf_stream.backends.engine_cache import DeviceInfo, EngineKey, ShapeRange, source_digest, write_sidecar
from pf_stream.errors import UserError

log = logging.getLogger("pf_stream.export")

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
IR_DIRS, VIS_DIRS = ("ir", "infrared", "lwir"), ("vi", "vis", "visible", "rgb")


# -- calibration data (plain numpy; tested without TensorRT) ------------------------------


@dataclass
class CalibrationFrames:
    """IR/VIS pairs from ``folder/{ir,vi}/<same name>`` as (1,1,H,W) float32 luminance in [0,1].

    Frames are resized to ``size`` (the profile's opt size: calibration runs at one shape).
    Colour VIS images contribute their luma (BT.601 Y, what the pipeline fuses).
    """

    folder: Path
    size: tuple[int, int]  # (width, height)
    limit: int = 64

    def pairs(self) -> list[tuple[Path, Path]]:
        folder = Path(self.folder)
        if not folder.is_dir():
            raise UserError(f"calibration folder {folder} not found")
        ir_dir = next((folder / d for d in IR_DIRS if (folder / d).is_dir()), None)
        vis_dir = next((folder / d for d in VIS_DIRS if (folder / d).is_dir()), None)
        if ir_dir is None or vis_dir is None:
            raise UserError(f"calibration folder {folder} needs ir/ and vi/ subfolders holding images of the same names")
        vis_by_stem = {p.stem: p for p in vis_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        pairs = [(p, vis_by_stem[p.stem]) for p in sorted(ir_dir.iterdir())
                 if p.suffix.lower() in IMAGE_SUFFIXES and p.stem in vis_by_stem]
        if not pairs:
            raise UserError(f"no IR/VIS pairs with matching names in {ir_dir} and {vis_dir}")
        # Spread the picks over the whole folder rather than taking the first scenes only.
        step = max(1, len(pairs) // self.limit)
        return pairs[::step][: self.limit]

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import cv2

        from pf_stream.model.colour import to_gray01

        w, h = self.size
        for ir_path, vis_path in self.pairs():
            images = []
            for path in (ir_path, vis_path):
                image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
                if image is None:
                    raise UserError(f"cannot read calibration image {path}")
                gray = to_gray01(image)
                images.append(cv2.resize(gray, (w, h), interpolation=cv2.INTER_AREA)[None, None].copy())
            yield images[0], images[1]


def make_calibrator(trt, frames: CalibrationFrames, cache_path: Path):
    """An ``IInt8EntropyCalibrator2`` over ``frames``; reads/writes ``cache_path``.

    Defined inside a function because its base class lives in the tensorrt module, which
    is only importable on the GPU machine.
    """
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(frames)
            w, h = frames.size
            # One device buffer per input, reused for every batch.
            self.device = {name: torch.empty((1, 1, h, w), dtype=torch.float32, device="cuda") for name in ("ir", "vis")}
            self.count = 0

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            try:
                ir, vis = next(self.batches)
            except StopIteration:
                return None
            self.device["ir"].copy_(torch.from_numpy(ir))
            self.device["vis"].copy_(torch.from_numpy(vis))
            torch.cuda.synchronize()
            self.count += 1
            return [self.device[name].data_ptr() for name in names]

        def read_calibration_cache(self):
            if cache_path.is_file():
                log.info("using calibration cache %s (delete it to recalibrate)", cache_path)
                return cache_path.read_bytes()
            return None

        def write_calibration_cache(self, cache) -> None:
            cache_path.write_bytes(bytes(cache))
            log.info("calibration cache written: %s (%d frame pairs)", cache_path, self.count)

    return EntropyCalibrator()


# -- the builder --------------------------------------------------------------------------


@dataclass
class EngineBuild:
    path: Path
    key: EngineKey
    device: DeviceInfo
    build_s: float
    calibration_cache: Path | None = None


def build_engine(
    onnx_path: str | Path,
    out: str | Path,
    precision: str = "fp16",
    shapes: ShapeRange | None = None,
    model: str = "model",
    calib_frames: CalibrationFrames | None = None,
    calib_cache: str | Path | None = None,
    workspace_gb: float = 4.0,
) -> EngineBuild:
    """Parse ``onnx_path``, build a serialized engine and write it (plus sidecar) to ``out``."""
    trt = require_tensorrt()
    shapes = shapes or ShapeRange.static((640, 512))
    onnx_path, out = Path(onnx_path), Path(out)
    device = DeviceInfo.current(trt.__version__)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # TensorRT 10: explicit batch is the only mode (flag 0); 8.6 (JetPack 6.0) must be asked for it.
    major = int(trt.__version__.split(".")[0])
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise UserError(f"TensorRT cannot parse {onnx_path}: {errors.splitlines()[0] if errors else 'unknown error'}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp32" and hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # fp32 means fp32: TF32 convs drift by ~1e-3
    if precision == "fp16" or precision == "int8":
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "bf16":
        if not hasattr(trt.BuilderFlag, "BF16"):
            raise UserError(f"this TensorRT ({trt.__version__}) has no bf16; use --precision fp16")
        config.set_flag(trt.BuilderFlag.BF16)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        profile.set_shape(name, shapes.nchw(shapes.min), shapes.nchw(shapes.opt), shapes.nchw(shapes.max))
    config.add_optimization_profile(profile)

    cache_path, calibrator = None, None
    if precision == "int8":
        if calib_frames is None:
            raise UserError("--precision int8 needs calibration frames: pass --calib-dir FOLDER (with ir/ and vi/)")
        cache_path = Path(calib_cache) if calib_cache else out.with_suffix(".calib")
        config.set_flag(trt.BuilderFlag.INT8)
        calibrator = make_calibrator(trt, calib_frames, cache_path)  # kept referenced until the build ends
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)  # calibrate at the opt shape

    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    build_s = time.perf_counter() - t0
    del calibrator
    if serialized is None:
        raise UserError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT messages above)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    tmp.replace(out)
    key = EngineKey.for_device(model, source_digest(onnx_path), device, precision, shapes)
    write_sidecar(out, key, device, onnx=str(onnx_path), build_s=round(build_s, 1), workspace_gb=workspace_gb,
                  calibration_cache=str(cache_path) if cache_path else None, built=time.strftime("%Y-%m-%dT%H:%M:%S"))
    log.info("built %s (%.1f s, %.2f MB)", out, build_s, out.stat().st_size / 1e6)
    return EngineBuild(out, key, device, build_s, cache_path)
