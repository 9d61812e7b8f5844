"""What pf-eval fuses with: weight-free pixel baselines, or any model through a backend.

A fuser takes IR and VIS luminance (float32 HxW in [0, 1]) and returns fused luminance
the same way, exactly like :meth:`pf_stream.backends.base.Backend.fuse`; the evaluation
code sees nothing else, so a new engine only needs a new branch in :func:`make_fuser`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from pf_stream.errors import UserError, check_choice

FuseFn = Callable[[np.ndarray, np.ndarray], np.ndarray]

# Pixel-wise rules need no model at all; `classic` is the contourlet model with fixed rules.
PIXEL_METHODS: dict[str, FuseFn] = {
    "average": lambda ir, vis: (ir + vis) * np.float32(0.5),
    "max": np.maximum,
}
METHODS: tuple[str, ...] = (*PIXEL_METHODS, "classic")


@dataclass
class Fuser:
    """A named fusion function plus whatever must be released after use."""

    label: str  # what the reports print, e.g. "method max" or "model lite (weights.safetensors)"
    fuse: FuseFn
    close: Callable[[], None] = field(default=lambda: None)
    details: dict = field(default_factory=dict)  # goes into the JSON report as is


def make_fuser(
    method: str | None = None, model: str | None = None, weights: str | None = None, device: str = "cpu"
) -> Fuser:
    """Exactly one of ``method`` (average, max, classic) or ``model`` (any registry name)."""
    if (method is None) == (model is None):
        raise UserError("give exactly one of --method (average, max, classic) or --model NAME")
    if method is not None:
        check_choice("method", method, METHODS)
    if method in PIXEL_METHODS:
        if weights is not None:
            raise UserError(f"--method {method} has no weights; drop --weights")
        return Fuser(label=f"method {method}", fuse=PIXEL_METHODS[method], details={"method": method})

    name = model if model is not None else method
    # Lazy: torch is imported only when a network actually runs.
    from pf_stream.backends import create_backend

    backend = create_backend(model=name, backend="torch", device=device, weights=weights)
    info = getattr(backend, "info", None)
    label = f"model {info.describe()}" if info is not None else f"model {name}"
    details = {"model": name, "weights": weights, "backend": "torch", "device": device}
    if method is not None:
        details["method"] = method
    if info is not None:
        details["trained"] = bool(info.trained)
        details["weights"] = info.weights
    return Fuser(label=label, fuse=backend.fuse, close=backend.close, details=details)
