"""The joint-embedding objectives against independent references of the papers' formulas.

Each reference below is written from the paper's equations with explicit loops over
samples and features, sharing no code with :mod:`selfsup.objectives`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.objectives import barlow_twins, byol, simclr, simsiam, vicreg
from selfsup.objectives.barlow_twins import BarlowTwinsLoss
from selfsup.objectives.byol import BYOLLoss, target_momentum
from selfsup.objectives.projection import mlp_head
from selfsup.objectives.simclr import NTXentLoss
from selfsup.objectives.simsiam import DirectPredPredictor, SimSiamLoss, directpred_weight
from selfsup.objectives.vicreg import VICRegLoss

# -- tiny fixtures ---------------------------------------------------------------------


class NoisyVectors(SSLDataset):
    """Random vectors whose views add Gaussian noise drawn from the trainer's generator."""

    name = "test.noisy_vectors"
    modality = "vector"

    def __init__(self, n: int = 32, dim: int = 6, sigma: float = 0.1) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        self.sigma = sigma

    def pretrain_set(self) -> Any:
        return list(self.x)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(batch.shape, generator=generator, dtype=batch.dtype)
        return batch + self.sigma * noise


class LinearEncoder(nn.Module):
    def __init__(self, in_dim: int = 6, embed_dim: int = 5) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.fc = nn.Linear(in_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)  # type: ignore[no-any-return]

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)



def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# -- independent references ------------------------------------------------------------


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    dot = sum(float(a[k]) * float(b[k]) for k in range(len(a)))
    na = math.sqrt(sum(float(v) ** 2 for v in a))
    nb = math.sqrt(sum(float(v) ** 2 for v in b))
    return dot / (na * nb)


