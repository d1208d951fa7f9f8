"""GEDI (core.gedi) against loop references of its terms, its sampler, and a toy clustering.

Each reference is written from the formulas in the module doc with explicit loops
over samples and clusters (``math.exp``/``math.log`` on Python floats), sharing no
code with :mod:`selfsup.objectives.gedi`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import normalized_mutual_info_score
from torch import nn

from selfsup.components import EvalContext, SSLDataset, TaskSpec
from selfsup.evaluators.embeddings import extract_embeddings
from selfsup.objectives import gedi
from selfsup.objectives.gedi import (
    ClusterHead,
    ReplayBuffer,
    contrastive_divergence,
    energy_from_logits,
    invariance_term,
    prior_term,
    sgld,
)

# -- fixtures ------------------------------------------------------------------------


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(*shape, generator=g, dtype=torch.float64)


class Blobs(SSLDataset):
    """A 2-D mixture of ``k`` Gaussians on a circle; views add Gaussian noise."""

    name = "test.blobs"
    modality = "vector"

    def __init__(self, n: int = 512, k: int = 4, seed: int = 0, spread: float = 0.4) -> None:
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(n) % k
        angle = 2 * math.pi * self.y.float() / k
        centres = 3.0 * torch.stack([angle.cos(), angle.sin()], dim=1)
        self.x = centres + spread * torch.randn(n, 2, generator=g)
        self.task = TaskSpec("classification", n_classes=k)

    def pretrain_set(self) -> Any:
        return self.x

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch + 0.3 * torch.randn(batch.shape, generator=generator, dtype=batch.dtype)

    def labelled_split(self, split: str) -> Any:
        return torch.utils.data.TensorDataset(self.x, self.y) if split == "test" else None


class MLP(nn.Module):
    def __init__(self, in_dim: int = 2, embed_dim: int = 16) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.net = nn.Sequential(nn.Linear(in_dim, 64), nn.ReLU(), nn.Linear(64, embed_dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class Tokens(SSLDataset):
    """Integer token ids: the energy term's Langevin dynamics cannot move them."""

    name = "test.tokens"
    modality = "vector"

    def pretrain_set(self) -> Any:
        return torch.randint(0, 5, (8, 3), generator=torch.Generator().manual_seed(0))

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return batch


class TokenEncoder(nn.Module):
    embed_dim = 4

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(5, 4)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.emb(x).mean(dim=1)  # type: ignore[no-any-return]


# -- loop references -------------------------------------------------------------------


def ref_softmax(row: torch.Tensor) -> list[float]:
    values = [float(v) for v in row]
    top = max(values)
    exps = [math.exp(v - top) for v in values]
    total = sum(exps)
    return [e / total for e in exps]


def ref_invariance(l1: torch.Tensor, l2: torch.Tensor) -> float:
    """1/2 mean_i [H(p2_i, p1_i) + H(p1_i, p2_i)], sample by sample."""
    total = 0.0
    for i in range(l1.shape[0]):
        p1, p2 = ref_softmax(l1[i]), ref_softmax(l2[i])
        ce_21 = -sum(p2[y] * math.log(p1[y]) for y in range(len(p1)))
        ce_12 = -sum(p1[y] * math.log(p2[y]) for y in range(len(p1)))
        total += 0.5 * (ce_21 + ce_12)
    return total / l1.shape[0]


def ref_prior(logits: torch.Tensor) -> float:
    """-sum_y log(K * mean_i p_iy): K times KL(uniform || batch-mean assignment)."""
    n, k = logits.shape
    p_bar = [0.0] * k
    for i in range(n):
        for y, p in enumerate(ref_softmax(logits[i])):
            p_bar[y] += p / n
    return -sum(math.log(k * p_bar[y]) for y in range(k))


def ref_energy(logits: torch.Tensor) -> list[float]:
    return [-math.log(sum(math.exp(float(v)) for v in row)) for row in logits]


# -- the terms -------------------------------------------------------------------------


def test_invariance_term_matches_the_loop_reference_and_is_symmetric() -> None:
    l1, l2 = randn(7, 5, seed=1, scale=2.0), randn(7, 5, seed=2, scale=2.0)
    assert float(invariance_term(l1, l2)) == pytest.approx(ref_invariance(l1, l2), rel=1e-10)
    assert float(invariance_term(l1, l2)) == pytest.approx(float(invariance_term(l2, l1)))


def test_prior_term_matches_the_loop_reference() -> None:
    logits = randn(9, 4, seed=3, scale=3.0)
    assert float(prior_term(logits)) == pytest.approx(ref_prior(logits), rel=1e-10)


