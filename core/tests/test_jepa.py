"""core.jepa, core.patch_transformer and the masked_tokens face.

The references below loop over samples, tokens and features, written from the
definitions in :mod:`selfsup.objectives.jepa`, sharing no code with it. The last
test reproduces the deep linear result of Littwin et al. (NeurIPS 2024).
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from selfsup.components import EncoderSpec, SSLDataset, Tokens
from selfsup.encoders.patch_transformer import PatchTransformer, PatchTransformerConfig
from selfsup.encoders.patch_transformer import build as build_patch_transformer
from selfsup.objectives import jepa
from selfsup.objectives.byol import target_momentum
from selfsup.objectives.jepa import JEPALoss, block_mask
from selfsup.plugins import Registry
from selfsup.testing import ConformanceError, check_encoder, check_pretext

# -- fixtures ---------------------------------------------------------------------------


class Vectors(SSLDataset):
    """Random 12-d vectors (no views: JEPA needs none)."""

    name = "test.vectors"
    modality = "vector"

    def __init__(self, n: int = 32, dim: int = 12) -> None:
        self.x = torch.randn(n, dim, generator=torch.Generator().manual_seed(0))
        self.input_dim = dim

    def pretrain_set(self) -> Any:
        return list(self.x)


def small_encoder(dim: int = 12, **options: Any) -> PatchTransformer:
    torch.manual_seed(0)
    config = {"patch_size": 2, "embed_dim": 16, "depth": 1, "n_heads": 2, **options}
    return PatchTransformer(dim, PatchTransformerConfig(**config))


SMALL = {"predictor_dim": 16, "predictor_depth": 1, "predictor_heads": 2}


# -- block masks ------------------------------------------------------------------------


def reference_block_mask(mask: torch.Tensor, draws: torch.Tensor, block_fraction: float,
                         max_ratio: float) -> torch.Tensor:
    hide = torch.zeros_like(mask)
    for b in range(mask.shape[0]):
        real = [t for t in range(mask.shape[1]) if mask[b, t]]  # real tokens, in order
        n = len(real)
        if n < 2:
            continue
        length = min(max(round(block_fraction * n), 1), n - 1)
        cap = min(max(math.floor(max_ratio * n), 1), n - 1)
        hidden: set[int] = set()
        for k in range(draws.shape[0]):
            start = math.floor(float(draws[k, b]) * (n - length + 1))
            block = set(real[start:start + length])
            if k == 0 or len(hidden | block) <= cap:
                hidden |= block
        for t in hidden:
            hide[b, t] = True
    return hide


@pytest.mark.parametrize(("block_fraction", "max_ratio"), [(0.15, 0.75), (0.4, 0.5), (0.9, 1.0)])
def test_block_mask_matches_the_loop_reference(block_fraction: float, max_ratio: float) -> None:
    g = torch.Generator().manual_seed(3)
    lengths = [0, 1, 2, 3, 5, 8, 13, 20, 20, 17]
    mask = torch.zeros(len(lengths), 20, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    mask[-1] = torch.rand(20, generator=g) < 0.7  # real tokens need not be contiguous
    draws = torch.rand(5, len(lengths), generator=g)
    hide = block_mask(mask, draws, block_fraction, max_ratio)
    assert torch.equal(hide, reference_block_mask(mask, draws, block_fraction, max_ratio))


def test_block_mask_hides_one_and_keeps_one_real_token_per_sample() -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        mask = torch.rand(16, 12, generator=g) < 0.6
        hide = jepa.sample_block_mask(mask, g, n_blocks=4, block_fraction=0.3, max_ratio=1.0)
        n = mask.sum(1)
        assert not (hide & ~mask).any()
        assert ((hide.sum(1) >= 1) & ((mask & ~hide).sum(1) >= 1))[n >= 2].all()
        assert not hide[n < 2].any()


def test_blocks_are_contiguous_spans_of_about_block_fraction() -> None:
    mask = torch.ones(1, 20, dtype=torch.bool)
    hide = block_mask(mask, torch.tensor([[0.5]]), block_fraction=0.25, max_ratio=1.0)
    assert hide[0].nonzero().flatten().tolist() == [8, 9, 10, 11, 12]


# -- the loss and one forward pass ----------------------------------------------------


def test_jepa_loss_matches_the_loop_reference() -> None:
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(3, 5, 4, generator=g), 2 * torch.randn(3, 5, 4, generator=g)
    hide = torch.rand(3, 5, generator=g) < 0.5
    hide[0, 0] = True
    for kind in ("l2", "smooth_l1"):
        total, count = 0.0, 0
        for b in range(3):
            for t in range(5):
                if hide[b, t]:
                    for d in range(4):
                        e = float(pred[b, t, d] - target[b, t, d])
                        total += e * e if kind == "l2" else (
                            0.5 * e * e if abs(e) < 1 else abs(e) - 0.5)
                        count += 1
        assert JEPALoss(kind)(pred, target, hide).item() == pytest.approx(total / count)
    with pytest.raises(ValueError, match="no token is hidden"):
        JEPALoss()(pred, target, torch.zeros(3, 5, dtype=torch.bool))


def test_forward_regresses_layer_normed_target_tokens_at_hidden_positions() -> None:
    dataset, encoder = Vectors(), small_encoder()
    task = jepa.build(encoder, dataset, **SMALL)
    task.train()
    batch = dataset.x[:6]
    out = task(batch, torch.Generator().manual_seed(5))
    # the reference: same hide (same generator draws), targets normalised token by token
    c = task.config
    real = torch.ones(6, 6, dtype=torch.bool)
    hide = jepa.sample_block_mask(real, torch.Generator().manual_seed(5), c.n_blocks,
                                  c.block_fraction, c.max_ratio)
    with torch.no_grad():
        full = task.target_encoder.tokens(batch).states
        pred = task.predictor(encoder.masked_tokens(batch, hide).states, hide, real)
    total, count = 0.0, 0
    for b in range(6):
        for t in range(6):
            if hide[b, t]:
                z = full[b, t]
                mean = sum(float(v) for v in z) / len(z)
                var = sum((float(v) - mean) ** 2 for v in z) / len(z)
                for d in range(len(z)):
                    target = (float(z[d]) - mean) / math.sqrt(var + 1e-5)
                    total += (float(pred[b, t, d]) - target) ** 2
                    count += 1
    assert out["loss"].item() == pytest.approx(total / count, rel=1e-5)
    assert out["hidden"].item() == pytest.approx(hide.float().mean().item())
    assert out["embedding"].shape == (6, encoder.embed_dim) and not out["embedding"].requires_grad


def test_target_gets_no_gradient_runs_in_eval_mode_and_follows_the_ema() -> None:
    dataset = Vectors()
    encoder = small_encoder(dropout=0.5)
    task = jepa.build(encoder, dataset, **SMALL)
    task.train()
    assert not task.target_encoder.training and encoder.training
    task(dataset.x[:8], torch.Generator().manual_seed(0))["loss"].backward()
    target = list(task.target_encoder.parameters())
    assert all(p.grad is None and not p.requires_grad for p in target)
    assert encoder.patch_embedding.weight.grad is not None
    assert encoder.mask_embedding.grad is not None and encoder.mask_embedding.grad.abs().sum() > 0
    with torch.no_grad():  # make online and target differ
        for p in encoder.parameters():
            p.add_(torch.randn_like(p))
    before = [p.clone() for p in target]
    online = [p.clone() for p in encoder.parameters()]
    task.on_train_step_end(30, 100)
    tau = target_momentum(30, 100, 0.996)
    assert task.tau == pytest.approx(1 - (1 - 0.996) * (math.cos(math.pi * 0.3) + 1) / 2)
    for new, old, o in zip(target, before, online, strict=True):
        torch.testing.assert_close(new, tau * old + (1 - tau) * o)


def test_training_lowers_the_loss_for_both_predictors() -> None:
    dataset = Vectors()
    batch = dataset.x
    for predictor in ("transformer", "mlp"):
        encoder = small_encoder()
        task = jepa.build(encoder, dataset, predictor=predictor, **SMALL, loss="smooth_l1")
        opt = torch.optim.AdamW(task.parameters(), lr=1e-2)
        losses = []
        for step in range(1, 11):
            out = task(batch, torch.Generator().manual_seed(step))
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            task.on_train_step_end(step, 10)
            losses.append(out["loss"].item())
        assert sum(losses[-3:]) < 0.75 * sum(losses[:3]), (predictor, losses)


def test_build_checks_its_options_and_the_encoder() -> None:
    dataset = Vectors()
    with pytest.raises(TypeError, match="did you mean 'n_blocks'"):
        jepa.build(small_encoder(), dataset, n_block=2)
    with pytest.raises(ValueError, match="block_fraction"):
        jepa.build(small_encoder(), dataset, block_fraction=1.0)
    with pytest.raises(ValueError, match="predictor_heads"):
        jepa.build(small_encoder(), dataset, predictor_dim=10, predictor_heads=4)
    with pytest.raises(TypeError, match="masked_tokens"):
        jepa.build(nn.Linear(3, 3), dataset)


# -- core.patch_transformer and the masked_tokens face -------------------------------


def test_patch_transformer_faces_and_hiding() -> None:
    encoder = small_encoder().eval()
    x = torch.randn(4, 12)
    tokens = encoder.tokens(x)
    assert tokens.states.shape == (4, 6, 16) and tokens.mask.all()
    torch.testing.assert_close(encoder.embed(x), tokens.states.mean(1))
    hide = torch.zeros(4, 6, dtype=torch.bool)
    torch.testing.assert_close(encoder.masked_tokens(x, hide).states, tokens.states)
    hide[:, 2] = True
    changed = x.clone()
    changed[:, 4:6] = 100.0  # the features of token 2
    torch.testing.assert_close(encoder.masked_tokens(changed, hide).states,
                               encoder.masked_tokens(x, hide).states)
    assert not torch.allclose(encoder.tokens(changed).states, tokens.states)
    with pytest.raises(ValueError, match="hide must be bool"):
        encoder.masked_tokens(x, hide[:, :3])


def test_patch_size_must_divide_the_features() -> None:
    with pytest.raises(ValueError, match=r"patch_size=5 .* choose a patch_size among \[1, 2, 3"):
        build_patch_transformer(Vectors(dim=12), patch_size=5)
    with pytest.raises(ValueError, match="n_heads"):
        build_patch_transformer(Vectors(dim=12), embed_dim=10, n_heads=4)


def test_bench_trains_jepa_on_core_patch_transformer_for_digits() -> None:
    from selfsup.bench import pretext_encoder

    reg = Registry(plugins=[], strict=True)
    reg.load()
    spec = reg.get("benchmark", "core.digits")
    assert "core.jepa" in spec.pretexts
    assert pretext_encoder(spec, reg.get("pretext", "core.jepa"), reg) == \
        "core.patch_transformer"


class _Mixing(nn.Module):
    """A faulty masked_tokens: it mixes neighbouring patches *before* masking."""

    embed_dim = 4

    def __init__(self, leak: str) -> None:
        super().__init__()
        self.leak = leak
        self.lin = nn.Linear(2, 4)
        self.mask = nn.Parameter(torch.ones(4))

    def _h(self, x: torch.Tensor) -> torch.Tensor:
        h = self.lin(x.view(x.shape[0], -1, 2))
        return h + h.roll(1, dims=1) if self.leak == "mix" else h

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self._h(x).mean(1)

    def tokens(self, x: torch.Tensor) -> Tokens:
        h = self._h(x)
        return Tokens(h, torch.ones(h.shape[:2], dtype=torch.bool))

    def masked_tokens(self, x: torch.Tensor, hide: torch.Tensor) -> Tokens:
        h = self._h(x)
        if self.leak != "ignore":
            h = torch.where(hide[..., None], self.mask, h)
        return Tokens(h, torch.ones(h.shape[:2], dtype=torch.bool))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


@pytest.mark.parametrize("leak", ["mix", "ignore"])
def test_the_conformance_kit_catches_hidden_content_that_leaks(leak: str) -> None:
    spec = EncoderSpec("bad.enc", lambda ds: _Mixing(leak), ("vector",), "toy",
                       faces=("embedding", "tokens", "masked_tokens"))
    with pytest.raises(ConformanceError, match="leaks"):
        check_encoder(spec, Vectors())


def test_the_conformance_kit_checks_the_face_declaration() -> None:
    for faces, match in ((("embedding", "masked_tokens"), "without 'tokens'"),
                         (("masked_tokens", "tokens"), "cannot be the first face")):
        spec = EncoderSpec("bad.enc", lambda ds: _Mixing("none"), ("vector",), "toy",
                           faces=faces)
        with pytest.raises(ConformanceError, match=match):
            check_encoder(spec, Vectors())


class _Ids(SSLDataset):
    """Token-id sequences, padded, as a dict batch (the SMILES layout)."""

    name = "test.ids"
    modality = "test.ids"

    def pretrain_set(self) -> Any:
        g = torch.Generator().manual_seed(0)
        return [torch.randint(1, 9, (int(n),), generator=g) for n in (3, 5, 7, 4, 6, 2, 7, 5)]

    def collate(self, samples: Any) -> Any:
        ids = nn.utils.rnn.pad_sequence(list(samples), batch_first=True)
        return {"input_ids": ids, "attention_mask": ids > 0}


class _IdEncoder(nn.Module):
    embed_dim = 8

    def __init__(self, leak: bool) -> None:
        super().__init__()
        self.leak = leak
        self.emb = nn.Embedding(10, 8)
        self.mask = nn.Parameter(torch.ones(8))
        self.mix = nn.Linear(8, 8)

    def masked_tokens(self, batch: dict[str, torch.Tensor], hide: torch.Tensor) -> Tokens:
        h = self.emb(batch["input_ids"])
        m = batch["attention_mask"]
        if self.leak:  # mixes every token into every state, then masks
            h = h + self.mix(h.mean(1, keepdim=True))
        h = torch.where(hide[..., None], self.mask, h)
        if not self.leak:
            h = h + self.mix((h * m[..., None]).sum(1, keepdim=True) / m.sum(1)[:, None, None])
        return Tokens(h, m)

    def tokens(self, batch: dict[str, torch.Tensor]) -> Tokens:
        return self.masked_tokens(batch, torch.zeros_like(batch["attention_mask"]))

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        t = self.tokens(batch)
        return (t.states * t.mask[..., None]).sum(1) / t.mask.sum(1, keepdim=True)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(batch)


def test_the_kit_shuffles_token_ids_at_hidden_positions_and_jepa_runs_on_padding() -> None:
    dataset = _Ids()
    ok = EncoderSpec("ok.enc", lambda ds: _IdEncoder(False), ("test.ids",), "toy",
                     faces=("embedding", "tokens", "masked_tokens"))
    check_encoder(ok, dataset)
    check_pretext(Registry(plugins=[], strict=True).get("pretext", "core.jepa"),
                  _IdEncoder(False), dataset, **SMALL)
    bad = EncoderSpec("bad.enc", lambda ds: _IdEncoder(True), ("test.ids",), "toy",
                      faces=("embedding", "tokens", "masked_tokens"))
    with pytest.raises(ConformanceError, match=r"changing batch\['input_ids'\]"):
        check_encoder(bad, dataset)


# -- Littwin et al. (NeurIPS 2024): deep linear JEPA learns predictive features first --


def linear_feature_order(
    objective: str, depth: int, lam: tuple[float, ...] = (1.0, 0.8),
    rho: tuple[float, ...] = (0.5, 1.0), init: float = 0.01, lr: float = 0.25,
    steps: int = 6000, n: int = 4096, seed: int = 0,
) -> tuple[list[float], list[int]]:
    """Train a deep linear encoder and a linear predictor by gradient descent; return each
    feature's final encoder weight and the step at which it first passes half of it.

    Data (the paper's §3 setting): feature ``i`` of a view ``x`` has variance
    ``lam_i / rho_i``; the other view is ``y_i = rho_i x_i + noise``, so
    ``cov(y_i, x_i) = lam_i`` and ``rho_i`` is the regression coefficient of ``y_i``
    on ``x_i``. The encoder is ``W = W_depth ... W_1`` (``d x d``), the predictor
    ``V``; all layers start at ``init ** (1 / depth) * I`` (balanced, small, aligned
    with the features: the paper's initialisation, under which the features
    decouple). ``objective="jepa"``: ``1/2 E||V W x - sg(W y)||^2`` (the target
    encoder is the online one with a stop-gradient); ``"mae"``: ``1/2 E||V W x -
    y||^2`` (reconstruction in input space). Full-batch gradient descent on ``n``
    samples, through their second moments (the same gradient as the per-sample
    loss). A feature's weight is the norm of its column of ``W``.
    """
    g = torch.Generator().manual_seed(seed)
    lam_t = torch.tensor(lam, dtype=torch.float64)
    rho_t = torch.tensor(rho, dtype=torch.float64)
    d = len(lam)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * (lam_t / rho_t).sqrt()
    y = rho_t * x + torch.randn(n, d, generator=g, dtype=torch.float64) * lam_t.sqrt()
    sxx, syx = x.T @ x / n, y.T @ x / n
    eye = torch.eye(d, dtype=torch.float64)
    layers = [(init ** (1 / depth) * eye).requires_grad_() for _ in range(depth + 1)]
    history = torch.empty(steps, d, dtype=torch.float64)
    for step in range(steps):
        w = layers[0]
        for layer in layers[1:depth]:
            w = layer @ w
        p = layers[depth] @ w  # predictor after encoder
        target = w.detach() if objective == "jepa" else eye
        # 1/2 E||P x - T y||^2 up to a constant: 1/2 tr(P Sxx P^T) - tr(P Sxy T^T)
        loss = 0.5 * torch.trace(p @ sxx @ p.T) - torch.trace(p @ syx.T @ target.T)
        grads = torch.autograd.grad(loss, layers)
        with torch.no_grad():
            for layer, grad in zip(layers, grads, strict=True):
                layer -= lr * grad
        history[step] = w.detach().norm(dim=0)
    final = history[-1]
    half = [int((history[:, i] >= final[i] / 2).nonzero()[0]) for i in range(d)]
    return final.tolist(), half


def test_deep_linear_jepa_learns_the_predictive_feature_first_and_mae_the_noisy_one() -> None:
    # feature 0: noisy (variance 2, regression coefficient 0.5); feature 1: predictive
    # (variance 0.8, coefficient 1); MAE is greedy in the covariance lam, JEPA in rho
    _, jepa_half = linear_feature_order("jepa", depth=3)
    mae_final, mae_half = linear_feature_order("mae", depth=3, steps=300)
    assert jepa_half[1] < jepa_half[0]
    assert mae_half[0] < mae_half[1]
    assert mae_final[0] > 0.3  # MAE does learn the noisy feature