def ref_nt_xent(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    """SimCLR Algorithm 1 with its interleaved indexing: views 2k and 2k+1 are a pair."""
    n = z1.shape[0]
    z = [z1[k] if i == 0 else z2[k] for k in range(n) for i in (0, 1)]

    def ell(i: int, j: int) -> float:
        den = sum(math.exp(_cos(z[i], z[m]) / t) for m in range(2 * n) if m != i)
        return -math.log(math.exp(_cos(z[i], z[j]) / t) / den)

    return sum(ell(2 * k, 2 * k + 1) + ell(2 * k + 1, 2 * k) for k in range(n)) / (2 * n)


def ref_barlow(za: torch.Tensor, zb: torch.Tensor, lam: float) -> float:
    """Barlow Twins Eq. 1-2 on batch-centred embeddings."""
    n, d = za.shape
    ca = [[float(za[b, i] - za[:, i].mean()) for i in range(d)] for b in range(n)]
    cb = [[float(zb[b, i] - zb[:, i].mean()) for i in range(d)] for b in range(n)]
    loss = 0.0
    for i in range(d):
        for j in range(d):
            num = sum(ca[b][i] * cb[b][j] for b in range(n))
            den = math.sqrt(sum(ca[b][i] ** 2 for b in range(n)))
            den *= math.sqrt(sum(cb[b][j] ** 2 for b in range(n)))
            c = num / den
            loss += (1 - c) ** 2 if i == j else lam * c**2
    return loss


def ref_vicreg(
    za: torch.Tensor, zb: torch.Tensor, lam: float, mu: float, nu: float, eps: float = 1e-4
) -> float:
    """VICReg Eq. 1-6: unbiased (co)variances, hinge at gamma = 1."""
    n, d = za.shape

    def v(z: torch.Tensor) -> float:
        total = 0.0
        for j in range(d):
            mean = sum(float(z[b, j]) for b in range(n)) / n
            var = sum((float(z[b, j]) - mean) ** 2 for b in range(n)) / (n - 1)
            total += max(0.0, 1 - math.sqrt(var + eps))
        return total / d

    def c(z: torch.Tensor) -> float:
        means = [sum(float(z[b, j]) for b in range(n)) / n for j in range(d)]
        total = 0.0
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov = sum(
                        (float(z[b, i]) - means[i]) * (float(z[b, j]) - means[j]) for b in range(n)
                    ) / (n - 1)
                    total += cov**2
        return total / d

    s = sum((float(za[b, j]) - float(zb[b, j])) ** 2 for b in range(n) for j in range(d))
    s /= n * d
    return lam * s + mu * (v(za) + v(zb)) + nu * (c(za) + c(zb))


def ref_byol(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> float:
    """BYOL Eq. 2, ||q/|q| - z'/|z'|||^2, summed over the two directions."""

    def sq_dist(q: torch.Tensor, z: torch.Tensor) -> float:
        nq = math.sqrt(sum(float(v) ** 2 for v in q))
        nz = math.sqrt(sum(float(v) ** 2 for v in z))
        return sum((float(q[k]) / nq - float(z[k]) / nz) ** 2 for k in range(len(q)))

    n = p1.shape[0]
    return (
        sum(sq_dist(p1[b], z2[b]) for b in range(n)) / n
        + sum(sq_dist(p2[b], z1[b]) for b in range(n)) / n
    )


def ref_simsiam(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> float:
    """SimSiam Eq. 1-2 with D(p, z) = -cos(p, z), averaged over the batch."""
    n = p1.shape[0]
    d12 = -sum(_cos(p1[b], z2[b]) for b in range(n)) / n
    d21 = -sum(_cos(p2[b], z1[b]) for b in range(n)) / n
    return d12 / 2 + d21 / 2


# -- losses against the references -----------------------------------------------------


def test_nt_xent_matches_reference() -> None:
    z1, z2 = randn(6, 4, seed=1), randn(6, 4, seed=2)
    for t in (0.1, 0.5):
        got = NTXentLoss(t)(z1, z2)
        assert got.item() == pytest.approx(ref_nt_xent(z1, z2, t), rel=1e-9)


def test_barlow_twins_matches_reference() -> None:
    za, zb = randn(7, 4, seed=3), randn(7, 4, seed=4) + randn(7, 4, seed=3)
    got = BarlowTwinsLoss(off_diagonal_weight=5e-3)(za, zb)
    # eps = 1e-5 in the standardisation is the only difference from Eq. 2.
    assert got.item() == pytest.approx(ref_barlow(za, zb, 5e-3), rel=1e-4)


def test_vicreg_matches_reference() -> None:
    # Small spread so that the variance hinge is active on some features.
    za = randn(8, 5, seed=5) * torch.tensor([0.3, 2.0, 0.5, 1.5, 0.1], dtype=torch.float64)
    zb = za + 0.2 * randn(8, 5, seed=6)
    got = VICRegLoss(25.0, 25.0, 1.0)(za, zb)
    assert got.item() == pytest.approx(ref_vicreg(za, zb, 25.0, 25.0, 1.0), rel=1e-9)


def test_byol_and_simsiam_match_reference() -> None:
    p1, p2, z1, z2 = (randn(5, 3, seed=s) for s in (7, 8, 9, 10))
    assert BYOLLoss()(p1, p2, z1, z2).item() == pytest.approx(ref_byol(p1, p2, z1, z2), rel=1e-9)
    assert SimSiamLoss()(p1, p2, z1, z2).item() == pytest.approx(
        ref_simsiam(p1, p2, z1, z2), rel=1e-9
    )


@pytest.mark.parametrize("loss", [NTXentLoss(0.2), BarlowTwinsLoss(5e-3), VICRegLoss()], ids=type)
def test_two_batch_losses_are_symmetric(loss: nn.Module) -> None:
    z1, z2 = randn(6, 4, seed=11), randn(6, 4, seed=12)
    assert loss(z1, z2).item() == pytest.approx(loss(z2, z1).item(), rel=1e-12)


@pytest.mark.parametrize("loss", [BYOLLoss(), SimSiamLoss()], ids=type)
def test_predictor_losses_are_symmetric(loss: nn.Module) -> None:
    p1, p2, z1, z2 = (randn(5, 3, seed=s) for s in (13, 14, 15, 16))
    assert loss(p1, p2, z1, z2).item() == pytest.approx(loss(p2, p1, z2, z1).item(), rel=1e-12)


# -- gradients ------------------------------------------------------------------------


@pytest.mark.parametrize("loss", [NTXentLoss(0.1), BarlowTwinsLoss(5e-3), VICRegLoss()], ids=type)
def test_two_batch_losses_send_finite_gradients_to_both_views(loss: nn.Module) -> None:
    z1 = randn(6, 4, seed=17).requires_grad_()
    z2 = randn(6, 4, seed=18).requires_grad_()
    loss(z1, z2).backward()
    for z in (z1, z2):
        assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


@pytest.mark.parametrize("loss", [BYOLLoss(), SimSiamLoss()], ids=type)
def test_predictor_losses_stop_the_gradient_at_the_targets(loss: nn.Module) -> None:
    p1, p2, z1, z2 = (randn(5, 3, seed=s).requires_grad_() for s in (19, 20, 21, 22))
    loss(p1, p2, z1, z2).backward()
    for p in (p1, p2):
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0
    assert z1.grad is None and z2.grad is None


def test_simsiam_encoder_gradient_comes_only_through_the_predictor() -> None:
    torch.manual_seed(0)
    dataset, encoder = NoisyVectors(), LinearEncoder()
    task = simsiam.build(encoder, dataset, proj_hidden_dim=8, proj_out_dim=4, pred_hidden_dim=3)
    batch = dataset.x[:8]
    task(batch, torch.Generator().manual_seed(1))["loss"].backward()
    assert encoder.fc.weight.grad is not None
    got = encoder.fc.weight.grad.clone()

    def manual_grad(stop_gradient: bool) -> torch.Tensor:
        encoder.zero_grad()
        g = torch.Generator().manual_seed(1)
        v1, v2 = dataset.augment(batch, g), dataset.augment(batch, g)
        z1, z2 = task.projector(encoder(v1)), task.projector(encoder(v2))
        p1, p2 = task.predictor(z1), task.predictor(z2)
        t1, t2 = (z1.detach(), z2.detach()) if stop_gradient else (z1, z2)
        cos = nn.functional.cosine_similarity
        loss = -(cos(p1, t2).mean() + cos(p2, t1).mean()) / 2
        loss.backward()
        assert encoder.fc.weight.grad is not None
        return encoder.fc.weight.grad.clone()

    torch.testing.assert_close(got, manual_grad(stop_gradient=True))
    # The check has power: without the stop-gradient the encoder gradient differs.
    assert not torch.allclose(got, manual_grad(stop_gradient=False), atol=1e-6)


# -- collapse --------------------------------------------------------------------------


def test_collapsed_embeddings_give_the_maximal_vicreg_variance_term() -> None:
    z = torch.full((8, 4), 3.0, requires_grad=True)
    terms = VICRegLoss().terms(z, z)
    expected_variance = 2 * (1 - math.sqrt(1e-4))  # both views, every feature at the hinge
    assert terms["variance"].item() == pytest.approx(expected_variance)
    assert terms["invariance"].item() == 0 and terms["covariance"].item() == 0
    assert terms["loss"].item() == pytest.approx(25 * expected_variance)
    terms["loss"].backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_collapsed_embeddings_give_the_maximal_barlow_on_diagonal_term() -> None:
    z = torch.full((8, 4), -2.0, requires_grad=True)
    terms = BarlowTwinsLoss().terms(z, z)
    assert terms["on_diagonal"].item() == pytest.approx(4.0)  # (1 - 0)^2 per feature
    assert terms["off_diagonal"].item() == 0
    terms["loss"].backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()


def test_aligned_decorrelated_views_give_zero_barlow_loss() -> None:
    n, d = 16, 4
    centred = randn(n, d, seed=23)
    centred -= centred.mean(dim=0)
    q, _ = torch.linalg.qr(centred)  # orthonormal, zero-mean columns
    z = q * math.sqrt(n)  # unit (biased) variance: C = I exactly, up to eps
    assert BarlowTwinsLoss()(z, z).item() < 1e-8


# -- BYOL target network ------------------------------------------------------------


def test_target_momentum_follows_the_cosine_schedule() -> None:
    assert target_momentum(0, 100, 0.996) == pytest.approx(0.996)
    assert target_momentum(50, 100, 0.996) == pytest.approx(0.998)
    assert target_momentum(100, 100, 0.996) == pytest.approx(1.0)
    assert target_momentum(250, 100, 0.996) == pytest.approx(1.0)  # clamped
    with pytest.raises(ValueError, match="total_steps"):
        target_momentum(1, 0, 0.996)


def test_byol_target_gets_no_gradient_and_follows_the_ema() -> None:
    torch.manual_seed(0)
    dataset, encoder = NoisyVectors(), LinearEncoder()
    task = byol.build(encoder, dataset, proj_hidden_dim=8, proj_out_dim=4, pred_hidden_dim=8)
    task(dataset.x[:8], torch.Generator().manual_seed(0))["loss"].backward()
    target = [*task.target_encoder.parameters(), *task.target_projector.parameters()]
    assert all(p.grad is None and not p.requires_grad for p in target)
    assert encoder.fc.weight.grad is not None and torch.isfinite(encoder.fc.weight.grad).all()

    with torch.no_grad():  # make online and target differ
        for p in [*encoder.parameters(), *task.projector.parameters()]:
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in target]
    online = [p.clone() for p in [*encoder.parameters(), *task.projector.parameters()]]
    task.on_train_step_end(30, 100)
    tau = 1 - (1 - 0.996) * (math.cos(math.pi * 0.3) + 1) / 2
    assert task.tau == pytest.approx(tau)
    for new, old, o in zip(target, before, online, strict=True):
        torch.testing.assert_close(new, tau * old + (1 - tau) * o)


# -- DirectPred -----------------------------------------------------------------------


def test_directpred_weight_matches_the_formula() -> None:
    u, _ = torch.linalg.qr(randn(4, 4, seed=24))
    s = torch.tensor([4.0, 1.0, 0.25, 0.0], dtype=torch.float64)
    corr = u @ torch.diag(s) @ u.T
    # p_j = sqrt(s_j) / max sqrt(s) + eps = [2, 1, .5, 0] / 2 + 0.1
    p = torch.tensor([1.1, 0.6, 0.35, 0.1], dtype=torch.float64)
    torch.testing.assert_close(directpred_weight(corr, eps=0.1), u @ torch.diag(p) @ u.T)
    torch.testing.assert_close(directpred_weight(torch.zeros(3, 3), eps=0.1), 0.1 * torch.eye(3))


def test_directpred_tracks_the_running_correlation_every_freq_steps() -> None:
    pred = DirectPredPredictor(3, rho=0.3, eps=0.1, freq=2)
    fa, fb, fc = (randn(10, 3, seed=s).float() for s in (25, 26, 27))

    def corr(f: torch.Tensor) -> torch.Tensor:
        return f.T @ f / f.shape[0]

    pred.observe(fa)  # observation 0: weight updated
    expected = 0.7 * corr(fa)
    torch.testing.assert_close(pred.correlation, expected)
    torch.testing.assert_close(pred.weight.data, directpred_weight(expected, 0.1))
    weight_before = pred.weight.detach().clone()
    pred.observe(fb)  # observation 1: correlation only
    expected = 0.3 * expected + 0.7 * corr(fb)
    torch.testing.assert_close(pred.correlation, expected)
    torch.testing.assert_close(pred.weight.data, weight_before)
    pred.observe(fc)  # observation 2: weight updated again
    expected = 0.3 * expected + 0.7 * corr(fc)
    torch.testing.assert_close(pred.weight.data, directpred_weight(expected, 0.1))


def test_directpred_predictor_is_not_trained_by_the_optimiser() -> None:
    torch.manual_seed(0)
    dataset, encoder = NoisyVectors(), LinearEncoder()
    task = simsiam.build(
        encoder, dataset, proj_hidden_dim=8, proj_out_dim=4, predictor="directpred"
    )
    assert isinstance(task.predictor, DirectPredPredictor)
    assert not task.predictor.weight.requires_grad
    opt = torch.optim.SGD(task.parameters(), lr=1.0, momentum=0.9, weight_decay=0.1)
    task.train()
    for step in range(3):
        opt.zero_grad()
        task(dataset.x[:8], torch.Generator().manual_seed(step))["loss"].backward()
        weight = task.predictor.weight.detach().clone()
        # forward set the weight from the running correlation of the projections
        torch.testing.assert_close(weight, directpred_weight(task.predictor.correlation, 0.1))
        opt.step()
        assert task.predictor.weight.grad is None
        torch.testing.assert_close(task.predictor.weight.detach(), weight, rtol=0, atol=0)
    task.eval()  # evaluation does not update the statistics
    corr = task.predictor.correlation.clone()
    task(dataset.x[:8], torch.Generator().manual_seed(9))
    torch.testing.assert_close(task.predictor.correlation, corr, rtol=0, atol=0)


# -- heads ---------------------------------------------------------------------------


def test_mlp_head_layers() -> None:
    head = mlp_head(6, 16, 4, n_layers=3, norm="batch", last_norm=True)
    kinds = [type(m).__name__ for m in head]
    assert kinds == [
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
        "ReLU",
        "Linear",
        "BatchNorm1d",
    ]
    assert head[-1].affine is False and head[1].affine is True
    assert all(m.bias is None for m in head if isinstance(m, nn.Linear))  # BN follows each
    assert head(torch.randn(5, 6)).shape == (5, 4)

    plain = mlp_head(6, 16, 4, n_layers=2, norm="none", last_norm=True)
    assert [type(m).__name__ for m in plain] == ["Linear", "ReLU", "Linear"]
    layer = mlp_head(6, 16, 4, n_layers=2, norm="layer", last_norm=False)
    assert [type(m).__name__ for m in layer] == ["Linear", "LayerNorm", "ReLU", "Linear"]
    assert isinstance(mlp_head(6, 99, 4, n_layers=1), nn.Sequential)
    with pytest.raises(ValueError, match="norm"):
        mlp_head(6, 16, 4, norm="group")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_layers"):
        mlp_head(6, 16, 4, n_layers=0)


# -- build() and the pretext tasks end to end ---------------------------------------

SMALL: dict[str, tuple[ModuleType, dict[str, Any]]] = {
    "simclr": (simclr, {"proj_hidden_dim": 16, "proj_out_dim": 8}),
    "barlow_twins": (barlow_twins, {"proj_hidden_dim": 16, "proj_out_dim": 8}),
    "vicreg": (vicreg, {"proj_hidden_dim": 16, "proj_out_dim": 8}),
    "byol": (byol, {"proj_hidden_dim": 16, "proj_out_dim": 8, "pred_hidden_dim": 16}),
    "simsiam": (simsiam, {"proj_hidden_dim": 16, "proj_out_dim": 8, "pred_hidden_dim": 4}),
    "directpred": (
        simsiam,
        {"proj_hidden_dim": 16, "proj_out_dim": 8, "predictor": "directpred"},
    ),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_build_forward_backward_and_step(name: str) -> None:
    module, options = SMALL[name]
    torch.manual_seed(0)
    dataset, encoder = NoisyVectors(), LinearEncoder()
    task = module.build(encoder, dataset, **options)
    assert isinstance(task, nn.Module) and isinstance(task, PretextTask)
    assert task.encoder is encoder
    opt = torch.optim.AdamW(task.parameters(), lr=1e-2)
    batch = dataset.collate(dataset.pretrain_set()[:12])
    for step in range(1, 3):
        opt.zero_grad()
        out = task(batch, torch.Generator().manual_seed(step))
        loss = out["loss"]
        assert loss.ndim == 0 and torch.isfinite(loss)
        assert out["embedding"].shape == (12, encoder.embed_dim)
        assert all(v.ndim == 0 for k, v in out.items() if k not in ("loss", "embedding"))
        loss.backward()
        grad = encoder.fc.weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
        opt.step()
        task.on_train_step_end(step, 2)


@pytest.mark.parametrize("name", list(SMALL))
def test_build_rejects_unknown_options_listing_the_valid_ones(name: str) -> None:
    module, _ = SMALL[name]
    with pytest.raises(TypeError, match=r"'proj_dim' \(did you mean 'proj_out_dim'\?\)") as info:
        module.build(LinearEncoder(), NoisyVectors(), proj_dim=8)
    assert "valid options are " in str(info.value) and "proj_hidden_dim" in str(info.value)


@pytest.mark.parametrize(
    ("build", "options", "field"),
    [
        (simclr.build, {"temperature": 0.0}, "temperature"),
        (barlow_twins.build, {"off_diagonal_weight": -1.0}, "off_diagonal_weight"),
        (vicreg.build, {"variance_eps": 0.0}, "variance_eps"),
        (byol.build, {"tau_base": 1.0}, "tau_base"),
        (simsiam.build, {"predictor": "linear"}, "predictor"),
        (simsiam.build, {"directpred_freq": 0}, "directpred_freq"),
        (simclr.build, {"proj_norm": "group"}, "proj_norm"),
    ],
)
def test_build_rejects_bad_values_naming_the_field(
    build: Callable[..., Any], options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        build(LinearEncoder(), NoisyVectors(), **options)


def test_build_needs_an_encoder_with_embed_dim() -> None:
    with pytest.raises(TypeError, match="embed_dim"):
        vicreg.build(nn.Linear(6, 5), NoisyVectors())


def test_losses_reject_mismatched_or_too_small_batches() -> None:
    with pytest.raises(ValueError, match="same shape"):
        NTXentLoss()(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="at least 2"):
        BarlowTwinsLoss()(torch.randn(1, 3), torch.randn(1, 3))