def test_energy_matches_the_loop_reference() -> None:
    logits = randn(6, 3, seed=4, scale=2.0)
    assert energy_from_logits(logits).tolist() == pytest.approx(ref_energy(logits), rel=1e-10)
    e_data, e_samples = torch.tensor([1.0, 3.0]), torch.tensor([-2.0, 0.0, 2.0])
    assert float(contrastive_divergence(e_data, e_samples)) == pytest.approx(2.0)


def test_prior_term_is_zero_for_a_uniform_marginal_and_large_for_cluster_collapse() -> None:
    balanced = 20.0 * torch.eye(4, dtype=torch.float64).repeat(3, 1)  # each cluster 3 times
    collapsed = torch.zeros(12, 4, dtype=torch.float64)
    collapsed[:, 0] = 20.0
    assert float(prior_term(balanced)) == pytest.approx(0.0, abs=1e-6)
    assert float(prior_term(collapsed)) > 40  # the three empty clusters cost ~ 20 nats each


def test_invariance_term_is_lowest_for_confident_agreeing_views() -> None:
    confident = 20.0 * torch.eye(4, dtype=torch.float64)
    permuted = confident[[1, 2, 3, 0]]  # view 2's clusters are view 1's, relabelled
    assert float(invariance_term(confident, confident)) < 1e-6
    assert float(invariance_term(confident, permuted)) > 10


def test_terms_reject_bad_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        invariance_term(torch.zeros(3, 4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="K >= 2"):
        prior_term(torch.zeros(3, 1))


# -- the sampler -----------------------------------------------------------------------


def test_sgld_without_noise_is_gradient_descent_on_the_energy() -> None:
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x0 = randn(5, 2, seed=5, scale=3.0)

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x - mu) ** 2).sum(dim=1)

    out = sgld(energy, x0, steps=4, step_size=0.1, noise=0.0,
               generator=torch.Generator().manual_seed(0))
    for i in range(5):
        point = [float(v) for v in x0[i]]
        for _ in range(4):  # dE/dx = x - mu
            point = [p - 0.1 * (p - float(m)) for p, m in zip(point, mu, strict=True)]
        assert out[i].tolist() == pytest.approx(point, rel=1e-12)
    assert not out.requires_grad


