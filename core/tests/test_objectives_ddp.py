"""Under DDP the objectives train exactly as on one process with the global batch.

Two gloo processes on CPU each hold half of a global batch. Each rank gathers the
projections with :func:`selfsup.distributed.gather_with_grad` and computes the full
loss; the test checks that this loss, and the encoder gradient after DDP's
averaging, equal those of one process on the whole batch. Batch-coupled losses
(Barlow Twins, SimCLR, VICReg) are where a missing gather would show; DirectPred
is where ranks would otherwise set different predictor weights from their own
halves of the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.multiprocessing.spawn import spawn

from selfsup.components import SSLDataset
from selfsup.objectives import barlow_twins, simclr, simsiam, vicreg

WORLD_SIZE = 2
GLOBAL_BATCH = 8

# Heads without BatchNorm: BatchNorm statistics are per rank under DDP, which would
# make the comparison fail for a reason that is not the objective's.
CASES: dict[str, tuple[Any, dict[str, Any]]] = {
    "barlow_twins": (
        barlow_twins.build,
        {"proj_hidden_dim": 12, "proj_out_dim": 6, "proj_norm": "none"},
    ),
    "simclr": (simclr.build, {"proj_hidden_dim": 12, "proj_out_dim": 6, "proj_norm": "layer"}),
    "vicreg": (vicreg.build, {"proj_hidden_dim": 12, "proj_out_dim": 6, "proj_norm": "none"}),
    "directpred": (
        simsiam.build,
        {"proj_hidden_dim": 12, "proj_out_dim": 6, "proj_norm": "layer", "predictor": "directpred"},
    ),
}


class SharedViews(SSLDataset):
    """Views whose randomness does not depend on the batch size.

    A scale and a per-feature shift are drawn from the generator, so every rank,
    holding any part of the batch, draws the same transformation as one process
    holding all of it.
    """

    name = "test.shared_views"

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        scale = 1 + 0.5 * torch.rand((), generator=generator)
        shift = 0.3 * torch.randn(batch.shape[1], generator=generator)
        return batch * scale + shift


class LinearEncoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_dim = 5
        self.fc = nn.Linear(6, 5)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def global_batch() -> torch.Tensor:
    return torch.randn(GLOBAL_BATCH, 6, generator=torch.Generator().manual_seed(0))


def loss_and_grad(name: str, batch: torch.Tensor, ddp: bool) -> tuple[float, torch.Tensor]:
    build, options = CASES[name]
    torch.manual_seed(1)  # the same initial weights in every process
    encoder = LinearEncoder()
    task = build(encoder, SharedViews(), **options)
    model: nn.Module = nn.parallel.DistributedDataParallel(task) if ddp else task
    out = model(batch, torch.Generator().manual_seed(2))
    out["loss"].backward()
    assert encoder.fc.weight.grad is not None
    return out["loss"].item(), encoder.fc.weight.grad.clone()


def _worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE
    )
    try:
        half = GLOBAL_BATCH // WORLD_SIZE
        local = global_batch()[rank * half : (rank + 1) * half]
        results = {name: loss_and_grad(name, local, ddp=True) for name in CASES}
        torch.save(results, Path(out_dir) / f"rank{rank}.pt")
        # no rank tears gloo down while the other still talks to it: without this, a
        # loaded machine now and then aborts a rank ("terminate called without an
        # active exception" from gloo's threads)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_gathered_losses_and_gradients_equal_the_single_process_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned children import _worker by this module's name, which pytest's importlib
    # mode derives from the rootdir ("core.tests.test_objectives_ddp"); the children
    # inherit sys.path, so put the directory that name is relative to on it.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[__name__.count(".")]))
    spawn(_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD_SIZE)

    for rank in range(WORLD_SIZE):
        results = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        for name in CASES:
            expected_loss, expected_grad = loss_and_grad(name, global_batch(), ddp=False)
            loss, grad = results[name]
            assert loss == pytest.approx(expected_loss, rel=1e-5), (name, rank)
            torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-6, msg=name)
