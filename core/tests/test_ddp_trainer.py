"""Two gloo processes with B/2 each train exactly as one process with the global batch B.

With a loss that is a mean over samples, DDP's average of the per-rank gradients
equals the single-process gradient, provided the ranks draw disjoint halves of
the same global batch; the sampler's strided sharding guarantees that.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import TensorDataset

from selfsup.checkpoint import checkpoint_path, load_checkpoint
from selfsup.components import SSLDataset
from selfsup.trainer import TrainConfig, Trainer

GLOBAL_BATCH, WORLD = 8, 2


class Rows(SSLDataset):
    """Distinct rows (row i starts with i), so a batch shows which samples it holds."""

    name = "toy.rows"

    def __init__(self, n: int = 20, dim: int = 6) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        self.x[:, 0] = torch.arange(n, dtype=torch.float32)

    def pretrain_set(self) -> TensorDataset:
        return TensorDataset(self.x)

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        return torch.stack([s[0] for s in samples])


class MeanSquareTask(nn.Module):
    """A deterministic loss that is a mean over samples (no views, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 3))
        self.batches: list[torch.Tensor] = []

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        self.batches.append(batch.clone())
        z = self.encoder(batch)
        return {"loss": ((z - batch[:, :3].sin()) ** 2).sum(dim=1).mean(), "embedding": z}


def _train(batch_size: int, steps: int, run_dir: Path | None) -> dict[str, Any]:
    torch.manual_seed(0)  # identical initial weights on every rank and in one process
    task = MeanSquareTask()
    cfg = TrainConfig(
        steps=steps, batch_size=batch_size, optimizer="sgd", lr=0.1, grad_clip=None,
        warmup_steps=0, checkpoint_every=0, progress=False, device="cpu", seed=7,
    )  # fmt: skip
    result = Trainer(task, Rows(), cfg, run_dir).fit()
    return {
        "grads": {n: p.grad.clone() for n, p in task.named_parameters() if p.grad is not None},
        "weights": {k: v.clone() for k, v in task.state_dict().items()},
        "batch": task.batches[0] if task.batches else None,
        "resumed_from": result.resumed_from,
    }


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        run = Path(out_dir) / "run"
        first = _train(GLOBAL_BATCH // world, steps=1, run_dir=run)
        # Rank 0 wrote the checkpoint; every rank resumes from it for a second step.
        second = _train(GLOBAL_BATCH // world, steps=2, run_dir=run)
        torch.save({"first": first, "second": second}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_ddp_step_on_two_halves_equals_one_process_with_the_global_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Spawned children unpickle _worker by module name, so make this file importable as
    # a plain module (pytest imports it under another name in importlib mode).
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent))
    import test_ddp_trainer as this

    mp.spawn(this._worker, args=(WORLD, str(tmp_path / "init"), str(tmp_path)), nprocs=WORLD)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    single = _train(GLOBAL_BATCH, steps=1, run_dir=None)

    halves = [r["first"]["batch"][:, 0].long().tolist() for r in ranks]
    assert len(halves[0]) == len(halves[1]) == GLOBAL_BATCH // WORLD
    assert not set(halves[0]) & set(halves[1])
    assert sorted(halves[0] + halves[1]) == sorted(single["batch"][:, 0].long().tolist())
    for r in ranks:
        assert r["first"]["grads"].keys() == single["grads"].keys()
        for name, grad in single["grads"].items():
            torch.testing.assert_close(r["first"]["grads"][name], grad, atol=1e-6, rtol=0)
        for name, w in single["weights"].items():
            torch.testing.assert_close(r["first"]["weights"][name], w, atol=1e-6, rtol=0)

    state = load_checkpoint(checkpoint_path(tmp_path / "run" / "checkpoints", 2))
    assert len(state["rng"]) == WORLD  # each rank's RNG streams, saved by rank 0
    assert [r["second"]["resumed_from"] for r in ranks] == [1, 1]
    for name, w in ranks[0]["second"]["weights"].items():
        assert torch.equal(w, ranks[1]["second"]["weights"][name])