def test_sgld_decreases_the_energy_of_samples_on_a_toy_energy() -> None:
    mu = torch.tensor([2.0, -1.0, 0.5])

    def energy(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * ((x - mu) ** 2).sum(dim=1)

    x0 = 4.0 * torch.randn(256, 3, generator=torch.Generator().manual_seed(0))
    out = sgld(energy, x0, steps=30, step_size=0.1, noise=0.05,
               generator=torch.Generator().manual_seed(1))
    assert float(energy(out).mean()) < 0.05 * float(energy(x0).mean())


def test_sgld_projection_keeps_samples_in_the_box() -> None:
    def energy(x: torch.Tensor) -> torch.Tensor:
        return -(x.sum(dim=1))  # pushes every coordinate up without bound

    out = sgld(energy, torch.zeros(4, 3), steps=5, step_size=1.0, noise=0.1,
               generator=torch.Generator().manual_seed(0),
               project=lambda x: x.clamp(-1.0, 1.0))
    assert out.max() <= 1.0 and out.min() >= -1.0


def test_replay_buffer_ranges_restarts_and_stores() -> None:
    g = torch.Generator().manual_seed(0)
    buf = ReplayBuffer(50, (3,), reinit_prob=0.0)
    data = torch.tensor([[0.0, -1.0, 2.0], [1.0, 1.0, 2.0]])
    buf.observe(data, g)
    assert bool(buf.ready)
    assert buf.low.tolist() == [0.0, -1.0, 2.0] and buf.high.tolist() == [1.0, 1.0, 2.0]
    assert (buf.samples >= buf.low).all() and (buf.samples <= buf.high).all()
    buf.observe(torch.tensor([[-3.0, 0.0, 5.0]]), g)  # the range widens, the chains stay
    assert buf.low.tolist() == [-3.0, -1.0, 2.0] and buf.high.tolist() == [1.0, 1.0, 5.0]
    x, slots = buf.draw(8, g)
    assert torch.equal(x, buf.samples[slots])  # reinit_prob 0: the stored states
    buf.store(torch.full((8, 3), 7.0), slots)
    assert (buf.samples[slots] == 7.0).all()
    buf.reinit_prob = 1.0
    fresh, _ = buf.draw(200, g)  # reinit_prob 1: all noise in the range
    assert (fresh >= buf.low).all() and (fresh <= buf.high).all()
    assert not (fresh == 7.0).all(dim=1).any()


# -- the pretext task ------------------------------------------------------------------


def small_task(**options: Any) -> gedi.GEDI:
    torch.manual_seed(0)
    defaults: dict[str, Any] = {"n_clusters": 4, "proj_hidden_dim": 32, "buffer_size": 64,
                                "sgld_steps": 3}
    return gedi.build(MLP(), Blobs(n=64), **{**defaults, **options})


def test_forward_returns_the_named_terms_whose_weighted_sum_is_the_loss() -> None:
    task = small_task(invariance_weight=0.5, prior_weight=2.0, ebm_weight=0.3)
    before = task.buffer.samples.clone() if task.buffer is not None else None
    out = task(Blobs(n=64).x[:32], torch.Generator().manual_seed(0))
    expected = 0.5 * out["invariance"] + 2.0 * out["prior"] + 0.3 * out["generative"]
    assert float(out["loss"].detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    for key in ("invariance", "prior", "generative", "energy_data", "energy_samples",
                "assignment_entropy", "clusters_used", "confidence", "agreement"):
        assert out[key].ndim == 0 and torch.isfinite(out[key]), key
    assert out["embedding"].shape == (32, 16) and not out["embedding"].requires_grad
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in task.encoder.parameters())
    assert task.buffer is not None and before is not None
    assert not torch.equal(task.buffer.samples, before)  # the chains advanced


def test_the_energy_runs_in_eval_mode_and_leaves_the_modes_and_statistics_alone() -> None:
    task = small_task()
    task.train()
    bn = next(m for m in task.projector if isinstance(m, nn.BatchNorm1d))
    stats = bn.running_mean.clone()
    x = Blobs(n=8).x
    with torch.no_grad():
        e = task.energy(x)
        single = task.energy(x[:1])
    assert task.training and task.projector.training and task.encoder.training
    assert torch.equal(bn.running_mean, stats)
    # eval mode: a sample's energy does not depend on the rest of its batch
    assert float(single) == pytest.approx(float(e[0]), abs=1e-5)


def test_ebm_weight_zero_drops_the_generative_term_and_the_buffer() -> None:
    task = small_task(ebm_weight=0)
    assert task.buffer is None
    out = task(Blobs(n=64).x[:16], torch.Generator().manual_seed(0))
    assert "generative" not in out
    total = out["invariance"] + out["prior"]
    assert float(out["loss"].detach()) == pytest.approx(float(total.detach()))


def test_non_float_inputs_raise_naming_ebm_weight_zero() -> None:
    with pytest.raises(TypeError, match="ebm_weight=0"):
        gedi.build(TokenEncoder(), Tokens(), n_clusters=3, proj_hidden_dim=8)
    task = gedi.build(TokenEncoder(), Tokens(), n_clusters=3, proj_hidden_dim=8, ebm_weight=0)
    out = task(Tokens().pretrain_set(), torch.Generator().manual_seed(0))
    assert torch.isfinite(out["loss"])


def test_the_replay_buffer_is_saved_with_the_task() -> None:
    task = small_task()
    task(Blobs(n=64).x[:16], torch.Generator().manual_seed(0))
    state = task.state_dict()
    assert "buffer.samples" in state and "buffer.ready" in state
    fresh = small_task()
    fresh.load_state_dict(state)
    assert fresh.buffer is not None and task.buffer is not None
    assert torch.equal(fresh.buffer.samples, task.buffer.samples) and bool(fresh.buffer.ready)


def test_build_checks_its_options() -> None:
    with pytest.raises(ValueError, match="n_clusters"):
        small_task(n_clusters=1)
    with pytest.raises(TypeError, match="sgld_steps"):
        small_task(sgld_step=3)


def test_gedi_clusters_a_mixture_of_gaussians_without_collapse() -> None:
    """A short training on 4 Gaussian blobs: the cluster head finds them, evenly, and
    the energy is lower on the data than on uniform noise around it."""
    data = Blobs(n=512, k=4)
    torch.manual_seed(0)
    task = gedi.build(MLP(), data, n_clusters=4, proj_hidden_dim=64, buffer_size=512,
                      sgld_steps=5)
    opt = torch.optim.Adam(task.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    task.train()
    for _ in range(100):
        batch = data.x[torch.randint(0, len(data.x), (128,), generator=g)]
        out = task(batch, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    logits, y = extract_embeddings(ClusterHead(task), data, "test", EvalContext(device="cpu"))
    assign = logits.argmax(axis=1)
    assert normalized_mutual_info_score(y, assign) > 0.9
    shares = np.bincount(assign, minlength=4) / len(assign)
    assert shares.min() > 0.15  # no cluster collapse: every cluster holds a blob's share
    assert float(out["assignment_entropy"]) > 0.95
    noise = 8 * torch.rand(512, 2, generator=torch.Generator().manual_seed(1)) - 4
    with torch.no_grad():  # seeds 0-3 gave gaps of 6.6-7.3 nats (2.4-3.1 with ebm_weight=0)
        assert float(task.energy(noise).mean() - task.energy(data.x).mean()) > 4
