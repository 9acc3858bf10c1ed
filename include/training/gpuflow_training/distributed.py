"""Data parallel under ``torchrun``: which process this is, and the few collective calls the loop needs.

Why plain DDP: every process holds the whole model and optimizer, so a checkpoint written by rank 0 alone is the
same full Hugging Face directory a single process writes, and a run can resume at any world size (see the README).
torchrun sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` (and the rendezvous variables); without them this is a
world of one and nothing here touches ``torch.distributed``. ``nccl`` joins GPUs, ``gloo`` CPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

# Long enough for the slowest rank to load a base model or fetch a checkpoint before the first collective.
JOIN_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class World:
    """This process's place in the job: global ``rank``, ``local_rank`` on its node, ``size`` processes in all."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1
    backend: str = ""

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, progress.json and the final model."""
        return self.rank == 0

    def describe(self) -> str:
        return f"world size {self.size}" + (f" ({self.backend}, rank {self.rank})" if self.size > 1 else "")


def join(device_kind: str) -> World:
    """Join the process group torchrun describes in the environment; a world of one when run without torchrun."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    import torch.distributed as dist

    backend = "nccl" if device_kind == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=JOIN_TIMEOUT)
    return World(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), size, backend)


def leave(world: World) -> None:
    if world.size > 1:
        import torch.distributed as dist

        dist.destroy_process_group()


def wrap(world: World, net: Any, device: Any) -> Any:
    """The module the loop calls: DDP (which copies rank 0's weights to every rank at once) or the model itself
    (one process, or a model FSDP sharded: it gathers and reduces on its own)."""
    if world.size == 1:
        return net
    from torch.distributed.fsdp import FSDPModule
    from torch.nn.parallel import DistributedDataParallel

    if isinstance(net, FSDPModule):
        return net

    return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)


def any_rank(world: World, flag: bool, device: Any) -> bool:
    """Whether ``flag`` is set on any rank: a SIGTERM seen by one rank stops all of them at the same step."""
    if world.size == 1:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean(world: World, value: Any) -> float:
    """A scalar tensor averaged over the ranks (the loss the log shows)."""
    if world.size > 1:
        import torch.distributed as dist

        value = value.detach().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= world.size
    return float(value.item())
