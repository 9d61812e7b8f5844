"""torchrun / DDP plumbing: one process per GPU (nccl) or per CPU worker (gloo).

``torchrun --nproc_per_node N -m pf_stream.train.cli ...`` sets RANK, WORLD_SIZE and
LOCAL_RANK; without them pf-train runs as a single plain process.  Every rank builds the
same initial weights (same seed), draws its own crops (seed + 1000 * rank), and DDP averages
gradients, so all ranks hold identical weights after every step; rank 0 alone writes
logs and checkpoints.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launch_rank() -> int:
    """This process's rank as torchrun set it (0 when not under torchrun).  Known from the
    environment before the process group is joined, so set-up can use it too."""
    return int(os.environ.get("RANK", "0"))


def log_on_rank0_only(handler: logging.Handler) -> None:
    """Let ``handler`` pass only errors on ranks other than 0.

    Every rank runs the same set-up and steps on the same config, so their warnings and
    progress lines would repeat rank 0's once per rank ("no --clip-weights given" and
    "done: ..." N times).  Errors still come from whichever rank has them.
    """
    if launch_rank() != 0:
        handler.addFilter(lambda record: record.levelno >= logging.ERROR)


def setup(device: str = "auto") -> DistInfo:
    """Join the process group when launched by torchrun; pick this rank's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = launch_rank()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    if use_cuda:
        if world > 1:
            index = local
        else:
            index = 0 if device == "auto" else (torch.device(device).index or 0)
        dev = torch.device("cuda", index)
        torch.cuda.set_device(dev)
    else:
        dev = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if use_cuda else "gloo", rank=rank, world_size=world, timeout=datetime.timedelta(minutes=10)
        )
    return DistInfo(rank, world, local, dev)


def wrap(model: nn.Module, info: DistInfo, find_unused: bool = False) -> nn.Module:
    """DDP-wrap a module with trainable parameters (unchanged when single-process).

    ``find_unused``: some parameters get no gradient in this stage (Stage I does not use
    the fusion layers).
    """
    if not info.enabled or not any(p.requires_grad for p in model.parameters()):
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [info.device.index] if info.device.type == "cuda" else None
    return DDP(model, device_ids=ids, find_unused_parameters=find_unused)


def average_gradients(module: nn.Module, info: DistInfo) -> None:
    """All-reduce (mean) the gradients of a module that is not DDP-wrapped."""
    if not info.enabled:
        return
    for p in module.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= info.world_size


def unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_agree(flag: bool, info: DistInfo) -> bool:
    """True on every rank iff ``flag`` is true on every rank (e.g. 'stop now')."""
    if not info.enabled:
        return flag
    t = torch.tensor([0 if flag else 1], device=info.device if info.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return int(t.item()) == 0


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
