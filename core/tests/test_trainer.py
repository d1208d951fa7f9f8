"""The trainer on a tiny toy problem: learning, LR schedule, clipping, logging, validation.

``ToyDataset`` and ``ToyTask`` are also imported by the training script that
test_resume.py runs in subprocesses.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from selfsup.components import SSLDataset
from selfsup.rundir import read_metrics
from selfsup.trainer import TrainConfig, Trainer


class ToyDataset(SSLDataset):
    """Random vectors on a 3-d subspace of R^dim; views add Gaussian noise."""

    name = "toy.vectors"

    def __init__(self, n: int = 64, dim: int = 8, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, generator=g) @ torch.randn(3, dim, generator=g)

    def pretrain_set(self) -> TensorDataset:
        return TensorDataset(self.x)

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        return torch.stack([s[0] for s in samples])

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(batch.shape, generator=generator, device=batch.device)
        return batch + 0.05 * noise


class ToyTask(nn.Module):
    """Reconstruct view 2 from a linear code of view 1, through dropout (so RNG state matters)."""

    def __init__(
        self, dataset: ToyDataset, dim: int = 8, embed_dim: int = 4, step_sleep: float = 0.0
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.encoder = nn.Linear(dim, embed_dim)
        self.decoder = nn.Linear(embed_dim, dim)
        self.dropout = nn.Dropout(0.1)
        self.step_sleep = step_sleep  # lets test_resume kill the process mid-training
        self.steps_seen: list[tuple[int, int]] = []

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        v1 = self.dataset.augment(batch, generator)
        v2 = self.dataset.augment(batch, generator)
        z = self.encoder(self.dropout(v1))
        loss = F.mse_loss(self.decoder(z), v2)
        return {"loss": loss, "embedding": z, "code_norm": z.norm(dim=1).mean()}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        self.steps_seen.append((step, total_steps))
        if self.step_sleep:
            time.sleep(self.step_sleep)


def _config(**overrides: Any) -> TrainConfig:
    base: dict[str, Any] = dict(
        steps=20, batch_size=16, lr=1e-2, warmup_steps=2, progress=False, device="cpu",
        checkpoint_every=0, log_every=5,
    )  # fmt: skip
    return TrainConfig(**{**base, **overrides})


def _fit(tmp_path: Path | None, **overrides: Any) -> tuple[ToyTask, list[dict[str, Any]]]:
    torch.manual_seed(0)
    ds = ToyDataset()
    task = ToyTask(ds)
    result = Trainer(task, ds, _config(**overrides), tmp_path).fit()
    records = read_metrics(result.metrics_path) if result.metrics_path else []
    return task, records


def test_loss_decreases_on_a_learnable_objective(tmp_path: Path) -> None:
    task, records = _fit(tmp_path, steps=150, log_every=10, warmup_steps=5)
    losses = [r["loss"] for r in records]
    assert len(losses) == 15
    assert losses[-1] < 0.3 * losses[0], losses
    assert task.steps_seen[0] == (1, 150) and task.steps_seen[-1] == (150, 150)


def test_lr_warms_up_linearly_then_decays_by_cosine(tmp_path: Path) -> None:
    steps, warmup, lr, floor = 20, 5, 0.1, 0.1
    _, records = _fit(tmp_path, steps=steps, warmup_steps=warmup, lr=lr, min_lr_ratio=floor,
                      log_every=1)  # fmt: skip
    logged = [r["lr"] for r in records]
    expected = [lr * (i + 1) / warmup for i in range(warmup)]
    for i in range(warmup, steps):  # cosine from lr towards floor * lr, reached after the last
        t = (i - warmup) / (steps - warmup)
        expected.append(lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))))
    assert logged == pytest.approx(expected, rel=1e-12)
    assert logged[0] == pytest.approx(0.02) and max(logged) == pytest.approx(lr)
    assert all(a > b for a, b in zip(logged[warmup:], logged[warmup + 1 :]))
    assert logged[-1] > floor * lr


@pytest.mark.parametrize("clip", [1e-3, None])
def test_gradients_are_clipped_to_grad_clip(tmp_path: Path, clip: float | None) -> None:
    torch.manual_seed(0)
    ds = ToyDataset()
    task = ToyTask(ds)
    before = [p.detach().clone() for p in task.parameters()]
    cfg = _config(steps=1, optimizer="sgd", lr=0.5, weight_decay=0.0, warmup_steps=0,
                  grad_clip=clip, log_every=1)  # fmt: skip
    result = Trainer(task, ds, cfg, tmp_path).fit()
    # First SGD step: the momentum buffer is the gradient, so the update is lr * grad.
    update = torch.cat([(p.detach() - b).flatten() for p, b in zip(task.parameters(), before)])
    grads = [p.grad.flatten() for p in task.parameters() if p.grad is not None]
    grad_norm = float(torch.cat(grads).norm())
    if clip is None:
        assert update.norm() > 0.5 * 1e-2
        assert "grad_norm" not in read_metrics(result.metrics_path)[0]  # type: ignore[arg-type]
    else:
        assert grad_norm == pytest.approx(clip, rel=1e-4)
        assert float(update.norm()) == pytest.approx(0.5 * clip, rel=1e-4)
        logged = read_metrics(result.metrics_path)[0]["grad_norm"]  # type: ignore[arg-type]
        assert logged > 100 * clip  # the norm before clipping


def test_metrics_lines_hold_loss_lr_throughput_task_scalars_and_collapse_stats(
    tmp_path: Path,
) -> None:
    _, records = _fit(tmp_path, steps=12, log_every=5)
    assert [r["step"] for r in records] == [5, 10, 12]  # and always the last step
    expected = {"phase", "step", "epoch", "loss", "lr", "samples_per_s", "grad_norm", "code_norm",
                "emb_std", "emb_std_min", "emb_rank"}  # fmt: skip
    for r in records:
        assert set(r) == expected
        assert r["samples_per_s"] > 0 and 1 <= r["emb_rank"] <= 4
    assert (tmp_path / "checkpoints" / "step-000012.pt").is_file()  # checkpoint_every=0: end only


def test_online_eval_runs_at_its_interval_in_eval_mode_without_changing_training(
    tmp_path: Path,
) -> None:
    calls: list[bool] = []

    def online_eval(encoder: nn.Module) -> dict[str, float]:
        calls.append(encoder.training)
        torch.rand(100)  # must not shift the training RNG streams
        return {"score": float(len(calls))}

    torch.manual_seed(0)
    ds = ToyDataset()
    task = ToyTask(ds)
    cfg = _config(steps=10, online_eval_every=4, log_every=5)
    result = Trainer(task, ds, cfg, tmp_path, online_eval=online_eval).fit()
    assert calls == [False, False]  # at steps 4 and 8, with the task in eval mode
    assert task.training
    records = read_metrics(result.metrics_path)  # type: ignore[arg-type]
    online = {r["step"]: r["online.score"] for r in records if "online.score" in r}
    assert online == {4: 1.0, 8: 2.0}
    plain, _ = _fit(None, steps=10, log_every=5)
    for a, b in zip(task.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(a, b)


def test_the_number_of_dataloader_workers_does_not_change_the_result() -> None:
    # Views are drawn in the training process from the per-step generator, and the
    # loader's worker seeds come from (seed, epoch), so workers only move the loading.
    in_process, _ = _fit(None, steps=6, num_workers=0)
    with_workers, _ = _fit(None, steps=6, num_workers=2)
    for a, b in zip(in_process.state_dict().values(), with_workers.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("field", "value", "hint"),
    [
        ("steps", 0, "integer >= 1"),
        ("batch_size", 2.5, "integer >= 1"),
        ("lr", -1.0, "positive learning rate"),
        ("optimizer", "adam", "'adamw' or 'sgd'"),
        ("precision", "fp8", "'fp32', 'bf16' or 'fp16'"),
        ("device", "gpu", "'cuda:N'"),
        ("grad_clip", 0.0, "None for no clipping"),
        ("min_lr_ratio", 2.0, "between 0 and 1"),
        ("log_every", 0, "integer >= 1"),
    ],
)
def test_invalid_config_names_field_value_and_fix(field: str, value: Any, hint: str) -> None:
    with pytest.raises(ValueError) as err:
        TrainConfig(**{field: value})
    assert f"TrainConfig.{field}={value!r}" in str(err.value)
    assert hint in str(err.value)


def test_settings_that_only_fail_at_fit_time_are_explained() -> None:
    ds = ToyDataset()
    with pytest.raises(ValueError, match="online_eval_every=5 but no online_eval"):
        Trainer(ToyTask(ds), ds, _config(online_eval_every=5))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
            Trainer(ToyTask(ds), ds, _config(precision="fp16")).fit()

    class NoDict(ToyTask):
        def forward(self, batch: torch.Tensor, generator: torch.Generator) -> Any:
            return super().forward(batch, generator)["loss"]

    with pytest.raises(TypeError, match="must return a dict with a scalar 'loss'"):
        Trainer(NoDict(ds), ds, _config()).fit()


def test_a_one_sample_pretrain_set_trains_on_batches_of_one(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ds = ToyDataset(n=1)
    task = ToyTask(ds)
    result = Trainer(task, ds, _config(steps=3, batch_size=128, log_every=1), tmp_path).fit()
    assert result.steps == 3 and math.isfinite(result.final_loss)
    records = read_metrics(result.metrics_path)  # type: ignore[arg-type]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert [r["epoch"] for r in records] == [0, 1, 2]  # one batch per epoch
    assert "emb_rank" not in records[0]  # no collapse statistics from a single row
