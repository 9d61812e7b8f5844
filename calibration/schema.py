"""The calibration YAML: what pf-calibrate writes and pf-stream --calib reads.

Schema (version 1)::

    pf_stream_calibration: 1        # schema version
    homography: [[h00, h01, h02], [h10, h11, h12], [h20, h21, h22]]   # IR pixel -> VIS pixel
    ir_size: [width, height]        # IR image size the homography was estimated at
    vis_size: [width, height]       # VIS image size the homography maps into
    method: target | auto | points
    error_px: 0.42                  # RMS reprojection / mean corner error, px (null if unknown)
    score: 0.93                     # method confidence in [0, 1] (null if not applicable)
    date: "2026-11-26T12:00:00Z"
    model: homography               # optional: homography | affine | similarity (all stored as 3x3)
    details: {pairs_used: 8}        # optional: method-specific numbers (checks, counts), for people

Readers ignore keys they do not know, so adding optional keys keeps version 1.
See docs/CALIBRATION.md for what error_px and score mean for each method.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from pf_stream.calibration.geometry import folds
from pf_stream.errors import UserError, read_yaml

SCHEMA_VERSION = 1


@dataclass
class Calibration:
    homography: np.ndarray  # 3x3 float64, IR pixel -> VIS pixel
    ir_size: tuple[int, int]  # (width, height)
    vis_size: tuple[int, int]  # (width, height)
    method: str = "points"
    error_px: float | None = None
    score: float | None = None
    date: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    model: str = "homography"
    details: dict[str, float | int | str] = field(default_factory=dict)

    def scaled_to(self, ir_size: tuple[int, int], vis_size: tuple[int, int]) -> np.ndarray:
        """Homography for other capture sizes: H' = S_vis @ H @ S_ir^-1 (pure rescaling)."""
        sx_ir, sy_ir = ir_size[0] / self.ir_size[0], ir_size[1] / self.ir_size[1]
        sx_vi, sy_vi = vis_size[0] / self.vis_size[0], vis_size[1] / self.vis_size[1]
        s_ir = np.diag([sx_ir, sy_ir, 1.0])
        s_vi = np.diag([sx_vi, sy_vi, 1.0])
        h = s_vi @ self.homography @ np.linalg.inv(s_ir)
        return h / h[2, 2]


def _size(value, key: str, path: Path) -> tuple[int, int]:
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise UserError(f"{path}: '{key}' must be [width, height] in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def load_calibration(path: str | Path) -> Calibration:
    """Read and validate a calibration YAML; any problem is one UserError line."""
    path = Path(path)
    data = read_yaml(path, "calibration file", "re-run pf-calibrate, or drop --calib")
    if not isinstance(data, dict) or "homography" not in data:
        raise UserError(f"{path} is not a pf-stream calibration file (no 'homography' key): re-run pf-calibrate")
    version = data.get("pf_stream_calibration", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        raise UserError(f"{path} has calibration schema {version!r}, this pf-stream reads {SCHEMA_VERSION}: re-run pf-calibrate")
    try:
        h = np.asarray(data["homography"], dtype=np.float64)
    except (TypeError, ValueError):
        h = np.zeros(0)
    if h.shape != (3, 3) or not np.all(np.isfinite(h)) or abs(np.linalg.det(h)) < 1e-12:
        raise UserError(f"{path}: 'homography' must be an invertible 3x3 matrix of numbers")
    ir_size = _size(data.get("ir_size"), "ir_size", path)
    if folds(h, ir_size):  # pf-stream would warp a torn, folded picture without a word
        raise UserError(f"{path}: 'homography' sends part of the {ir_size[0]}x{ir_size[1]} IR picture to infinity: re-run pf-calibrate, or fix the file")
    return Calibration(
        homography=h / h[2, 2] if abs(h[2, 2]) > 1e-12 else h,
        ir_size=ir_size,
        vis_size=_size(data.get("vis_size"), "vis_size", path),
        method=str(data.get("method", "points")),
        error_px=_number(data.get("error_px"), "error_px", path),
        score=_number(data.get("score"), "score", path),
        date=str(data.get("date", "")),
        model=str(data.get("model", "homography")),
        details=_details(data.get("details"), path),
    )


def _number(value, key: str, path: Path) -> float | None:
    """An optional number (null allowed); anything else is one UserError line."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{path}: '{key}' must be a number or null, got {value!r}: re-run pf-calibrate, or fix the file")
    return float(value)


def _details(value, path: Path) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{path}: 'details' must be a mapping of names to numbers or text")
    return {str(k): v for k, v in value.items() if isinstance(v, (int, float, str))}


def save_calibration(cal: Calibration, path: str | Path) -> None:
    """Write the YAML atomically (a crash never leaves half a file)."""
    path = Path(path)
    doc = {
        "pf_stream_calibration": SCHEMA_VERSION,
        "homography": [[float(v) for v in row] for row in cal.homography],
        "ir_size": list(cal.ir_size),
        "vis_size": list(cal.vis_size),
        "method": cal.method,
        "error_px": None if cal.error_px is None else float(cal.error_px),
        "score": None if cal.score is None else float(cal.score),
        "date": cal.date,
        "model": cal.model,
    }
    if cal.details:
        doc["details"] = {k: (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in cal.details.items()}
    text = "# pf-stream calibration: IR pixel -> VIS pixel (see calibration/schema.py)\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)  # a failed rename (e.g. onto a folder) left it behind
        raise UserError(f"cannot write calibration to {path}: {exc.strerror or exc}") from None
