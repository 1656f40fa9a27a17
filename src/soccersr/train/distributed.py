"""Multi-GPU / multi-node plumbing for torchrun: process group, rank facts, small collectives.

``torchrun --nproc_per_node N -m soccersr.cli train ...`` sets WORLD_SIZE, RANK, LOCAL_RANK,
MASTER_ADDR and MASTER_PORT; with WORLD_SIZE > 1 the process group is initialised from them
(NCCL on CUDA, gloo on the CPU). Without them everything here is a no-op for one process.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """Where this process sits in the run."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, validates and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """ "auto" -> this process's CUDA device when there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    return device


def init_distributed(device: str | torch.device = "auto") -> DistContext:
    """Join the torchrun process group when WORLD_SIZE > 1; return this process's context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext(rank=0, world_size=1, local_rank=0, device=resolve_device(device))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world_size,
            device_id=dev if dev.type == "cuda" else None,
        )
        log.info("rank %d/%d joined the %s process group on %s", rank, world_size, backend, dev)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def close_distributed(ctx: DistContext) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def mean_over_ranks(values: dict[str, torch.Tensor], ctx: DistContext) -> dict[str, float]:
    """Average 0-dim tensors over ranks and return floats (one host sync: call at logging steps only)."""
    if not values:
        return {}
    keys = sorted(values)
    stacked = torch.stack([values[k].float() for k in keys])
    if ctx.distributed:
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked /= ctx.world_size
    return dict(zip(keys, stacked.tolist(), strict=True))


def gather_to_main(obj: Any, ctx: DistContext) -> list[Any] | None:
    """Every rank's ``obj`` as a list on rank 0 (None elsewhere); picklable objects only."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] | None = [None] * ctx.world_size if ctx.is_main else None
    dist.gather_object(obj, out, dst=0)
    return out


def broadcast_from_main(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj if ctx.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def ranks_in_sync(module: nn.Module, ctx: DistContext) -> bool:
    """True when every rank holds the same weights (DDP should guarantee it; checked at checkpoints)."""
    if not ctx.distributed:
        return True
    # Two cheap fingerprints per rank; any divergence changes them.
    params = [p.detach().float() for p in module.parameters()]
    local = torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)]).to(ctx.device)  # type: ignore[arg-type]
    low, high = local.clone(), local.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN)
    dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))
