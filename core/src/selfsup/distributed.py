"""Small helpers for code that runs both in one process and under torchrun/DDP."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` ``[B, D]`` from every rank along dim 0, keeping gradients.

    In one process this returns ``z`` unchanged. Under DDP the backward pass sums
    the gradients of every rank's loss into each rank's slice, so a loss computed
    on the gathered batch trains exactly as it would on one process with the
    global batch (DDP then averages over ranks).
    """
    if not is_distributed() or world_size() == 1:
        return z
    from torch.distributed.nn.functional import all_gather

    return torch.cat(all_gather(z.contiguous()), dim=0)
