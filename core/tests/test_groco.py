"""GroCo (core.groco) against loop references of its sorting network and its loss.

The references below loop over comparators, anchors and ranks in plain Python
floats and share no code with :mod:`selfsup.objectives.groco` but the list of
comparators, which :func:`test_networks_sort_every_zero_one_input` checks on its
own (the 0-1 principle: a comparator network sorts every input iff it sorts
every 0/1 input).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.objectives import groco, simclr
from selfsup.objectives.groco import (
    GroCoLoss,
    diff_sort,
    group_ordering_loss,
    lowest_rank_mass,
    sorting_network,
)


class NoisyVectors(SSLDataset):
    name = "test.noisy_vectors"
    modality = "vector"

    def __init__(self, n: int = 32, dim: int = 6) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))

    def pretrain_set(self) -> Any:
        return list(self.x)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + 0.1 * torch.randn(batch.shape, generator=generator, dtype=batch.dtype)


class LinearEncoder(nn.Module):
    def __init__(self, in_dim: int = 6, embed_dim: int = 5) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.fc = nn.Linear(in_dim, embed_dim)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- loop references -------------------------------------------------------------------


def ref_alpha(d: float, steepness: float, relaxation: str) -> float:
    if relaxation == "logistic":
        return 1 / (1 + math.exp(-steepness * d))
    return math.atan(steepness * d) / math.pi + 0.5


def ref_relaxed_sort(values: list[float], steepness: float, network: str,
                     relaxation: str) -> tuple[list[float], list[list[float]]]:
    """Petersen et al. 2021: relaxed conditional swaps, comparator by comparator."""
    n = len(values)
    x = list(values)
    p = [[1.0 if i == j else 0.0 for j in range(n)] for i in range(n)]
    for lo, hi in sorting_network(network, n):
        for a, b in zip(lo, hi, strict=True):
            al = ref_alpha(x[b] - x[a], steepness, relaxation)
            x[a], x[b] = al * x[a] + (1 - al) * x[b], (1 - al) * x[a] + al * x[b]
            for i in range(n):
                p[i][a], p[i][b] = al * p[i][a] + (1 - al) * p[i][b], \
                    (1 - al) * p[i][a] + al * p[i][b]
    return x, p


def ref_anchor_loss(neg: list[float], pos: list[float], steepness: float,
                    relaxation: str, network: str = "odd_even") -> float:
    """GroCo for one anchor: pre-ordered groups, relaxed sort, BCE per input."""
    k, m = len(neg), len(pos)
    _, p = ref_relaxed_sort(sorted(neg) + sorted(pos), steepness, network, relaxation)
    total = 0.0
    for i in range(k + m):
        on_pos = min(max(sum(p[i][j] for j in range(k, k + m)), 0.0), 1.0)
        q = on_pos if i >= k else 1 - on_pos  # probability of the right group
        total += -max(math.log(q), -100.0) if q > 0 else 100.0
    return total / (k + m)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    dot = sum(float(a[i]) * float(b[i]) for i in range(len(a)))
    return dot / math.sqrt(sum(float(v) ** 2 for v in a) * sum(float(v) ** 2 for v in b))


def ref_groco(views: list[torch.Tensor], topk: int, steepness: float, relaxation: str,
              network: str = "odd_even") -> float:
    """Every view as anchor; negatives: the topk most similar other samples of its view."""
    n, v = views[0].shape[0], len(views)
    per_view = []
    for a in range(v):
        anchors = []
        for i in range(n):
            pos = [_cos(views[a][i], views[p][i]) for p in range(v) if p != a]
            others = sorted((_cos(views[a][i], views[a][j]) for j in range(n) if j != i),
                            reverse=True)
            anchors.append(ref_anchor_loss(others[:topk], pos, steepness, relaxation, network))
        per_view.append(sum(anchors) / n)
    return sum(per_view) / v


# -- the sorting network ---------------------------------------------------------------


@pytest.mark.parametrize(("network", "sizes"), [("odd_even", range(1, 11)),
                                                ("bitonic", (1, 2, 4, 8))])
def test_networks_sort_every_zero_one_input(network: str, sizes: range) -> None:
    for n in sizes:
        for bits in itertools.product((0, 1), repeat=n):
            x = list(bits)
            for lo, hi in sorting_network(network, n):
                for a, b in zip(lo, hi, strict=True):
                    x[a], x[b] = min(x[a], x[b]), max(x[a], x[b])
            assert x == sorted(bits), (network, n, bits)


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
@pytest.mark.parametrize("network", ["odd_even", "bitonic"])
def test_steep_relaxed_sort_is_torch_sort(network: str, relaxation: str) -> None:
    # the Cauchy CDF's heavy tails leak ~1 / (pi s d) at a gap d: it needs a steeper s
    steepness = 1e12 if relaxation == "cauchy" else 1e7
    for n in (2, 5, 13, 16):
        x = randn(7, n, seed=n)
        got, perm = diff_sort(x, steepness, network, relaxation)
        torch.testing.assert_close(got, x.sort(dim=-1).values, rtol=0, atol=1e-5)
        hard = torch.nn.functional.one_hot(x.argsort(dim=-1), n).transpose(-2, -1).double()
        torch.testing.assert_close(perm, hard, rtol=0, atol=1e-5)
        # sorted = x @ P, and P stays doubly stochastic
        torch.testing.assert_close((x.unsqueeze(-2) @ perm).squeeze(-2), got, rtol=0, atol=1e-5)
        torch.testing.assert_close(perm.sum(-1), torch.ones_like(x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
@pytest.mark.parametrize(("network", "n"), [("odd_even", 6), ("odd_even", 7), ("bitonic", 8)])
def test_relaxed_sort_matches_the_loop_reference(network: str, n: int, relaxation: str) -> None:
    x = randn(3, n, seed=1)
    got, perm = diff_sort(x, 3.0, network, relaxation)
    for row in range(3):
        want, want_p = ref_relaxed_sort([float(v) for v in x[row]], 3.0, network, relaxation)
        torch.testing.assert_close(got[row], torch.tensor(want, dtype=x.dtype))
        torch.testing.assert_close(perm[row], torch.tensor(want_p, dtype=x.dtype))
    assert not torch.allclose(got, x.sort(dim=-1).values, atol=1e-3)  # it is relaxed


@pytest.mark.parametrize("network", ["odd_even", "bitonic"])
def test_lowest_rank_mass_is_the_permutation_matrix_summed(network: str) -> None:
    x = randn(5, 11, seed=9)
    _, perm = diff_sort(x, 2.5, network)
    for k in (1, 4, 10):
        torch.testing.assert_close(lowest_rank_mass(x, k, 2.5, network), perm[..., :k].sum(-1))


def test_bitonic_pads_odd_lengths() -> None:
    x = randn(4, 13, seed=2)
    got, perm = diff_sort(x, 1e7, "bitonic")
    assert perm.shape == (4, 13, 13)
    torch.testing.assert_close(got, x.sort(dim=-1).values, rtol=0, atol=1e-5)


def test_relaxed_sort_sends_gradients() -> None:
    x = randn(2, 6, seed=3).requires_grad_()
    got, perm = diff_sort(x, 2.0)
    (got[:, -1].sum() + perm[..., 0].sum()).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# -- the loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
def test_groco_loss_matches_the_loop_reference(relaxation: str) -> None:
    views = [randn(6, 4, seed=s) for s in (4, 5, 6)]
    loss = GroCoLoss(topk_negatives=3, steepness=4.0, relaxation=relaxation, network="odd_even")
    assert loss(*views).item() == pytest.approx(ref_groco(views, 3, 4.0, relaxation), rel=1e-9)
    # topk larger than the N - 1 negatives there are: all of them
    big = GroCoLoss(topk_negatives=50, steepness=4.0, relaxation=relaxation, network="odd_even")
    assert big(*views[:2]).item() == pytest.approx(ref_groco(views[:2], 5, 4.0, relaxation),
                                                   rel=1e-9)
    # the default bitonic network: 5 negatives + 3 positives = 8 wires, no padding
    four = [randn(7, 4, seed=s) for s in (10, 11, 12, 13)]
    bitonic = GroCoLoss(topk_negatives=5, steepness=4.0, relaxation=relaxation)
    assert bitonic(*four).item() == pytest.approx(
        ref_groco(four, 5, 4.0, relaxation, "bitonic"), rel=1e-9)


def test_loss_is_about_zero_when_every_positive_is_closer() -> None:
    neg = torch.tensor([[-0.5, 0.1, 0.2, 0.3]], dtype=torch.float64)
    pos = torch.tensor([[0.9, 0.8, 0.95]], dtype=torch.float64)
    for relaxation in ("cauchy", "logistic"):
        loss = group_ordering_loss(neg, pos, 1e4, relaxation=relaxation)
        assert loss.item() < 1e-3
    # and on embeddings: orthogonal samples, views that barely move them
    base = torch.eye(8, dtype=torch.float64)
    views = [base + 0.01 * randn(8, 8, seed=s) for s in range(3)]
    terms = GroCoLoss(topk_negatives=4, steepness=1e4).terms(*views)
    assert terms["loss"].item() < 1e-3 and terms["misordered"].item() == 0


@pytest.mark.parametrize("relaxation", ["cauchy", "logistic"])
def test_loss_grows_with_the_number_of_misordered_pairs(relaxation: str) -> None:
    pos = torch.tensor([[0.5, 0.6]], dtype=torch.float64)
    losses = []
    for above in range(5):  # how many of the 4 negatives beat both positives
        neg = [0.0, 0.05, 0.1, 0.15]
        for j in range(above):
            neg[-1 - j] = 0.7 + 0.05 * j
        losses.append(group_ordering_loss(torch.tensor([neg], dtype=torch.float64), pos,
                                          10.0, relaxation=relaxation).item())
    assert all(b > a for a, b in itertools.pairwise(losses)), losses
    # and with how far below the negatives a positive falls
    neg = torch.tensor([[0.0, 0.1, 0.2, 0.3]], dtype=torch.float64)
    depth = [group_ordering_loss(neg, torch.tensor([[p, 0.9]], dtype=torch.float64), 10.0,
                                 relaxation=relaxation).item() for p in (0.5, 0.25, 0.05, -0.2)]
    assert all(b > a for a, b in itertools.pairwise(depth)), depth


def test_stop_gradient_detaches_the_targets() -> None:
    z1, z2 = randn(5, 3, seed=7).requires_grad_(), randn(5, 3, seed=8).requires_grad_()
    GroCoLoss(topk_negatives=2, steepness=3.0)(z1, z2).backward()
    g_stop = z1.grad.clone() if z1.grad is not None else None
    assert g_stop is not None and torch.isfinite(g_stop).all() and g_stop.abs().sum() > 0
    z1.grad = None
    z2.grad = None
    GroCoLoss(topk_negatives=2, steepness=3.0, stop_gradient=False)(z1, z2).backward()
    assert z1.grad is not None and not torch.allclose(z1.grad, g_stop)


def test_loss_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least 2 views"):
        GroCoLoss()(torch.randn(4, 3))
    with pytest.raises(ValueError, match="one shape"):
        GroCoLoss()(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least 2 samples"):
        GroCoLoss()(torch.randn(1, 3), torch.randn(1, 3))
    with pytest.raises(ValueError, match="network"):
        GroCoLoss(network="bubble")
    with pytest.raises(ValueError, match="power-of-two"):
        sorting_network("bitonic", 6)


# -- the pretext task -------------------------------------------------------------------


@pytest.mark.parametrize("n_views", [2, 3])
def test_build_forward_backward_and_step(n_views: int) -> None:
    torch.manual_seed(0)
    dataset, encoder = NoisyVectors(), LinearEncoder()
    task = groco.build(encoder, dataset, n_views=n_views, proj_hidden_dim=16, proj_out_dim=8)
    assert isinstance(task, PretextTask) and task.encoder is encoder
    opt = torch.optim.AdamW(task.parameters(), lr=1e-2)
    batch = dataset.collate(dataset.pretrain_set()[:12])
    for step in range(1, 3):
        opt.zero_grad()
        out = task(batch, torch.Generator().manual_seed(step))
        assert out["loss"].ndim == 0 and torch.isfinite(out["loss"])
        assert out["embedding"].shape == (12, 5) and out["misordered"].ndim == 0
        out["loss"].backward()
        grad = encoder.fc.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
        opt.step()
        task.on_train_step_end(step, 2)


def test_two_views_are_simclrs_views() -> None:
    dataset, encoder = NoisyVectors(), LinearEncoder()
    batch = dataset.x[:8]
    got = groco.build(encoder, dataset, n_views=2, proj_hidden_dim=8, proj_out_dim=4)(
        batch, torch.Generator().manual_seed(3))["embedding"]
    want = simclr.build(encoder, dataset, proj_hidden_dim=8, proj_out_dim=4)(
        batch, torch.Generator().manual_seed(3))["embedding"]
    torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize(("options", "field"), [({"n_views": 1}, "n_views"),
                                                ({"steepness": 0.0}, "steepness"),
                                                ({"relaxation": "gauss"}, "relaxation"),
                                                ({"topk_negatives": 0}, "topk_negatives")])
def test_build_rejects_bad_values_naming_the_field(options: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        groco.build(LinearEncoder(), NoisyVectors(), **options)


# DDP: tests/test_g_simclr.py runs GroCo beside G-SimCLR in its two gloo processes (one
# spawn for both: starting the processes is most of such a test's time).
