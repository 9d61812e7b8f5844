"""Training pairs: folders with ``ir/`` and ``vi/`` of matching names, random aligned crops.

Evaluation data is never trained on, and that is enforced here rather than left to the
config: the 50 RoadScene pairs of the CDDFuse test split (``cddfuse_test50.txt``, the
split published numbers use; the names are repeated below so the guard holds even if
that file goes missing) and any folder that lies under a ``tno`` folder are skipped,
whatever the config says.  An ``exclude`` list in the config adds more names.

Images are decoded once and kept as uint8 in memory (the shared data is ~100 MB): a
training step then costs one crop and one flip per sample, no disk I/O.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from pf_stream.errors import UserError

log = logging.getLogger("pf_stream.train")

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# The 50 RoadScene pairs of the CDDFuse test split: evaluation only.  The list is also in
# ../shared/data/roadscene/cddfuse_test50.txt; it is repeated here so the guard holds even
# when that file is missing or edited.
ROADSCENE_TEST50 = frozenset(
    """FLIR_00211 FLIR_00977 FLIR_01130 FLIR_04269 FLIR_04424 FLIR_04484 FLIR_04512 FLIR_04593 FLIR_04688
FLIR_04722 FLIR_04943 FLIR_05005 FLIR_05064 FLIR_05105 FLIR_05857 FLIR_05879 FLIR_05893 FLIR_05914
FLIR_05955 FLIR_06282 FLIR_06325 FLIR_06392 FLIR_06430 FLIR_06506 FLIR_06570 FLIR_06795 FLIR_06974
FLIR_06993 FLIR_06995 FLIR_07190 FLIR_07206 FLIR_07209 FLIR_07555 FLIR_07732 FLIR_07786 FLIR_07809
FLIR_07968 FLIR_07970 FLIR_08021 FLIR_08058 FLIR_08094 FLIR_08202 FLIR_08248 FLIR_08284 FLIR_08526
FLIR_08592 FLIR_08721 FLIR_08858 FLIR_09465 FLIR_video_02829""".split()
)
EVAL_ONLY_FOLDERS = ("tno",)


@dataclass
class Pair:
    name: str
    ir: np.ndarray  # (H, W) uint8
    vis: np.ndarray  # (H, W) uint8 luminance (BT.601 Y)
    source: str = ""


@dataclass
class DataConfig:
    folders: list[str]
    crop: int = 128
    exclude: list[str] = field(default_factory=list)  # extra names (stems) never to train on
    exclude_files: list[str] = field(default_factory=list)  # text files of names, one a line
    # Video clips hold near-duplicate consecutive frames (30 fps): keep every n-th so six
    # clips do not outweigh 170 distinct RoadScene scenes.
    sequence_stride: int = 5


def _stem(name: str) -> str:
    return Path(name).stem


def read_name_list(path: str | Path) -> set[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"exclude list {path} not found: fix the path in the training config")
    return {_stem(line.strip()) for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")}


def is_eval_only(folder: Path, stem: str) -> bool:
    """True for TNO and the RoadScene-50 test pairs: never to be trained on."""
    parts = {p.lower() for p in folder.resolve().parts} | {p.lower() for p in folder.parts}
    if any(f in parts for f in EVAL_ONLY_FOLDERS):
        return True
    return stem in ROADSCENE_TEST50


def list_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Matching (ir, vi) files of one folder; one-line errors for empty or unmatched folders."""
    folder = Path(folder)
    ir_dir, vi_dir = folder / "ir", folder / "vi"
    if not folder.is_dir():
        raise UserError(f"training folder {folder} not found: give folders that hold ir/ and vi/ subfolders")
    if not ir_dir.is_dir() or not vi_dir.is_dir():
        raise UserError(f"training folder {folder} has no ir/ and vi/ subfolders: each training folder needs both")
    irs = {_stem(p.name): p for p in ir_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    vis = {_stem(p.name): p for p in vi_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
    if not irs or not vis:
        raise UserError(f"training folder {folder} has no images in ir/ or vi/ (looked for {', '.join(IMAGE_EXTS)})")
    unmatched = sorted(set(irs) ^ set(vis))
    if unmatched:
        raise UserError(
            f"training folder {folder}: {len(unmatched)} image(s) without a partner of the same name in ir/ and vi/ "
            f"(e.g. {unmatched[0]!r}); every ir/X needs a vi/X"
        )
    return [(irs[k], vis[k]) for k in sorted(irs)]


def _same_place(folder: str | Path) -> Path:
    """One key for every spelling of a folder: A, A/, ./A, /abs/A and a symlink to it."""
    return Path(folder).expanduser().resolve()


def unique_folders(folders: list[str], what: str = "data.folders") -> list[str]:
    """``folders`` with repeats (by resolved path) removed, first spelling kept, and one
    warning per repeated folder: a folder named twice used to train on every pair twice."""
    groups: dict[Path, list[str]] = {}
    for f in folders:
        groups.setdefault(_same_place(f), []).append(str(f))
    for spellings in groups.values():
        if len(spellings) > 1:
            times = "twice" if len(spellings) == 2 else f"{len(spellings)} times"
            others = [s for s in dict.fromkeys(spellings) if s != spellings[0]]
            also = f" (also as {', '.join(others)})" if others else ""
            log.warning("%s %s given %s%s; used once", what, spellings[0], times, also)
    return [spellings[0] for spellings in groups.values()]


def expand_folders(folders: list[str]) -> list[tuple[Path, bool]]:
    """(folder, is_sequence): a folder with ir/+vi/ is itself a set; otherwise each of its
    subfolders that has them is one video clip.  A clip reached twice (named on its own
    and through its parent folder) is kept once, where it came first."""
    out: list[tuple[Path, bool]] = []
    seen: dict[Path, str] = {}
    for f in unique_folders(folders):
        p = Path(f)
        found = [(p, False)]
        if p.is_dir() and not (p / "ir").is_dir():
            subs = sorted(s for s in p.iterdir() if (s / "ir").is_dir())
            if subs:
                found = [(s, True) for s in subs]
        for folder, is_sequence in found:
            key = _same_place(folder)
            if key in seen:
                log.warning("training folder %s is also reached through %s; used once", folder, seen[key])
                continue
            seen[key] = f
            out.append((folder, is_sequence))
    return out


def _read_gray(path: Path, vis: bool) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise UserError(f"cannot read image {path}: not an image file or corrupt")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3:
        # VIS -> Y (BT.601, like the frame path's colour split); IR stored as 3 channels -> gray too.
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def load_pairs(config: DataConfig) -> list[Pair]:
    """Read every allowed pair into memory; refuse evaluation data and empty results."""
    if not config.folders:
        raise UserError("no training folders given: set data.folders in the config or pass --data")
    excluded = {_stem(n) for n in config.exclude}
    for f in config.exclude_files:
        excluded |= read_name_list(f)
    pairs: list[Pair] = []
    skipped_eval = skipped_listed = 0
    for folder, is_sequence in expand_folders(config.folders):
        found = list_pairs(folder)
        if is_sequence:
            found = found[:: max(1, config.sequence_stride)]
        for ir_path, vi_path in found:
            stem = _stem(ir_path.name)
            if is_eval_only(folder, stem):
                skipped_eval += 1
                continue
            if stem in excluded:
                skipped_listed += 1
                continue
            ir, vis = _read_gray(ir_path, False), _read_gray(vi_path, True)
            if ir.shape != vis.shape:
                raise UserError(f"pair {stem} in {folder}: ir is {ir.shape[::-1]} but vi is {vis.shape[::-1]}; pairs must be aligned and the same size")
            if min(ir.shape) < config.crop:
                ir, vis = _pad_to(ir, config.crop), _pad_to(vis, config.crop)
            pairs.append(Pair(stem, ir, vis, str(folder)))
    if skipped_eval:
        log.info("left out %d evaluation-only pairs (TNO, RoadScene test-50)", skipped_eval)
    if skipped_listed:
        log.info("left out %d pairs named in the exclude list", skipped_listed)
    if not pairs:
        raise UserError(
            "no training pairs left: the folders are empty or hold only evaluation data (TNO and the RoadScene "
            "test-50 pairs are never trained on)"
        )
    return pairs


def _pad_to(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape
    return cv2.copyMakeBorder(image, 0, max(0, size - h), 0, max(0, size - w), cv2.BORDER_REFLECT_101)


class CropSampler:
    """Random aligned crops + flips of the in-memory pairs, as float tensors in [0, 1].

    Pairs are drawn with probability proportional to their area so that big frames are
    not under-sampled; the generator is seeded (per rank) so runs repeat exactly.
    """

    def __init__(self, pairs: list[Pair], crop: int, seed: int = 0):
        self.pairs, self.crop = pairs, crop
        area = np.array([p.ir.size for p in pairs], dtype=np.float64)
        self.prob = area / area.sum()
        self.rng = np.random.default_rng(seed)

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.crop
        irs = np.empty((size, 1, c, c), np.uint8)
        viss = np.empty((size, 1, c, c), np.uint8)
        for i, k in enumerate(self.rng.choice(len(self.pairs), size=size, p=self.prob)):
            p = self.pairs[k]
            h, w = p.ir.shape
            y, x = self.rng.integers(0, h - c + 1), self.rng.integers(0, w - c + 1)
            a, b = p.ir[y : y + c, x : x + c], p.vis[y : y + c, x : x + c]
            if self.rng.random() < 0.5:
                a, b = a[:, ::-1], b[:, ::-1]
            if self.rng.random() < 0.2:  # vertical flips are rarer in real scenes; a few keep the net symmetric
                a, b = a[::-1], b[::-1]
            irs[i, 0], viss[i, 0] = a, b
        scale = 1.0 / 255.0
        return torch.from_numpy(irs).float() * scale, torch.from_numpy(viss).float() * scale
