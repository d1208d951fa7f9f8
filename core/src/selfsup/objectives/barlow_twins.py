"""Barlow Twins: make the cross-correlation of two views' embeddings the identity.

Zbontar, Jing, Misra, LeCun & Deny, "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML 2021 (arXiv:2103.03230). With ``C`` the ``[D, D]``
cross-correlation of the batch-standardised projections of the two views,

    L = sum_i (1 - C_ii)^2 + lambda * sum_{i != j} C_ij^2

the first (invariance) term makes each feature agree across views and the second
(redundancy reduction) term decorrelates the features. ``C`` of the swapped views is
``C^T``, so the loss is symmetric.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
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
    non_negative,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss (paper Eq. 1-2) of two projection batches ``[N, D]``.

    Each feature is standardised over the batch with its biased variance, as the
    affine-free BatchNorm of the paper's Algorithm 1 does (``eps`` as in
    BatchNorm), then ``C = z1n^T z2n / N``. ``forward`` returns the scalar loss,
    :meth:`terms` also the unweighted ``on_diagonal`` and ``off_diagonal`` sums.
    A collapsed batch (a constant feature) standardises to 0, so ``C_ii = 0`` and
    that feature contributes the maximal on-diagonal term 1.
    """

    def __init__(self, off_diagonal_weight: float = 5e-3, eps: float = 1e-5) -> None:
        super().__init__()
        check_value("BarlowTwinsLoss", "off_diagonal_weight", off_diagonal_weight, non_negative)
        check_value("BarlowTwinsLoss", "eps", eps, positive)
        self.off_diagonal_weight = float(off_diagonal_weight)
        self.eps = float(eps)

    def cross_correlation(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """``C`` ``[D, D]``: correlations between feature i of view 1 and j of view 2."""
        check_embeddings("BarlowTwinsLoss", z1, z2, min_batch=2)
        return self._standardise(z1).T @ self._standardise(z2) / z1.shape[0]

    def terms(self, z1: torch.Tensor, z2: torch.Tensor) -> dict[str, torch.Tensor]:
        c = self.cross_correlation(z1, z2)
        diagonal = torch.diagonal(c)
        on_diagonal = (1 - diagonal).pow(2).sum()
        off_diagonal = c.pow(2).sum() - diagonal.pow(2).sum()
        loss = on_diagonal + self.off_diagonal_weight * off_diagonal
        return {"loss": loss, "on_diagonal": on_diagonal, "off_diagonal": off_diagonal}

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return self.terms(z1, z2)["loss"]

    def _standardise(self, z: torch.Tensor) -> torch.Tensor:
        centred = z - z.mean(dim=0)
        return centred / torch.sqrt(centred.pow(2).mean(dim=0) + self.eps)


@dataclass(frozen=True)
class BarlowTwinsConfig:
    """Barlow Twins options; ``build(..., **options)`` accepts these field names.

    ``off_diagonal_weight`` is the paper's lambda, 5e-3 (0.0051 in the official
    code), tuned there for ``D = 8192``; the paper reports little sensitivity to
    it. The default keeps it at narrower projectors too: the off-diagonal sum has
    ``D(D - 1)`` terms against ``D`` on the diagonal, so a smaller ``D`` only
    weakens the decorrelation term relative to the invariance term. To keep the
    two balanced at any width, pass ``off_diagonal_weight=1 / proj_out_dim``
    (Tsai et al. 2021, "A Note on Connecting Barlow Twins with Negative-Sample-Free
    Contrastive Learning").

    The projector has the paper's shape, three linear layers with BatchNorm and
    ReLU between them, but 2048 units instead of 8192 so that it fits a CPU run.
    The paper finds the method benefits from very wide outputs: pass
    ``proj_hidden_dim=8192, proj_out_dim=8192`` on a GPU.
    """

    off_diagonal_weight: float = option(
        5e-3, non_negative, "lambda: weight of the redundancy-reduction term")
    proj_hidden_dim: int = option(2048, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(2048, positive_int, "output width of the projector")
    proj_layers: int = option(3, positive_int, "linear layers of the projector")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")



def barlow_twins_projector(in_dim: int, config: BarlowTwinsConfig) -> nn.Sequential:
    """The projector ``[B, in_dim] -> [B, proj_out_dim]`` (no norm after the last layer;
    the loss standardises its output)."""
    return mlp_head(
        in_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_norm
    )


class BarlowTwins(nn.Module, PretextTask):
    """The Barlow Twins pretext task: encoder, projector, :class:`BarlowTwinsLoss`.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "on_diagonal",
    "off_diagonal"}``; ``embedding`` is the encoder output of view 1
    ``[B, embed_dim]``, detached. Under DDP the projections are gathered, so the
    standardisation and ``C`` use the global batch.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: BarlowTwinsConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = barlow_twins_projector(encoder_dim(encoder, "barlow_twins"), config)
        self.criterion = BarlowTwinsLoss(config.off_diagonal_weight)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        z1 = gather_with_grad(self.projector(h1))
        z2 = gather_with_grad(self.projector(self.encoder.embed(v2)))
        terms = self.criterion.terms(z1, z2)
        return {
            "loss": terms["loss"],
            "embedding": h1.detach(),
            "on_diagonal": terms["on_diagonal"].detach(),
            "off_diagonal": terms["off_diagonal"].detach(),
        }


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> BarlowTwins:
    """``core.barlow_twins`` factory; ``options`` are :class:`BarlowTwinsConfig` fields."""
    return BarlowTwins(
        encoder, dataset, parse_options(BarlowTwinsConfig, options, "core.barlow_twins")
    )
