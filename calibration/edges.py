"""Oriented edges: the part of an IR and a VIS picture that both modalities share.

Thermal and visible intensities are unrelated (a warm wall may be bright in IR and dark
in VIS, and the sign flips from scene to scene), but object outlines sit at the same
place in both.  So ``auto`` registration compares *where edges are and which way they
run*, never grey levels.  Edge direction is kept modulo 180 degrees, which makes the
comparison blind to contrast polarity.

Two views of the same idea:

* :func:`edge_points` -- the IR side: a list of sub-pixel edge points with direction.
* :class:`EdgeField` -- the VIS side: for any query point and direction, the nearest VIS
  edge of a compatible direction (distance maps, one per direction bin), plus soft
  "closeness" maps for the FFT translation search.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NUM_BINS = 8  # direction bins over [0, pi); a point matches its own bin and both neighbours
MIN_EDGE_LENGTH = 12  # px: shorter edge fragments are texture, not outlines


@dataclass
class EdgePoints:
    xy: np.ndarray  # (N, 2) float64, sub-pixel (x, y)
    angle: np.ndarray  # (N,) gradient direction in [0, pi)
    bins: np.ndarray  # (N,) int direction bin

    def __len__(self) -> int:
        return len(self.xy)

    def subset(self, index: np.ndarray) -> "EdgePoints":
        return EdgePoints(self.xy[index], self.angle[index], self.bins[index])


def angle_bins(angle: np.ndarray) -> np.ndarray:
    return (np.floor(angle / np.pi * NUM_BINS).astype(np.int64)) % NUM_BINS


def _gradients(gray: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    blurred = cv2.GaussianBlur(gray.astype(np.float32), (0, 0), sigma)
    gx = cv2.Sobel(blurred, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(blurred, cv2.CV_32F, 0, 1, ksize=3)
    return gx, gy, np.sqrt(gx * gx + gy * gy)


def _edge_mask(gx: np.ndarray, gy: np.ndarray, mag: np.ndarray, keep: float) -> np.ndarray:
    """Canny on our own gradients, thresholds from the gradient distribution.

    Fixed thresholds fail across cameras (a 16-bit thermal core stretched to 8 bits has
    far weaker gradients than a daylight VIS frame); keeping the strongest ``keep`` share
    of gradient pixels adapts to each picture.
    """
    high = float(np.percentile(mag, 100.0 * (1.0 - keep)))
    if high <= 1e-6:
        return np.zeros(mag.shape, dtype=bool)
    scale = 4000.0 / max(float(mag.max()), 1e-6)  # Canny wants int16 gradients: use the range
    dx = np.clip(gx * scale, -32767, 32767).astype(np.int16)
    dy = np.clip(gy * scale, -32767, 32767).astype(np.int16)
    edges = cv2.Canny(dx, dy, 0.5 * high * scale, high * scale, L2gradient=True)
    border = 3  # Sobel and blur are unreliable at the border
    edges[:border], edges[-border:], edges[:, :border], edges[:, -border:] = 0, 0, 0, 0
    # Texture (grass, foliage, sensor noise) breaks into short edge fragments that match
    # anything nearby and pull the fit astray; outlines of objects are long.  Keep those.
    count, labels, stats, _ = cv2.connectedComponentsWithStats(edges, connectivity=8)
    long_enough = stats[:, cv2.CC_STAT_AREA] >= MIN_EDGE_LENGTH
    long_enough[0] = False  # background
    return long_enough[labels]


def _subpixel_offsets(mag: np.ndarray, ys: np.ndarray, xs: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Shift each edge pixel along its normal to the parabola peak of gradient magnitude.

    Canny gives whole pixels; averaging many of them is unbiased only on axis-aligned
    edges.  A three-point parabola along the normal brings each point to ~0.1 px.
    """
    sx, sy = np.rint(nx).astype(np.int64), np.rint(ny).astype(np.int64)  # normal snapped to 8-neighbourhood
    h, w = mag.shape
    m0 = mag[ys, xs]
    mp = mag[np.clip(ys + sy, 0, h - 1), np.clip(xs + sx, 0, w - 1)]
    mm = mag[np.clip(ys - sy, 0, h - 1), np.clip(xs - sx, 0, w - 1)]
    denom = mm - 2.0 * m0 + mp
    t = np.where(denom < -1e-9, 0.5 * (mm - mp) / np.where(denom < -1e-9, denom, -1.0), 0.0)
    t = np.clip(t, -0.5, 0.5)
    return np.stack([t * sx, t * sy], axis=1)


