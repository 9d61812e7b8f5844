"""Image folders (``frames/ir/``, ``dir:///data/seq/vi``): sorted by name, played at ``fps``.

Names sort naturally (``frame2`` before ``frame10``).  Images keep their bit depth
(16-bit PNG/TIFF thermal frames stay 16-bit).  An unreadable file is skipped and
counted, not fatal.  Two folders fused together must hold the same file names (as
paired datasets do): :func:`check_folders_pair` says which names are missing where.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np

from pf_stream.errors import UserError
from pf_stream.sources.base import FrameSkipped, ReplayableSource

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".webp")


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def folder_path(uri: str) -> Path:
    return Path(uri[len("dir://") :] if uri.startswith("dir://") else uri).expanduser()


class FolderSource(ReplayableSource):
    query_options = ("fps", "loop")

    def __init__(self, uri: str, *, fps: float | None = None, role: str = "", **kwargs):
        super().__init__(uri, fps=float(fps) if fps else 30.0, role=role, **kwargs)
        self.path = folder_path(uri)
        if not self.path.is_dir():
            raise UserError(f"{role or 'image'} folder {self.path} not found")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS), key=_natural_key)
        if not self.files:
            raise UserError(f"folder {self.path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self._i = 0

    @property
    def names(self) -> list[str]:
        """File names without extension: the pairing key between an IR and a VIS folder."""
        return [p.stem for p in self.files]

    def _open(self) -> None:
        self._i = 0

    def _read(self) -> np.ndarray | None:
        if self._i >= len(self.files):
            return None
        path = self.files[self._i]
        self._i += 1
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if image is None or image.size == 0:
            raise FrameSkipped(f"cannot read image {path}")
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]  # drop alpha
        return image

    def _rewind(self) -> bool:
        self._i = 0
        return True


def check_folders_pair(ir: FolderSource, vis: FolderSource) -> None:
    """IR and VIS folders must hold the same names; otherwise say what does not pair."""
    ir_names, vis_names = ir.names, vis.names
    if ir_names == vis_names:
        return
    only_ir = sorted(set(ir_names) - set(vis_names), key=str)
    only_vis = sorted(set(vis_names) - set(ir_names), key=str)
    if not only_ir and not only_vis:
        raise UserError(f"folders {ir.path} and {vis.path} hold the same names in a different order")
    parts = []
    if only_ir:
        parts.append(f"{len(only_ir)} only in {ir.path} (e.g. {only_ir[0]})")
    if only_vis:
        parts.append(f"{len(only_vis)} only in {vis.path} (e.g. {only_vis[0]})")
    raise UserError(f"IR and VIS folders do not pair by file name: {'; '.join(parts)}")
