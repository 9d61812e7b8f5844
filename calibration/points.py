"""``--method points``: hand-picked IR/VIS point pairs from a CSV or YAML file.

CSV, one pair per line, an optional header, ``#`` comments::

    ir_x,ir_y,vis_x,vis_y
    102.5,88,231,190.5

YAML, optionally with the image sizes (otherwise give --ir-size/--vis-size or images)::

    ir_size: [640, 512]
    vis_size: [1920, 1080]
    points:
      - [102.5, 88, 231, 190.5]          # ir_x, ir_y, vis_x, vis_y
      - {ir: [400, 90], vis: [1100, 195]}
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from pf_stream.errors import UserError


@dataclass
class PointPairs:
    ir: np.ndarray  # (N, 2) IR pixels
    vis: np.ndarray  # (N, 2) VIS pixels
    ir_size: tuple[int, int] | None = None
    vis_size: tuple[int, int] | None = None


def _row(values, where: str) -> list[float]:
    if isinstance(values, dict):  # {ir: [x, y], vis: [x, y]}: 1 + 3 numbers made a pair too
        ir, vis = values.get("ir"), values.get("vis")
        pair = all(isinstance(v, (list, tuple)) and len(v) == 2 for v in (ir, vis))
        values = [*ir, *vis] if pair else values
    try:
        row = [float(v) for v in values]
    except (TypeError, ValueError):
        row = []
    if len(row) != 4 or not np.all(np.isfinite(row)):
        raise UserError(f"{where}: expected 4 numbers ir_x, ir_y, vis_x, vis_y, got {values!r}")
    return row


def _size(value, key: str, path: Path) -> tuple[int, int] | None:
    if value is None:
        return None
    if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
        raise UserError(f"{path}: '{key}' must be [width, height] in pixels, got {value!r}")
    return int(value[0]), int(value[1])


def _delimiter(text: str) -> str:
    """',' unless the first line that is not a comment uses ';' or tabs and no commas
    (spreadsheets in many locales save CSV with ';'; that line was taken as a header)."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            if "," not in line:
                return ";" if ";" in line else "\t" if "\t" in line else ","
            break
    return ","


def _from_csv(text: str, path: Path) -> list[list[float]]:
    rows, seen_first = [], False
    for number, cells in enumerate(csv.reader(io.StringIO(text), delimiter=_delimiter(text)), start=1):
        cells = [c.strip() for c in cells]
        if not cells or not any(cells) or cells[0].startswith("#"):
            continue
        if not seen_first and not any(_is_number(c) for c in cells):
            seen_first = True
            continue  # header: only a first line with no number at all (a typo in data is an error)
        seen_first = True
        rows.append(_row(cells, f"{path} line {number}"))
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def read_points(path: str | Path) -> PointPairs:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"points file {path} {'is a folder: give the CSV or YAML file' if path.is_dir() else 'not found'}")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a BOM made the first pair look like a header
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read points file {path}: {exc}") from None
    ir_size = vis_size = None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            line = getattr(getattr(exc, "problem_mark", None), "line", None)
            raise UserError(f"{path} is not valid YAML{'' if line is None else f' (line {line + 1})'}") from None
        if not isinstance(data, dict) or not isinstance(data.get("points"), list):
            raise UserError(f"{path}: expected a mapping with a 'points' list (see pf-calibrate --help)")
        rows = [_row(v, f"{path} points[{i}]") for i, v in enumerate(data["points"])]
        ir_size, vis_size = _size(data.get("ir_size"), "ir_size", path), _size(data.get("vis_size"), "vis_size", path)
    else:
        rows = _from_csv(text, path)
    if not rows:
        raise UserError(f"{path} holds no point pairs")
    arr = np.asarray(rows, dtype=np.float64)
    return PointPairs(arr[:, :2], arr[:, 2:], ir_size, vis_size)
