"""core.lsskd against loop references of its labels and its loss, and a toy that learns.

The references below index element by element and share no code with
:mod:`selfsup.objectives.lsskd`.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from selfsup.components import SSLDataset
from selfsup.objectives.lsskd import (
    LSSKDLoss,
    Transformations,
    block_orders,
    build,
)

# -- references -------------------------------------------------------------------------


def ref_block_jigsaw(x: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """Output block i is input block order[i]; the first F % n blocks are one wider."""
    f, n = x.shape[1], len(order)
    sizes = [f // n + (1 if b < f % n else 0) for b in range(n)]
    starts = [sum(sizes[:b]) for b in range(n)]
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        col = 0
        for src in order:
            for j in range(sizes[src]):
                out[i, col] = x[i, starts[src] + j]
                col += 1
    return out


def ref_rotate(img: torch.Tensor, quarter_turns: int) -> torch.Tensor:
    """Counter-clockwise quarter turns of each [H, W] plane: out[r][c] = in[c][W-1-r]."""
    for _ in range(quarter_turns):
        b, ch, h, w = img.shape
        out = torch.empty(b, ch, w, h, dtype=img.dtype)
        for i in range(b):
            for c in range(ch):
                for r in range(w):
                    for q in range(h):
                        out[i, c, r, q] = img[i, c, q, w - 1 - r]
        img = out
    return img


def ref_lsskd(logits: list[torch.Tensor], labels: torch.Tensor, t: float, weight: float,
              teacher: str) -> float:
    """sum_l CE + weight * sum_{l<L} T^2 mean_n KL(p_teacher || p_l), one row at a time."""
    n_stages, n = len(logits), len(labels)

    def softmax(row: list[float], temp: float) -> list[float]:
        top = max(row)
        e = [math.exp((v - top) / temp) for v in row]
        return [v / sum(e) for v in e]

    ce = 0.0
    for z in logits:
        ce += sum(-math.log(softmax(z[i].tolist(), 1.0)[int(labels[i])]) for i in range(n)) / n
    kd = 0.0
    for stage in range(n_stages - 1):
        src = stage + 1 if teacher == "next" else n_stages - 1
        total = 0.0
        for i in range(n):
            p = softmax(logits[src][i].tolist(), t)
            q = softmax(logits[stage][i].tolist(), t)
            total += sum(p[k] * (math.log(p[k]) - math.log(q[k])) for k in range(len(p)))
        kd += t * t * total / n
    return ce + weight * kd


# -- fixtures ---------------------------------------------------------------------------


class Profiles(SSLDataset):
    """Vectors around a fixed profile per feature block, so a block jigsaw is visible."""

    name = "test.profiles"
    modality = "vector"

    def __init__(self, n: int = 256, dim: int = 16) -> None:
        g = torch.Generator().manual_seed(0)
        profile = torch.linspace(-1.0, 1.0, dim) ** 2 + torch.linspace(0.0, 1.0, dim)
        self.x = profile + 0.3 * torch.randn(n, dim, generator=g)

    def pretrain_set(self) -> Any:
        return list(self.x)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + 0.1 * torch.randn(batch.shape, generator=generator)


class TwoStages(nn.Module):
    """Linear -> ReLU, then a linear embedding: two stages."""

    def __init__(self, in_dim: int = 16, hidden: int = 12, embed_dim: int = 8,
                 n_stages: int = 2) -> None:
        super().__init__()
        self.embed_dim, self.n_stages = embed_dim, n_stages
        self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, embed_dim)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        h = self.hidden(x)
        return [h, self.out(h)] if self.n_stages == 2 else [self.out(h)]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x)[-1]


# -- tests ------------------------------------------------------------------------------


def test_block_labels_against_a_loop_reference() -> None:
    x = torch.randn(3, 10, generator=torch.Generator().manual_seed(1))  # 10 = 4 + 3 + 3
    tf = Transformations("blocks", n_transforms=4, n_blocks=3, seed=5)
    assert tf.orders[0] == (0, 1, 2) and len(set(tf.orders)) == 4
    assert tf.orders == block_orders(4, 3, 5)  # fixed by the seed
    expanded, labels = tf.expand(x)
    assert expanded.shape == (12, 10)
    for k in range(4):
        assert torch.equal(expanded[3 * k : 3 * k + 3], ref_block_jigsaw(x, tf.orders[k]))
        assert labels[3 * k : 3 * k + 3].tolist() == [k, k, k]
    with pytest.raises(ValueError, match="only 2 orders"):
        block_orders(3, 2, 0)


def test_rotation_labels_against_a_loop_reference() -> None:
    img = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).view(2, 1, 3, 3)
    expanded, labels = Transformations("rotation", 4).expand(img)
    for k in range(4):
        assert torch.equal(expanded[2 * k : 2 * k + 2], ref_rotate(img, k))
    assert labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError, match="square"):
        Transformations("rotation", 4).apply(torch.zeros(1, 1, 3, 4), 1)
    with pytest.raises(ValueError, match="at most 4"):
        Transformations("rotation", 5)


@pytest.mark.parametrize("teacher", ["next", "final"])
def test_loss_against_a_loop_reference(teacher: str) -> None:
    g = torch.Generator().manual_seed(2)
    logits = [torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    labels = torch.tensor([0, 1, 2, 3, 1, 0])
    out = LSSKDLoss(temperature=3.0, distill_weight=0.7, teacher=teacher)(logits, labels)
    assert float(out["loss"]) == pytest.approx(ref_lsskd(logits, labels, 3.0, 0.7, teacher))


def test_the_teacher_gets_no_distillation_gradient() -> None:
    g = torch.Generator().manual_seed(3)
    logits = [torch.randn(5, 4, generator=g, requires_grad=True) for _ in range(2)]
    labels = torch.tensor([0, 1, 2, 3, 0])
    LSSKDLoss(distill_weight=5.0)(logits, labels)["loss"].backward()
    deep = logits[1].detach().requires_grad_()
    nn.functional.cross_entropy(deep, labels).backward()
    assert torch.allclose(logits[1].grad, deep.grad)  # CE only: the KL target is detached


def test_heads_learn_the_transformation_task_on_a_two_stage_toy() -> None:
    torch.manual_seed(0)
    data = Profiles()
    task = build(TwoStages(), data, head_hidden_dim=16, n_transforms=4, n_blocks=4)
    assert [h[0].in_features for h in task.heads] == [12, 8]
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    for step in range(60):
        batch = data.x[torch.randperm(256, generator=torch.Generator().manual_seed(step))[:64]]
        out = task(batch, torch.Generator().manual_seed(step))
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    task.eval()
    with torch.no_grad():
        out = task(data.x, torch.Generator().manual_seed(99))
    assert out["embedding"].shape == (256, 8)
    # chance is 1/4
    assert float(out["accuracy_stage1"]) > 0.8 and float(out["accuracy_stage2"]) > 0.8


def test_refusals_name_the_way_out() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        build(TwoStages(n_stages=1), Profiles())
    with pytest.raises(ValueError, match="n_blocks <= 16"):
        build(TwoStages(), Profiles(), n_blocks=20)
    with pytest.raises(TypeError, match="n_transform"):
        build(TwoStages(), Profiles(), n_transform=4)


def test_runs_through_the_cli_on_digits(tmp_path: Any) -> None:
    from selfsup.cli import main

    assert main(["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp",
                 "--pretext", "core.lsskd", "--steps", "3", "--set", "training.progress=false",
                 "--set", "training.batch_size=32", "--run-dir", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "encoder.safetensors").is_file()
