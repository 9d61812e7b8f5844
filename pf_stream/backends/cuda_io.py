"""Host <-> GPU transfers for numpy frames: pinned buffers, a copy stream, two slots.

``TorchBackend.fuse(ir, vis)`` takes and returns numpy arrays.  Done naively (``from_numpy
(...).cuda()`` then ``.cpu()``), each frame pays pageable-memory copies that serialise with
the model.  Here:

* host buffers are page-locked (pinned), allocated once per frame size, so copies are DMA;
* uploads and downloads run on two side streams (GPUs have separate copy engines for each
  direction), so frame n+1 uploads while frame n computes and frame n-1 downloads;
* two slots (double buffering) let :meth:`submit` return before the result is ready:
  the caller submits frame n+1, then collects frame n with :meth:`Pending.result`.

Events order the four actors (host, upload stream, compute stream, download stream) without
ever blocking the compute stream on the host:

    host writes pinned in  -> upload stream: upload -> [uploaded]
    compute stream waits [uploaded], runs the model, copies output to the slot -> [computed]
    download stream waits [computed], copies to pinned out -> [downloaded] -> host reads
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

SLOTS = 2


@dataclass(eq=False)
class _Slot:
    shape: tuple[int, int]
    host_in: list[torch.Tensor]  # pinned (1, 1, H, W) float32, one per input
    dev_in: list[torch.Tensor]
    dev_out: torch.Tensor
    host_out: torch.Tensor  # pinned
    uploaded: torch.cuda.Event = field(default_factory=torch.cuda.Event)
    computed: torch.cuda.Event = field(default_factory=torch.cuda.Event)
    downloaded: torch.cuda.Event = field(default_factory=torch.cuda.Event)


class Pending:
    """A frame in flight; :meth:`result` waits for its download and returns the fused array."""

    def __init__(self, slot: _Slot):
        self._slot = slot
        self._value: np.ndarray | None = None

    def result(self) -> np.ndarray:
        if self._value is None:
            self._slot.downloaded.synchronize()
            # Copy out of the pinned buffer: the slot is reused two frames later.
            self._value = self._slot.host_out[0, 0].numpy().copy()
        return self._value


class CudaFrameIO:
    """Runs ``compute(ir, vis) -> out`` (CUDA tensors, (1,1,H,W)) on numpy frames."""

    def __init__(self, compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], device: str = "cuda"):
        self.compute = compute
        self.device = torch.device(device)
        self.upload_stream = torch.cuda.Stream(device=self.device)
        self.download_stream = torch.cuda.Stream(device=self.device)
        self.slots: list[_Slot] = []
        self.next = 0
        self.pending: list[Pending | None] = [None] * SLOTS

    def _slot_for(self, shape: tuple[int, int]) -> int:
        if not self.slots or self.slots[0].shape != shape:
            torch.cuda.synchronize(self.device)  # the old buffers may still be in use
            self.slots = [self._new_slot(shape) for _ in range(SLOTS)]
            self.pending = [None] * SLOTS
        index = self.next
        self.next = (self.next + 1) % SLOTS
        if self.pending[index] is not None:
            self.pending[index].result()  # collect what nobody collected, so the slot is free
        return index

    def _new_slot(self, shape: tuple[int, int]) -> _Slot:
        h, w = shape

        def pinned() -> torch.Tensor:
            return torch.empty((1, 1, h, w), dtype=torch.float32, pin_memory=True)

        def dev() -> torch.Tensor:
            return torch.empty((1, 1, h, w), dtype=torch.float32, device=self.device)

        return _Slot(shape, [pinned(), pinned()], [dev(), dev()], dev(), pinned())

    def submit(self, ir: np.ndarray, vis: np.ndarray) -> Pending:
        index = self._slot_for(ir.shape)
        slot = self.slots[index]
        for host, frame in zip(slot.host_in, (ir, vis)):
            host[0, 0].numpy()[...] = frame  # the previous upload from this slot is done (result() waited)
        compute_stream = torch.cuda.current_stream(self.device)
        with torch.cuda.stream(self.upload_stream):
            # Device inputs of this slot were last read by the model two frames ago.
            self.upload_stream.wait_event(slot.computed)
            for dev, host in zip(slot.dev_in, slot.host_in):
                dev.copy_(host, non_blocking=True)
            slot.uploaded.record(self.upload_stream)
        compute_stream.wait_event(slot.uploaded)
        out = self.compute(slot.dev_in[0], slot.dev_in[1])
        slot.dev_out.copy_(out)  # on the compute stream: safe even if `out` is a graph's static buffer
        slot.computed.record(compute_stream)
        with torch.cuda.stream(self.download_stream):
            self.download_stream.wait_event(slot.computed)
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
            slot.downloaded.record(self.download_stream)
        pending = Pending(slot)
        self.pending[index] = pending
        return pending
