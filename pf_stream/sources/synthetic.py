"""``synthetic://``: a deterministic moving scene, for demos, tests and benchmarks.

The IR and VIS renditions show the same world, pixel-aligned:

* VIS: a colour, textured background (blocks of "buildings", fine texture) that pans
  slowly, with people and a car that are *camouflaged* (barely darker than what is
  behind them);
* IR: the same background, smooth and low in contrast (little temperature difference),
  with the people and the car as warm, bright blobs.

A good fusion shows both the texture and the warm targets.  Frame ``k`` depends only on
``seed`` and ``k``, so runs are reproducible.  Options (URI query or keyword):
``size=640x512``, ``fps=30``, ``seed=0``, ``frames=N`` (end after N frames; default
endless), ``bits=16`` (IR as raw 16-bit counts in a narrow band, like a Y16 thermal
camera), ``modality=ir|vis`` (default: the role the source plays).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from pf_stream.errors import UserError, parse_size
from pf_stream.sources.base import ReplayableSource

_PAN = 48  # pixels of slow camera pan on each side


class SyntheticSource(ReplayableSource):
    query_options = ("size", "fps", "seed", "frames", "bits", "modality")

    def __init__(self, uri: str = "synthetic://", *, size: str | tuple[int, int] | None = None, fps: float | None = None,
                 seed: int = 0, frames: int | None = None, bits: int = 8, modality: str | None = None,
                 role: str = "", **kwargs):
        super().__init__(uri, fps=float(fps) if fps else 30.0, role=role, **kwargs)
        self.size = parse_size(size) if isinstance(size, str) else tuple(size or (640, 512))
        self.seed = int(seed)
        self.frames = None if frames in (None, "") else int(frames)
        self.bits = int(bits)
        self.modality = (modality or role or "vis").lower()
        if self.modality not in ("ir", "vis"):
            raise UserError(f"synthetic source: modality must be ir or vis, got {self.modality!r}")
        if self.bits not in (8, 16):
            raise UserError(f"synthetic source: bits must be 8 or 16, got {self.bits}")
        if self.frames is not None and self.frames < 1:
            raise UserError("synthetic source: frames must be >= 1")
        self._scene: _Scene | None = None
        self._k = 0

    def _open(self) -> None:
        if self._scene is None:
            self._scene = _Scene(self.size, self.seed)
        self._k = 0

    def _read(self) -> np.ndarray | None:
        if self.frames is not None and self._k >= self.frames:
            return None
        k, self._k = self._k, self._k + 1
        if self.modality == "vis":
            return self._scene.vis(k)
        ir = self._scene.ir(k)
        if self.bits == 16:
            # Raw thermal counts: ~3000 counts of contrast around 28000, the usual low-contrast Y16 picture.
            return (ir.astype(np.uint16) * np.uint16(12) + np.uint16(28000)) + self._scene.noise16(k)
        return ir

    def _rewind(self) -> bool:
        self._k = 0
        return True


class _Scene:
    """Everything precomputed once, so a frame costs a few slices and blends (~1-2 ms)."""

    def __init__(self, size: tuple[int, int], seed: int):
        w, h = size
        self.w, self.h = w, h
        rng = np.random.default_rng(seed)
        bw, bh = w + 2 * _PAN, h + 2 * _PAN

        # Background: blocky "buildings" with colour, plus fine texture the IR does not see.
        base = np.zeros((bh, bw, 3), np.float32)
        base[:] = rng.uniform(60, 110, 3)
        for _ in range(max(8, (bw * bh) // 12000)):
            x0, y0 = int(rng.integers(0, bw)), int(rng.integers(0, bh))
            x1, y1 = x0 + int(rng.integers(bw // 20, bw // 4)), y0 + int(rng.integers(bh // 20, bh // 3))
            cv2.rectangle(base, (x0, y0), (x1, y1), tuple(float(c) for c in rng.uniform(40, 220, 3)), -1)
        texture = cv2.GaussianBlur(rng.normal(0, 1, (bh, bw)).astype(np.float32), (0, 0), 1.2)
        texture *= 18.0 / (texture.std() + 1e-6)
        self.vis_bg = np.clip(base + texture[:, :, None], 0, 255).astype(np.uint8)
        # The IR sees the same structure as slight temperature differences, blurred.
        gray = cv2.cvtColor(self.vis_bg, cv2.COLOR_BGR2GRAY).astype(np.float32)
        self.ir_bg = np.clip(cv2.GaussianBlur(gray, (0, 0), 3.0) * 0.25 + 70.0, 0, 255).astype(np.uint8)

        # Targets: people (upright ellipses) and a car (rounded box), as soft sprites.
        unit = max(8, h // 12)
        self.sprites = [_blob(unit // 2, unit * 3 // 2) for _ in range(4)] + [_blob(unit * 3, unit, box=True)]
        self.paths = [(rng.uniform(0, 1), rng.uniform(0.35, 0.85), rng.uniform(0.6, 1.6) * rng.choice([-1, 1]),
                       rng.uniform(0, 2 * math.pi)) for _ in self.sprites]
        self.heat = [int(v) for v in rng.integers(150, 235, len(self.sprites))]
        # A few fixed noise patterns, cycled: sensor-like noise without per-frame random draws.
        self._noise8 = [rng.integers(0, 6, (h, w), dtype=np.uint8) for _ in range(4)]
        self._noise16 = [rng.integers(0, 40, (h, w), dtype=np.uint16) for _ in range(4)]

    def _pan(self, k: int) -> tuple[int, int]:
        return (int(_PAN + _PAN * 0.8 * math.sin(2 * math.pi * k / 360)), int(_PAN + _PAN * 0.4 * math.sin(2 * math.pi * k / 500)))

    def _targets(self, k: int):
        """(sprite, x, y, heat) for frame k: targets walk across the scene and wrap around."""
        for sprite, (x0, yfrac, speed, phase), heat in zip(self.sprites, self.paths, self.heat):
            sh, sw = sprite.shape
            span = self.w + sw
            x = int((x0 * span + speed * k * 2.0) % span) - sw
            y = int(yfrac * self.h + 6 * math.sin(k / 9.0 + phase)) - sh // 2
            yield sprite, x, y, heat

    def vis(self, k: int) -> np.ndarray:
        px, py = self._pan(k)
        img = self.vis_bg[py : py + self.h, px : px + self.w].copy()
        for sprite, x, y, _ in self._targets(k):
            roi, spr = _clip(img, sprite, x, y)
            if roi is not None:
                # Camouflage: only ~12% darker than the background behind the target.
                roi[:] = (roi * (1.0 - 0.12 * spr[:, :, None])).astype(np.uint8)
        return img

    def ir(self, k: int) -> np.ndarray:
        px, py = self._pan(k)
        img = self.ir_bg[py : py + self.h, px : px + self.w].copy()
        for sprite, x, y, heat in self._targets(k):
            roi, spr = _clip(img, sprite, x, y)
            if roi is not None:
                np.maximum(roi, (spr * heat).astype(np.uint8), out=roi)
        return cv2.add(img, self._noise8[k % 4])

    def noise16(self, k: int) -> np.ndarray:
        return self._noise16[k % 4]


def _blob(half_w: int, half_h: int, box: bool = False) -> np.ndarray:
    """A soft-edged target mask in [0, 1]."""
    pad = 4
    mask = np.zeros((2 * half_h + 2 * pad, 2 * half_w + 2 * pad), np.float32)
    if box:
        cv2.rectangle(mask, (pad, pad + half_h // 2), (pad + 2 * half_w, pad + 2 * half_h), 1.0, -1)
    else:
        cv2.ellipse(mask, (pad + half_w, pad + half_h), (half_w, half_h), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), 2.0)


def _clip(img: np.ndarray, sprite: np.ndarray, x: int, y: int):
    """The part of ``img`` under the sprite placed at (x, y), and the matching sprite part."""
    sh, sw = sprite.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, img.shape[1]), min(y + sh, img.shape[0])
    if x0 >= x1 or y0 >= y1:
        return None, None
    return img[y0:y1, x0:x1], sprite[y0 - y : y1 - y, x0 - x : x1 - x]
