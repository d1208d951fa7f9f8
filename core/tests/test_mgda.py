"""MGDA min-norm weights against closed forms and a brute-force search."""

from __future__ import annotations

import itertools

import pytest
import torch

from selfsup.mgda import mgda_combine, min_norm_weights


def test_two_tasks_match_the_closed_form() -> None:
    g1, g2 = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([-1.0, 3.0, 0.5])
    # min over gamma of |gamma g1 + (1 - gamma) g2|^2
    gamma = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
    w = min_norm_weights(torch.stack([g1, g2]))
    assert w.tolist() == pytest.approx([gamma, 1 - gamma], abs=1e-5)


def test_three_tasks_match_a_grid_search_and_give_a_common_descent_direction() -> None:
    g = torch.randn(3, 5, generator=torch.Generator().manual_seed(3))
    w = min_norm_weights(g)
    assert float(w.sum()) == pytest.approx(1.0) and bool((w >= 0).all())
    steps = [i / 200 for i in range(201)]
    best = min(
        float(((a * g[0] + b * g[1] + (1 - a - b) * g[2]) ** 2).sum())
        for a, b in itertools.product(steps, steps)
        if a + b <= 1
    )
    d = w @ g
    assert float(d @ d) == pytest.approx(best, abs=1e-3)
    # the min-norm point d satisfies d . g_t >= |d|^2 for every task: -d descends all losses
    assert bool((g @ d >= float(d @ d) - 1e-5).all())


def test_orthogonal_equal_gradients_get_equal_weights_and_a_zero_gradient_takes_all() -> None:
    assert min_norm_weights(torch.eye(4)).tolist() == pytest.approx([0.25] * 4, abs=1e-4)
    w = min_norm_weights(torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    assert w.tolist() == pytest.approx([0.0, 1.0], abs=1e-4)


def test_combine_backward_applies_the_weighted_gradient() -> None:
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    l1 = ((p - torch.tensor([3.0, 0.0])) ** 2).sum()
    l2 = ((p - torch.tensor([0.0, 1.0])) ** 2).sum()
    total, w = mgda_combine([l1, l2], [p], normalization="none")
    g1, g2 = (
        2 * (p.detach() - torch.tensor([3.0, 0.0])),
        2 * (p.detach() - torch.tensor([0.0, 1.0])),
    )
    total.backward()
    assert torch.allclose(p.grad, w[0] * g1 + w[1] * g2)
    assert torch.allclose(w, min_norm_weights(torch.stack([g1, g2])))


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="normalization"):
        mgda_combine([torch.tensor(1.0, requires_grad=True)], [], normalization="max")
    with pytest.raises(ValueError, match="not finite"):
        min_norm_weights(torch.tensor([[float("nan"), 1.0]]))


@pytest.mark.parametrize("tasks,dims", [(3, 5), (4, 6), (5, 3), (8, 4)])
def test_the_weights_satisfy_the_optimality_conditions_exactly(tasks: int, dims: int) -> None:
    # KKT of min w'Gw on the simplex: (G w)_t >= w'Gw for every t, equal where w_t > 0;
    # fewer dimensions than tasks makes G singular (a face of minimisers)
    gen = torch.Generator().manual_seed(tasks * 10 + dims)
    for _ in range(20):
        g = torch.randn(tasks, dims, generator=gen, dtype=torch.float64) + 0.5
        w = min_norm_weights(g)
        gw = (g @ g.T) @ w
        norm = float(w @ gw)
        assert float(w.sum()) == pytest.approx(1.0) and bool((w >= 0).all())
        assert float(gw.min()) >= norm - 1e-9
        assert float((gw[w > 1e-9] - norm).abs().max()) <= 1e-9
