"""TensorRT engine names and the rule for when an engine may be reused.

A serialized TensorRT engine only loads on the GPU model and the exact TensorRT version
that built it (an engine from an H100 does not run on a Jetson, nor one from TensorRT 10.3
under 10.4).  So every engine file says in its name what it was built for::

    lite-3f2a9c1d_h100-80gb-hbm3-sm90_trt10.3.0_fp16_160x128-640x512-1920x1200.engine
    |    |        |                   |         |    `- shapes: one size, or min-opt-max range
    |    |        |                   |         `- precision: fp32 | fp16 | bf16 | int8
    |    |        |                   `- TensorRT version
    |    |        `- GPU (name slug) and compute capability
    |    `- first 8 hex digits of the ONNX file's SHA-256 (weights and model code)
    `- model

and a JSON sidecar (``<engine>.json``) repeats it with the full GPU name and build details.
The backend looks for the engine named for *this* GPU; anything else is rebuilt.  All of
this is plain Python (no TensorRT import) so it is tested on any machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from pf_stream.errors import UserError

Size = tuple[int, int]  # (width, height)


@dataclass(frozen=True)
class ShapeRange:
    """Frame sizes an engine accepts (TensorRT optimisation profile), as (width, height)."""

    min: Size
    opt: Size
    max: Size

    def __post_init__(self):
        for axis in (0, 1):
            if not self.min[axis] <= self.opt[axis] <= self.max[axis]:
                raise UserError(f"shape range {self.text()} must satisfy min <= size <= max in width and height")

    @classmethod
    def static(cls, size: Size) -> ShapeRange:
        return cls(size, size, size)

    @property
    def is_static(self) -> bool:
        return self.min == self.opt == self.max

    def text(self) -> str:
        sizes = [self.opt] if self.is_static else [self.min, self.opt, self.max]
        return "-".join(f"{w}x{h}" for w, h in sizes)

    @classmethod
    def parse(cls, text: str) -> ShapeRange:
        parts = [tuple(int(v) for v in p.split("x")) for p in text.split("-")]
        if len(parts) == 1:
            return cls.static(parts[0])
        return cls(*parts)

    def contains(self, size: Size) -> bool:
        return all(self.min[a] <= size[a] <= self.max[a] for a in (0, 1))

    def nchw(self, size: Size) -> tuple[int, int, int, int]:
        return (1, 1, size[1], size[0])


# Default range of the engines built on first use: covers VGA/640x512 thermal cores up to
# 1080p and 1280x1024 visible cameras, tuned for 640x512.
DEFAULT_RANGE = ShapeRange((160, 128), (640, 512), (1920, 1200))


@dataclass(frozen=True)
class DeviceInfo:
    """What an engine is tied to: the GPU model, its compute capability, the TensorRT version."""

    gpu: str  # as the driver names it, e.g. "NVIDIA H100 80GB HBM3", "Orin"
    capability: tuple[int, int]
    trt: str

    @property
    def slug(self) -> str:
        return gpu_slug(self.gpu)

    @property
    def sm(self) -> str:
        return f"{self.capability[0]}{self.capability[1]}"

    @classmethod
    def current(cls, trt_version: str, index: int = 0) -> DeviceInfo:
        import torch

        return cls(torch.cuda.get_device_name(index), tuple(torch.cuda.get_device_capability(index)), trt_version)


def gpu_slug(name: str) -> str:
    """'NVIDIA H100 80GB HBM3' -> 'h100-80gb-hbm3'; safe in file names, stable across drivers."""
    name = re.sub(r"^nvidia\s+", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "gpu"


@dataclass(frozen=True)
class EngineKey:
    model: str
    source: str  # 8 hex digits of the ONNX file's hash
    gpu: str  # slug
    sm: str
    trt: str
    precision: str
    shapes: ShapeRange

    def filename(self) -> str:
        return f"{self.model}-{self.source}_{self.gpu}-sm{self.sm}_trt{self.trt}_{self.precision}_{self.shapes.text()}.engine"

    @classmethod
    def for_device(cls, model: str, source: str, device: DeviceInfo, precision: str, shapes: ShapeRange) -> EngineKey:
        return cls(model, source, device.slug, device.sm, device.trt, precision, shapes)


_NAME = re.compile(
    r"^(?P<model>[a-z0-9]+)-(?P<source>[0-9a-f]{8})_(?P<gpu>[a-z0-9-]+)-sm(?P<sm>\d+)_trt(?P<trt>[0-9.]+)"
    r"_(?P<precision>fp32|fp16|bf16|int8)_(?P<shapes>\d+x\d+(?:-\d+x\d+-\d+x\d+)?)\.engine$"
)


def parse_engine_filename(name: str) -> EngineKey | None:
    """The key an engine file's name encodes, or None for a name not in that scheme."""
    m = _NAME.match(Path(name).name)
    if m is None:
        return None
    fields = m.groupdict()
    return EngineKey(shapes=ShapeRange.parse(fields.pop("shapes")), **fields)


def mismatch(key: EngineKey, device: DeviceInfo) -> str | None:
    """Why an engine built for ``key`` cannot run on ``device`` (None when it can)."""
    if key.gpu != device.slug or key.sm != device.sm:
        return f"it was built for GPU {key.gpu} (sm{key.sm}), this is {device.slug} (sm{device.sm})"
    if key.trt != device.trt:
        return f"it was built with TensorRT {key.trt}, this is TensorRT {device.trt}"
    return None


def source_digest(onnx_path: str | Path) -> str:
    return hashlib.sha256(Path(onnx_path).read_bytes()).hexdigest()[:8]


def sidecar_path(engine_path: str | Path) -> Path:
    return Path(str(engine_path) + ".json")


def write_sidecar(engine_path: str | Path, key: EngineKey, device: DeviceInfo, **details) -> Path:
    data = {**asdict(key), "shapes": key.shapes.text(), "gpu_name": device.gpu, **details}
    path = sidecar_path(engine_path)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_engine_key(engine_path: str | Path) -> EngineKey | None:
    """An engine's key from its sidecar, else from its file name, else None (unknown origin)."""
    side = sidecar_path(engine_path)
    if side.is_file():
        try:
            data = json.loads(side.read_text())
            fields = {k: data[k] for k in ("model", "source", "gpu", "sm", "trt", "precision")}
            return EngineKey(shapes=ShapeRange.parse(data["shapes"]), **fields)
        except (ValueError, KeyError, TypeError):
            pass  # a damaged sidecar: fall back to the name
    return parse_engine_filename(Path(engine_path).name)


def other_device_engines(folder: Path, model: str, source: str, device: DeviceInfo) -> list[Path]:
    """Engines of the same model and ONNX in ``folder`` built for another GPU or TensorRT."""
    found = []
    for path in sorted(folder.glob(f"{model}-{source}_*.engine")):
        key = parse_engine_filename(path.name)
        if key is not None and mismatch(key, device):
            found.append(path)
    return found
