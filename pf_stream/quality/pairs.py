"""Finding and reading IR/VIS image pairs: a folder with ir/ and vi/ holding matching names.

This is the layout of every set in the shared data (tno, roadscene, msrs_test, and each
clip of sequences/m3svd_clips): ``ir/X.png`` and ``vi/X.png`` are one pair.  Names match
on the stem, so ``ir/X.png`` pairs with ``vi/X.jpg``.  Anything wrong with the folder
is a one-line :class:`UserError` that says what to fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.quality.metrics import to_gray8

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
IR_DIR, VIS_DIR = "ir", "vi"
LAYOUT_HINT = "a folder holding ir/ and vi/ subfolders with matching image names"


@dataclass(frozen=True)
class ImagePair:
    name: str  # the shared stem, used for output file names and report rows
    ir: Path
    vis: Path


@dataclass
class LoadedPair:
    """One pair as the protocol reads it: 8-bit gray sources, plus the VIS colour for saving."""

    name: str
    ir: np.ndarray  # uint8 HxW
    vis: np.ndarray  # uint8 HxW
    vis_bgr: np.ndarray  # uint8 HxWx3 (a gray VIS image comes back with three equal channels)


def _short_list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def images_by_stem(folder: Path) -> dict[str, Path]:
    """Image files of ``folder`` keyed by stem, sorted by name; hidden and non-image files are ignored."""
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in IMAGE_EXTS or not path.is_file():
            continue
        if path.stem in found:
            raise UserError(f"two images named {path.stem!r} in {folder}: {found[path.stem].name} and {path.name}; keep one")
        found[path.stem] = path
    return found


def read_name_list(list_file: Path) -> list[str]:
    """Stems from a text file, one per line, with or without an image extension; '#' starts a comment."""
    try:
        lines = Path(list_file).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserError(f"cannot read --list {list_file}: {exc.strerror or exc}") from None
    names: list[str] = []
    for line in lines:
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        stem = Path(entry).stem if Path(entry).suffix.lower() in IMAGE_EXTS else entry
        if stem not in names:
            names.append(stem)
    if not names:
        raise UserError(f"--list {list_file} names no images: write one image name per line")
    return names


def discover_pairs(data_dir: Path, list_file: Path | None = None) -> list[ImagePair]:
    """All matched pairs in ``data_dir`` (or those named in ``list_file``), sorted by name."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise UserError(f"{data_dir} is not a folder: point at {LAYOUT_HINT}")
    folders = {sub: data_dir / sub for sub in (IR_DIR, VIS_DIR)}
    missing = [f"{sub}/" for sub, path in folders.items() if not path.is_dir()]
    if missing:
        raise UserError(f"{data_dir} has no {' or '.join(missing)} subfolder: point at {LAYOUT_HINT}")
    ir, vis = images_by_stem(folders[IR_DIR]), images_by_stem(folders[VIS_DIR])
    if not ir and not vis:
        raise UserError(f"{data_dir}/ir and {data_dir}/vi hold no images ({', '.join(IMAGE_EXTS)})")

    if list_file is not None:
        wanted = read_name_list(list_file)
        absent = [n for n in wanted if n not in ir or n not in vis]
        if absent:
            raise UserError(f"{len(absent)} name(s) from {list_file} have no ir/+vi/ pair in {data_dir}: {_short_list(absent)}")
        return [ImagePair(n, ir[n], vis[n]) for n in wanted]

    only_ir, only_vis = sorted(set(ir) - set(vis)), sorted(set(vis) - set(ir))
    if only_ir or only_vis:
        parts = [f"{len(names)} in {sub}/ only ({_short_list(names)})" for sub, names in ((IR_DIR, only_ir), (VIS_DIR, only_vis)) if names]
        raise UserError(f"unmatched pair names in {data_dir}: {'; '.join(parts)}; rename them or pass --list")
    return [ImagePair(n, ir[n], vis[n]) for n in sorted(ir)]


def read_bgr(path: Path) -> np.ndarray:
    """Any image file -> uint8 BGR, the way the protocol reads it (OpenCV's default colour read)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"cannot read image {path}: not an image OpenCV can decode, or damaged")
    return image


def load_pair(pair: ImagePair) -> LoadedPair:
    ir_bgr, vis_bgr = read_bgr(pair.ir), read_bgr(pair.vis)
    if ir_bgr.shape[:2] != vis_bgr.shape[:2]:
        (ih, iw), (vh, vw) = ir_bgr.shape[:2], vis_bgr.shape[:2]
        raise UserError(f"pair {pair.name!r} differs in size: ir {iw}x{ih}, vi {vw}x{vh}; align and crop it first")
    return LoadedPair(pair.name, to_gray8(ir_bgr), to_gray8(vis_bgr), vis_bgr)
