"""SimSiam: predict the other view's projection, with a stop-gradient and no target network.

Chen & He, "Exploring Simple Siamese Representation Learning", CVPR 2021
(arXiv:2011.10566). Encoder and projector ``f`` map both views to ``z1, z2``; the
predictor ``h`` maps them to ``p1, p2``; the loss is the symmetrised negative
cosine similarity with a stop-gradient on ``z`` (paper Eq. 3-4):

    L = D(p1, stopgrad(z2)) / 2 + D(p2, stopgrad(z1)) / 2,   D(p, z) = -cos(p, z)

Optionally the learned predictor is replaced by DirectPred (Tian, Chen & Ganguli,
"Understanding self-supervised learning dynamics without contrastive pairs",
ICML 2021, arXiv:2102.06810): a linear predictor that is not trained by gradient
but set directly from the eigendecomposition of the running correlation matrix of
its inputs (:class:`DirectPredPredictor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.distributed import gather_with_grad
from selfsup.objectives.projection import (
    NORMS,
    Norm,
    check_embeddings,
    encoder_dim,
    mlp_head,
    two_views,
)
from selfsup.options import (
    check_value,
    fraction,
    non_negative,
    one_of,
    option,
    parse_options,
    positive_int,
)

PredictorKind = Literal["learned", "directpred"]
PREDICTORS: tuple[str, ...] = ("learned", "directpred")


class SimSiamLoss(nn.Module):
    """Symmetrised negative cosine similarity with stop-gradient (paper Eq. 3-4).

    ``forward(p1, p2, z1, z2)`` takes the predictions ``p1, p2`` and projections
    ``z1, z2`` of views 1 and 2, all ``[N, D]``, and returns the scalar
    ``-(mean_n cos(p1, z2) + mean_n cos(p2, z1)) / 2`` in ``[-1, 1]``. ``z1, z2``
    are detached here, so no gradient reaches them through the loss.
    """

    def forward(
        self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
    ) -> torch.Tensor:
        check_embeddings("SimSiamLoss", p1, z2, min_batch=1)
        check_embeddings("SimSiamLoss", p2, z1, min_batch=1)
        # The stop-gradient is what keeps SimSiam from collapsing (paper §4.1).
        d12 = -F.cosine_similarity(p1, z2.detach(), dim=-1).mean()
        d21 = -F.cosine_similarity(p2, z1.detach(), dim=-1).mean()
        return (d12 + d21) / 2


def directpred_weight(correlation: torch.Tensor, eps: float) -> torch.Tensor:
    """DirectPred's predictor ``W_p = U diag(p) U^T`` from a correlation ``F`` ``[D, D]``.

    With ``F = U diag(s) U^T``, ``p_j = sqrt(s_j) / max_k sqrt(s_k) + eps``
    (Tian et al. 2021, "DirectPred"). Eigenvalues that round-off makes slightly
    negative count as 0. An all-zero ``F`` gives ``eps * I``.
    """
    if correlation.ndim != 2 or correlation.shape[0] != correlation.shape[1]:
        raise ValueError(
            f"directpred_weight expects a square [D, D] matrix, got {tuple(correlation.shape)}"
        )
    eigenvalues, eigenvectors = torch.linalg.eigh(correlation)
    root = eigenvalues.clamp_min(0).sqrt()
    p = root / root.max().clamp_min(torch.finfo(root.dtype).tiny) + eps
    weight: torch.Tensor = (eigenvectors * p) @ eigenvectors.T
    return weight


class DirectPredPredictor(nn.Module):
    """A linear predictor ``[B, D] -> [B, D]`` set by DirectPred instead of by gradient.

    :meth:`observe` folds a batch of predictor inputs ``f`` ``[N, D]`` into the
    running correlation ``F <- rho F + (1 - rho) mean_n f f^T`` and, every
    ``freq`` calls, sets ``weight`` to :func:`directpred_weight` of ``F``. The
    weight is a parameter with ``requires_grad=False``, so it is saved with the
    model but no optimiser changes it (it never has a gradient). It starts as the
    identity and ``F`` as zero; ``F``'s starting scale does not matter because
    ``p`` is normalised by its largest entry.
    """

    weight: nn.Parameter
    correlation: torch.Tensor
    observed: torch.Tensor

    def __init__(self, dim: int, rho: float = 0.3, eps: float = 0.1, freq: int = 1) -> None:
        super().__init__()
        check_value("DirectPredPredictor", "dim", dim, positive_int)
        check_value("DirectPredPredictor", "rho", rho, fraction)
        check_value("DirectPredPredictor", "eps", eps, non_negative)
        check_value("DirectPredPredictor", "freq", freq, positive_int)
        self.rho = float(rho)
        self.eps = float(eps)
        self.freq = freq
        self.weight = nn.Parameter(torch.eye(dim), requires_grad=False)
        self.register_buffer("correlation", torch.zeros(dim, dim))
        self.register_buffer("observed", torch.zeros((), dtype=torch.long))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.weight.T

    @torch.no_grad()
    def observe(self, f: torch.Tensor) -> None:
        """Update ``F`` with the predictor inputs ``f`` ``[N, D]`` and, when due, ``weight``."""
        if f.ndim != 2 or f.shape[1] != self.weight.shape[0]:
            raise ValueError(
                f"DirectPredPredictor.observe expects [N, {self.weight.shape[0]}] inputs, "
                f"got {tuple(f.shape)}"
            )
        f = f.detach().to(self.correlation.dtype)
        self.correlation.mul_(self.rho).add_(f.T @ f / f.shape[0], alpha=1 - self.rho)
        if int(self.observed) % self.freq == 0:
            self.weight.copy_(directpred_weight(self.correlation, self.eps))
        self.observed += 1


@dataclass(frozen=True)
class SimSiamConfig:
    """SimSiam options; ``build(..., **options)`` accepts these field names.

    Heads are the paper's ImageNet ones ("Baseline settings"): a 3-layer
    projector of width 2048 with BatchNorm on every layer, the output's without
    affine parameters; a predictor ``2048 -> 512 -> 2048`` bottleneck with
    BatchNorm and ReLU on its hidden layer.

    ``predictor="directpred"`` replaces the learned predictor by
    :class:`DirectPredPredictor` (``pred_hidden_dim`` is then unused) with the
    paper's ``directpred_rho`` 0.3, ``directpred_eps`` 0.1 and
    ``directpred_freq`` 1 (recompute the weight every step). Each recomputation
    is an eigendecomposition of a ``proj_out_dim``-square matrix; on a CPU,
    a narrower projector or a larger ``directpred_freq`` keeps it cheap.
    """

    proj_hidden_dim: int = option(2048, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(2048, positive_int, "output width of the projector")
    proj_layers: int = option(3, positive_int, "linear layers of the projector")
    pred_hidden_dim: int = option(512, positive_int, "hidden width of the predictor")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")
    predictor: PredictorKind = option(
        "learned", one_of(*PREDICTORS), "learned MLP, or DirectPred (set from input correlation)")
    directpred_rho: float = option(0.3, fraction, "DirectPred: decay of the running correlation")
    directpred_eps: float = option(0.1, non_negative, "DirectPred: eigenvalue boost")
    directpred_freq: int = option(1, positive_int, "DirectPred: steps between weight updates")



def simsiam_projector(in_dim: int, config: SimSiamConfig) -> nn.Sequential:
    """The projector: ``[B, in_dim] -> [B, proj_out_dim]``, normalised output."""
    return mlp_head(
        in_dim,
        config.proj_hidden_dim,
        config.proj_out_dim,
        config.proj_layers,
        config.proj_norm,
        last_norm=True,
    )


def simsiam_predictor(config: SimSiamConfig) -> nn.Module:
    """The predictor ``h``: ``[B, proj_out_dim] -> [B, proj_out_dim]``."""
    if config.predictor == "directpred":
        return DirectPredPredictor(
            config.proj_out_dim,
            rho=config.directpred_rho,
            eps=config.directpred_eps,
            freq=config.directpred_freq,
        )
    return mlp_head(
        config.proj_out_dim, config.pred_hidden_dim, config.proj_out_dim, 2, config.proj_norm
    )


class SimSiam(nn.Module, PretextTask):
    """The SimSiam pretext task (optionally with a DirectPred predictor).

    ``forward(batch, generator)`` returns ``{"loss", "embedding"}``;
    ``embedding`` is the encoder output of view 1 ``[B, embed_dim]``, detached.
    With DirectPred, each training-mode forward first folds both views'
    projections (gathered over ranks, so every rank computes the same weight)
    into the predictor's correlation, then predicts with the updated weight, as
    the paper's ``freq=1`` setting does.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: SimSiamConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = simsiam_projector(encoder_dim(encoder, "simsiam"), config)
        self.predictor = simsiam_predictor(config)
        self.criterion = SimSiamLoss()

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        z1 = self.projector(h1)
        z2 = self.projector(self.encoder.embed(v2))
        # Targets take no gradient, so they are gathered without building a graph.
        t1 = gather_with_grad(z1.detach())
        t2 = gather_with_grad(z2.detach())
        if self.training and isinstance(self.predictor, DirectPredPredictor):
            self.predictor.observe(torch.cat([t1, t2]))
        p1 = gather_with_grad(self.predictor(z1))
        p2 = gather_with_grad(self.predictor(z2))
        return {"loss": self.criterion(p1, p2, t1, t2), "embedding": h1.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> SimSiam:
    """``core.simsiam`` factory; ``options`` are :class:`SimSiamConfig` fields."""
    return SimSiam(encoder, dataset, parse_options(SimSiamConfig, options, "core.simsiam"))
