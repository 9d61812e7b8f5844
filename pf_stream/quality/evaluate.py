"""Fuse every pair of a folder, score it with the protocol's metrics, report rows and means.

The fused luminance is clipped to [0, 1] (never min-max stretched: stretching an
unbounded output lowered every metric in our measurements) and rounded to 8 bits; that
8-bit image is what the metrics score and what ``--save-dir`` writes, so a saved folder
reproduces the numbers exactly.
"""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.quality.fusers import Fuser
from pf_stream.quality.metrics import METRIC_NAMES, Scores, score_all
from pf_stream.quality.pairs import ImagePair, LoadedPair, load_pair

PROTOCOL = (
    "CDDFuse/PromptFusion Evaluator: 8-bit gray (float BGR->GRAY, rounded); EN bits; SF RMS first differences; "
    "AG central differences; MI nats, summed over IR and VIS; SCD; VIF = VIFp(IR,F)+VIFp(VIS,F), 4 scales; "
    "Qabf Sobel, Xydeas-Petrovic constants; SSIM 7x7 uniform, data_range 2, summed over IR and VIS"
)
OUTPUT_RULE = "fused luminance clipped to [0,1], rounded to 8 bits (no min-max stretch)"


def quantise(fused: np.ndarray) -> np.ndarray:
    """Fused float luminance -> uint8: clip to [0, 1], scale, round half up (as colour.merge_luma_chroma does)."""
    fused = np.nan_to_num(np.asarray(fused, dtype=np.float32), nan=0.0)
    return np.floor(np.clip(fused, 0.0, 1.0) * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)


def fuse_pair(fuser: Fuser, ir8: np.ndarray, vis8: np.ndarray) -> np.ndarray:
    """8-bit gray sources -> 8-bit fused luminance: the one place the fuser is called."""
    scale = np.float32(1.0 / 255.0)
    fused = fuser.fuse(ir8.astype(np.float32) * scale, vis8.astype(np.float32) * scale)
    if fused.shape != ir8.shape:
        raise RuntimeError(f"{fuser.label} returned shape {fused.shape} for inputs of shape {ir8.shape}")
    return quantise(fused)


def save_fused(path: Path, fused8: np.ndarray, vis_bgr: np.ndarray | None = None) -> None:
    """Write the fused 8-bit PNG; with ``vis_bgr`` of a colour camera, VIS chroma goes back on (fused Y + VIS CrCb)."""
    image = fused8
    if vis_bgr is not None and not (np.array_equal(vis_bgr[..., 0], vis_bgr[..., 1]) and np.array_equal(vis_bgr[..., 1], vis_bgr[..., 2])):
        from pf_stream.model.colour import merge_luma_chroma, split_luma_chroma

        _, chroma = split_luma_chroma(vis_bgr)
        image = merge_luma_chroma(fused8.astype(np.float32) / np.float32(255.0), chroma)
    if not cv2.imwrite(str(path), image):
        raise UserError(f"cannot write {path}: check that the folder is writable")


@dataclass
class ImageResult:
    name: str
    width: int
    height: int
    scores: Scores
    fuse_ms: float


@dataclass
class EvalReport:
    fuser: Fuser
    source: str  # the data folder, and the list file if any
    images: list[ImageResult] = field(default_factory=list)
    seconds: float = 0.0

    def means(self) -> dict[str, float]:
        if not self.images:
            return {}
        rows = np.array([[getattr(r.scores, m) for m in METRIC_NAMES] for r in self.images], dtype=np.float64)
        return dict(zip(METRIC_NAMES, rows.mean(axis=0).tolist()))

    def to_json(self) -> dict:
        return {
            "tool": "pf-eval",
            "source": self.source,
            "fuser": {"label": self.fuser.label, **self.fuser.details},
            "protocol": PROTOCOL,
            "output": OUTPUT_RULE,
            "count": len(self.images),
            "metrics": list(METRIC_NAMES),
            "mean": self.means(),
            "images": [
                {"name": r.name, "width": r.width, "height": r.height, **r.scores.as_dict(), "fuse_ms": round(r.fuse_ms, 3)}
                for r in self.images
            ],
            "seconds": round(self.seconds, 3),
            "machine": f"{platform.machine()} {platform.system()}, Python {platform.python_version()}",
        }


def evaluate(
    pairs: Sequence[ImagePair],
    fuser: Fuser,
    source: str = "",
    save_dir: Path | None = None,
    save_colour: bool = False,
    on_row: Callable[[ImageResult], None] | None = None,
    report: EvalReport | None = None,
) -> EvalReport:
    """Fuse and score every pair in order; ``on_row`` sees each result as soon as it exists.

    Rows go into ``report`` (a new one if not given) as they are scored, so a caller that
    passes its own keeps the rows done so far when Ctrl-C interrupts the loop.
    """
    if save_dir is not None:
        save_dir = Path(save_dir)
        try:
            save_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create --save-dir {save_dir}: {exc.strerror or exc}") from None
    report = report if report is not None else EvalReport(fuser=fuser, source=source)
    start = time.perf_counter()
    for pair in pairs:
        loaded: LoadedPair = load_pair(pair)
        t0 = time.perf_counter()
        fused8 = fuse_pair(fuser, loaded.ir, loaded.vis)
        fuse_ms = (time.perf_counter() - t0) * 1e3
        if save_dir is not None:
            save_fused(save_dir / f"{pair.name}.png", fused8, loaded.vis_bgr if save_colour else None)
        h, w = fused8.shape
        row = ImageResult(pair.name, w, h, score_all(fused8, loaded.ir, loaded.vis), fuse_ms)
        report.images.append(row)
        report.seconds = time.perf_counter() - start
        if on_row is not None:
            on_row(row)
    return report


# --- text output -----------------------------------------------------------------------


class TablePrinter:
    """An aligned text table, printed row by row so long runs show progress."""

    def __init__(self, names: Sequence[str], out: TextIO = sys.stdout):
        self.width = max([len("mean"), len("image"), *(len(n) for n in names)])
        self.out = out

    def _line(self, first: str, cells: Sequence[str]) -> None:
        print(f"{first:<{self.width}}" + "".join(f"{c:>8}" for c in cells), file=self.out, flush=True)

    def header(self) -> None:
        self._line("image", METRIC_NAMES)

    def row(self, name: str, values: dict[str, float]) -> None:
        self._line(name, [_fmt(values[m]) for m in METRIC_NAMES])

    def rule(self) -> None:
        print("-" * (self.width + 8 * len(METRIC_NAMES)), file=self.out)


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.2f}"


def _json_safe(value):
    """NaN/inf are not JSON: write them as null rather than lose a long run's results."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, payload: dict) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_json_safe(payload), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write --json {path}: {exc.strerror or exc}") from None