def _edges(gray: np.ndarray, sigma: float, keep: float) -> tuple[np.ndarray, np.ndarray, EdgePoints]:
    """Edge pixels (row and column arrays) and the matching sub-pixel EdgePoints, same order."""
    gx, gy, mag = _gradients(gray, sigma)
    ys, xs = np.nonzero(_edge_mask(gx, gy, mag, keep))
    angle = np.arctan2(gy[ys, xs], gx[ys, xs])
    nx, ny = np.cos(angle), np.sin(angle)
    xy = np.stack([xs, ys], axis=1).astype(np.float64) + _subpixel_offsets(mag, ys, xs, nx, ny)
    angle = np.mod(angle, np.pi)
    return ys, xs, EdgePoints(xy, angle, angle_bins(angle))


def edge_points(gray: np.ndarray, sigma: float, keep: float = 0.12) -> EdgePoints:
    """Sub-pixel edge points of a gray picture, with direction modulo 180 degrees."""
    return _edges(gray, sigma, keep)[2]


class EdgeField:
    """Nearest direction-compatible VIS edge for any point, as distance maps per bin."""

    def __init__(self, gray: np.ndarray, sigma: float, keep: float = 0.12):
        ys, xs, self.points = _edges(gray, sigma, keep)
        self.shape = gray.shape[:2]
        # Index image: which EdgePoints entry sits on each edge pixel.
        index = np.full(self.shape, -1, dtype=np.int64)
        index[ys, xs] = np.arange(len(ys))
        self._dist: list[np.ndarray] | np.ndarray = []
        self._nearest: list[np.ndarray] | np.ndarray = []  # per bin: HxW index into self.points
        pix_bins = self.points.bins
        for k in range(NUM_BINS):
            near = (pix_bins == k) | (pix_bins == (k - 1) % NUM_BINS) | (pix_bins == (k + 1) % NUM_BINS)
            sel = np.zeros(self.shape, dtype=bool)
            sel[ys[near], xs[near]] = True
            if not sel.any():
                self._dist.append(np.full(self.shape, 1e6, np.float32))
                self._nearest.append(np.zeros(self.shape, np.int64))
                continue
            dist, labels = cv2.distanceTransformWithLabels(
                (~sel).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
            )
            # Labels number the zero pixels; read back which pixel each label is.
            lut = np.zeros(int(labels.max()) + 1, dtype=np.int64)
            zy, zx = np.nonzero(sel)
            lut[labels[zy, zx]] = index[zy, zx]
            self._dist.append(dist)
            self._nearest.append(lut[labels])
        # One (bins, H, W) stack each, so a lookup is a single gather.
        self._dist = np.stack(self._dist)
        self._nearest = np.stack(self._nearest)
        self.normals = np.stack([np.cos(self.points.angle), np.sin(self.points.angle)], axis=1)

    def nearest(self, xy: np.ndarray, bins: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For each query point: (pixel distance, index of nearest compatible edge, inside)."""
        h, w = self.shape
        xi, yi = np.rint(xy[:, 0]).astype(np.int64), np.rint(xy[:, 1]).astype(np.int64)
        inside = (xi >= 0) & (yi >= 0) & (xi < w) & (yi < h)
        flat = (bins * h + np.clip(yi, 0, h - 1)) * w + np.clip(xi, 0, w - 1)
        dist = np.where(inside, self._dist.ravel()[flat], np.inf)
        return dist, self._nearest.ravel()[flat], inside

    def soft_maps(self, radius: float = 1.5) -> list[np.ndarray]:
        """Per-bin closeness exp(-d^2 / 2r^2): 1 on a compatible edge, ~0 far from one."""
        return [np.exp(-(d.astype(np.float32) ** 2) / (2.0 * radius * radius)) for d in self._dist]
