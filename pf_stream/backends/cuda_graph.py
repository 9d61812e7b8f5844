"""CUDA-graph replay of a fixed-shape function, re-captured when the input shape changes.

A small fusion network at 640x512 launches a few hundred kernels that each run for
microseconds: on a fast GPU the time goes into launching them, not into them.  A CUDA graph
records the launches once and replays them with one call.  A graph is tied to its input
and output *addresses* and *shapes*, so:

* inputs are copied into static buffers owned by the graph before each replay;
* the output is a static buffer, overwritten by the next replay (copy it if you keep it);
* a new input shape (another camera size) means a new capture.  Only the latest graph
  is kept: a stream normally keeps one size, and every graph holds its own memory.

The bookkeeping (which shape is captured, when to re-capture, how many captures) is kept
apart from the CUDA calls: :class:`GraphRunner` takes a ``capture`` function, so it runs
on the CPU in tests with :func:`eager_capture`, and on the GPU with :func:`cuda_capture`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

log = logging.getLogger("pf_stream.backends")

TensorFn = Callable[..., torch.Tensor]
ShapeKey = tuple[tuple[tuple[int, ...], torch.dtype, torch.device], ...]


@dataclass
class Captured:
    """One recorded call: static inputs to fill, a replay, and the static output it writes."""

    key: ShapeKey
    inputs: tuple[torch.Tensor, ...]
    output: torch.Tensor
    replay: Callable[[], None]
    release: Callable[[], None] = lambda: None


Capture = Callable[[TensorFn, tuple[torch.Tensor, ...]], Captured]


def shape_key(tensors: tuple[torch.Tensor, ...]) -> ShapeKey:
    return tuple((tuple(t.shape), t.dtype, t.device) for t in tensors)


def eager_capture(fn: TensorFn, example: tuple[torch.Tensor, ...]) -> Captured:
    """A stand-in 'graph' that calls ``fn`` eagerly on static buffers (any device, tests)."""
    inputs = tuple(t.clone() for t in example)
    output = fn(*inputs).clone()

    def replay() -> None:
        output.copy_(fn(*inputs))

    return Captured(shape_key(example), inputs, output, replay)


def cuda_capture(fn: TensorFn, example: tuple[torch.Tensor, ...], warmup: int = 3, pool=None) -> Captured:
    """Record ``fn`` on static copies of ``example`` (CUDA tensors) as a torch CUDA graph.

    Warm-up runs on a side stream first, as torch requires: they let cuDNN pick its
    algorithms and the caching allocator settle, none of which may happen during capture.
    """
    inputs = tuple(t.clone() for t in example)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(warmup):
            fn(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=pool):
        output = fn(*inputs)

    def release() -> None:
        graph.reset()

    return Captured(shape_key(example), inputs, output, graph.replay, release)


class GraphRunner:
    """Call ``fn(*tensors)`` through a captured graph; re-capture when shapes change.

    ``runner(*tensors)`` returns the graph's static output: valid until the next call.
    """

    def __init__(self, fn: TensorFn, capture: Capture = cuda_capture):
        self.fn = fn
        self.capture = capture
        self.current: Captured | None = None
        self.captures = 0  # how many times a graph was recorded (tests and logs read it)
        self.replays = 0

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        key = shape_key(tensors)
        if self.current is None or self.current.key != key:
            self._recapture(tensors)
        for static, value in zip(self.current.inputs, tensors):
            static.copy_(value, non_blocking=True)
        self.current.replay()
        self.replays += 1
        return self.current.output

    def _recapture(self, tensors: tuple[torch.Tensor, ...]) -> None:
        if self.current is not None:
            log.info("input shape changed to %s: re-capturing the CUDA graph", [tuple(t.shape) for t in tensors])
            self.current.release()  # free the old graph's memory before recording a new one
            self.current = None
        self.current = self.capture(self.fn, tensors)
        self.captures += 1

    def close(self) -> None:
        if self.current is not None:
            self.current.release()
            self.current = None
