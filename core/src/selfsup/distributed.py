"""Small helpers for code that runs both in one process and under torchrun/DDP."""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist


def resolve_device(want: str) -> torch.device:
    """The device of ``want`` ("auto", "cpu", "cuda", "cuda:N", "mps") for this process.

    "auto" is CUDA when available, else the CPU; plain "cuda" is this process's GPU
    under torchrun (``LOCAL_RANK``). Asking for CUDA without it is a ValueError.
    """
    import os

    if want == "auto":
        want = "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={want!r} but CUDA is not available; use 'cpu'")
    if want == "cuda":  # one GPU per process under torchrun
        want = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
    return torch.device(want)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient into each rank's slice."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, z.contiguous())
        ctx.batch, ctx.rank = z.shape[0], dist.get_rank()
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.batch : (ctx.rank + 1) * ctx.batch]


def gather_with_grad(z: torch.Tensor) -> torch.Tensor:
    """Concatenate ``z`` ``[B, D]`` from every rank along dim 0, keeping gradients.

    In one process this returns ``z`` unchanged. Under DDP the backward pass sums
    the gradients of every rank's loss into each rank's slice, so a loss computed
    on the gathered batch trains exactly as it would on one process with the
    global batch (DDP then averages over ranks). Every rank must hold the same
    batch size.
    """
    if not is_distributed() or world_size() == 1:
        return z
    out: torch.Tensor = _GatherWithGrad.apply(z)
    return out
