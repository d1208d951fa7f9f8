"""Tests of ``core.beyond`` (selfsup.evaluators.beyond): PGD, BEYOND's scores, the protocol.

The vectorised pieces are checked against slow loops over samples (the projection
onto the L-inf ball, the neighbourhood scores, the AUROC over all pairs), and the
evaluator end to end on Gaussian blobs with a small linear encoder and a
Gaussian-noise view.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_blobs
from torch import nn
from torch.utils.data import TensorDataset

from selfsup.components import EvalContext, SSLDataset, TaskSpec
from selfsup.errors import NotApplicable
from selfsup.evaluators import beyond
from selfsup.evaluators.beyond import (
    detection_auroc,
    fit_linear_head,
    neighbour_consistency,
    pgd_attack,
    project,
)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class Blobs(SSLDataset):
    """Gaussian blobs as vectors; the view adds Gaussian noise of std ``noise``."""

    name = "blobs"
    modality = "vector"
    task = TaskSpec("classification", n_classes=3)
    splits = ("train", "test")

    def __init__(self, noise: float = 1.0, dtype: torch.dtype = torch.float32) -> None:
        x, y = make_blobs(n_samples=400, n_features=6, centers=3, cluster_std=1.0,
                          random_state=0)
        x_t = torch.as_tensor(x, dtype=dtype)
        y_t = torch.as_tensor(y)
        self.noise = noise
        self._parts = {"train": TensorDataset(x_t[:300], y_t[:300]),
                       "test": TensorDataset(x_t[300:], y_t[300:])}

    def pretrain_set(self) -> Any:
        return self._parts["train"].tensors[0]

    def labelled_split(self, split: str) -> Any:
        return self._parts.get(split)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + self.noise * torch.randn(batch.shape, generator=generator,
                                                dtype=batch.dtype)


class LinearEncoder(nn.Module):
    def __init__(self, in_dim: int = 6, dim: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(in_dim, dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def _ctx(seeds: tuple[int, ...] = (0,)) -> EvalContext:
    return EvalContext(seeds=seeds, batch_size=64)


# -- the attack -------------------------------------------------------------------------


def test_projection_matches_a_loop_over_elements() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=g)
    x_adv = x + 2 * torch.randn(5, 7, generator=g)
    radius = torch.rand(7, generator=g)
    low, high = -torch.rand(7, generator=g), torch.rand(7, generator=g)  # some x outside
    got = project(x_adv, x, radius, low, high)
    want = torch.empty_like(x)
    for i in range(5):
        for j in range(7):
            v = min(max(float(x_adv[i, j]), float(low[j])), float(high[j]))  # data range
            r = float(radius[j])
            want[i, j] = min(max(v, float(x[i, j]) - r), float(x[i, j]) + r)  # then the ball
    torch.testing.assert_close(got, want)
    assert ((got - x).abs() <= radius + 1e-6).all()


def test_pgd_raises_the_loss_and_stays_in_the_ball() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 3))
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    radius = 0.3 * torch.rand(6)
    low, high = x.amin(0), x.amax(0)
    g = torch.Generator().manual_seed(1)
    x_adv = pgd_attack(model, x, y, radius, steps=10, step_size=0.25, generator=g,
                       low=low, high=high)
    with torch.no_grad():
        assert F.cross_entropy(model(x_adv), y) > F.cross_entropy(model(x), y) + 0.05
    assert ((x_adv - x).abs() <= radius + 1e-6).all()
    assert ((x_adv >= low - 1e-6) | ((x_adv - x).abs() <= radius)).all()
    assert all(p.grad is None for p in model.parameters())  # the model is not trained
    still = pgd_attack(model, x, y, torch.zeros(6), steps=3, step_size=0.25, generator=g)
    torch.testing.assert_close(still, x)  # a zero ball leaves the input alone


def test_pgd_refuses_an_encoder_without_gradients() -> None:
    class Constant(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(x.shape[0], 3)

    with pytest.raises(NotApplicable, match="no gradient"):
        pgd_attack(Constant(), torch.randn(4, 6), torch.zeros(4, dtype=torch.long),
                   torch.ones(6), steps=1, step_size=0.25)


# -- the detector's scores ----------------------------------------------------------------


def test_neighbour_consistency_matches_a_loop() -> None:
    g = torch.Generator().manual_seed(0)
    z, zv = torch.randn(4, 5, generator=g), torch.randn(4, 6, 5, generator=g)
    label, view_labels = torch.randint(0, 3, (4,), generator=g), torch.randint(0, 3, (4, 6),
                                                                               generator=g)
    similarity, agreement = neighbour_consistency(z, zv, label, view_labels)
    for i in range(4):
        cosines = [float(z[i] @ zv[i, j] / (z[i].norm() * zv[i, j].norm())) for j in range(6)]
        assert similarity[i].item() == pytest.approx(sum(cosines) / 6, abs=1e-6)
        same = sum(int(view_labels[i, j] == label[i]) for j in range(6))
        assert agreement[i].item() == pytest.approx(same / 6)


def test_detection_auroc_matches_the_pairs_and_is_nan_without_positives() -> None:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 5, 30) / 4  # ties on purpose
    adversarial = rng.integers(0, 5, 20) / 5
    pairs = [1.0 if a < c else 0.5 if a == c else 0.0 for a in adversarial for c in clean]
    assert detection_auroc(clean, adversarial) == pytest.approx(sum(pairs) / len(pairs))
    assert np.isnan(detection_auroc(clean, np.zeros(0)))


def test_the_linear_head_fits_and_its_loss_is_stationary() -> None:
    x, y = make_blobs(n_samples=200, n_features=4, centers=3, random_state=1)
    head = fit_linear_head(x, y, 3, l2=1e-2)
    xt = torch.as_tensor(x, dtype=torch.float32)
    assert (head(xt).argmax(1).numpy() == y).mean() > 0.95
    weight = head.linear.weight.detach().double().requires_grad_(True)
    bias = head.linear.bias.detach().double().requires_grad_(True)
    standard = (xt.double() - head.mean.double()) / head.scale.double()
    loss = (F.cross_entropy(standard @ weight.T + bias, torch.as_tensor(y))
            + 0.5 * 1e-2 * weight.pow(2).sum())
    grads = torch.autograd.grad(loss, (weight, bias))
    assert max(float(g.abs().max()) for g in grads) < 1e-4  # L-BFGS reached the optimum


# -- the evaluator end to end ----------------------------------------------------------------


def test_beyond_detects_pgd_on_blobs_and_eps_zero_attacks_nothing() -> None:
    # eps=0.5 train stds flips about 3 in 4 blobs; noisy views of an adversarial example,
    # which sits near the boundary, often fall back on the true side
    encoder = LinearEncoder().train()
    metrics = beyond.build(eps=[0.0, 0.5], neighbours=20)(encoder, Blobs(), _ctx((0, 1)))
    assert encoder.training  # its mode is given back
    assert metrics["beyond.clean_accuracy"] > 0.95
    assert metrics["beyond.attack_success@eps0"] == 0.0
    assert metrics["beyond.attacked_accuracy@eps0"] == metrics["beyond.clean_accuracy"]
    assert np.isnan(metrics["beyond.label_auroc@eps0"])  # no successful attack, no positives
    assert metrics["beyond.attack_success@eps0.5"] > 0.5
    assert metrics["beyond.attacked_accuracy@eps0.5"] < 0.5
    assert metrics["beyond.label_auroc@eps0.5"] > 0.75
    assert metrics["beyond.similarity_auroc@eps0.5"] > 0.6
    assert metrics["beyond.combined_auroc@eps0.5"] > 0.75
    assert "beyond.combined_auroc@eps0.5_std" in metrics


def test_max_samples_draws_a_subset_per_seed() -> None:
    evaluate = beyond.build(eps=0.5, neighbours=4, max_samples=30)
    a = evaluate(LinearEncoder(), Blobs(), _ctx((0,)))
    b = evaluate(LinearEncoder(), Blobs(), _ctx((0,)))
    assert a == b  # seeded
    assert "beyond.attack_success@eps0.5" in a


class Strings(Blobs):
    def labelled_batches(self, split: str, batch_size: int, **kw: Any) -> Any:
        yield ["CCO", "c1ccccc1"], torch.zeros(2, dtype=torch.long), None


class NoViews(SSLDataset):
    name = "noviews"
    task = TaskSpec("classification", n_classes=3)


@pytest.mark.parametrize(("dataset", "reason"), [
    (Strings(), "gives a list per batch"),
    (NoViews(), "registers no views"),
])
def test_inputs_it_cannot_attack_are_not_applicable(dataset: SSLDataset, reason: str) -> None:
    with pytest.raises(NotApplicable, match=reason):
        beyond.build()(LinearEncoder(), dataset, _ctx())


def test_bad_options_are_named() -> None:
    with pytest.raises(ValueError, match="option eps"):
        beyond.build(eps=[-0.1])
    with pytest.raises(TypeError, match="did you mean 'neighbours'"):
        beyond.build(neighbors=5)
