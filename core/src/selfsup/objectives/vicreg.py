"""VICReg: variance-invariance-covariance regularisation of two views' embeddings.

Bardes, Ponce & LeCun, "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning", ICLR 2022 (arXiv:2105.04906). For projections
``Z, Z'`` ``[N, D]`` of the two views (paper Eq. 1-6):

    L = lambda * s(Z, Z') + mu * (v(Z) + v(Z')) + nu * (c(Z) + c(Z'))

- invariance ``s``: mean squared distance between the two views' embeddings;
- variance ``v(Z) = 1/D sum_j max(0, gamma - sqrt(Var(z_j) + eps))``: a hinge that
  keeps every feature's standard deviation over the batch at least ``gamma``;
- covariance ``c(Z) = 1/D sum_{i != j} Cov(Z)_ij^2``: decorrelates the features.

Every term is symmetric in the two views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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
    non_negative,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)


class VICRegLoss(nn.Module):
    """VICReg loss of two projection batches ``[N, D]``, following the paper's Algorithm 1.

    Variances and covariances are the unbiased (``N - 1``) estimates, as in the
    paper. The paper adds the two views' variance terms; the official repository
    averages them (half the weight); this follows the paper. ``forward`` returns
    the scalar loss; :meth:`terms` also the unweighted ``invariance``,
    ``variance`` (both views summed) and ``covariance`` (both views summed).
    A collapsed batch (constant embeddings) gives ``variance = 2 * (gamma -
    sqrt(eps))``, its maximum.
    """

    def __init__(
        self,
        invariance_weight: float = 25.0,
        variance_weight: float = 25.0,
        covariance_weight: float = 1.0,
        variance_target: float = 1.0,
        variance_eps: float = 1e-4,
    ) -> None:
        super().__init__()
        for name, value in (
            ("invariance_weight", invariance_weight),
            ("variance_weight", variance_weight),
            ("covariance_weight", covariance_weight),
        ):
            check_value("VICRegLoss", name, value, non_negative)
        check_value("VICRegLoss", "variance_target", variance_target, positive)
        check_value("VICRegLoss", "variance_eps", variance_eps, positive)
        self.invariance_weight = float(invariance_weight)
        self.variance_weight = float(variance_weight)
        self.covariance_weight = float(covariance_weight)
        self.variance_target = float(variance_target)
        self.variance_eps = float(variance_eps)

    def terms(self, z1: torch.Tensor, z2: torch.Tensor) -> dict[str, torch.Tensor]:
        # N >= 2: the unbiased variance of one sample is undefined.
        check_embeddings("VICRegLoss", z1, z2, min_batch=2)
        invariance = F.mse_loss(z1, z2)
        variance = self._variance(z1) + self._variance(z2)
        covariance = self._covariance(z1) + self._covariance(z2)
        loss = (
            self.invariance_weight * invariance
            + self.variance_weight * variance
            + self.covariance_weight * covariance
        )
        return {
            "loss": loss,
            "invariance": invariance,
            "variance": variance,
            "covariance": covariance,
        }

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        return self.terms(z1, z2)["loss"]

    def _variance(self, z: torch.Tensor) -> torch.Tensor:
        std = torch.sqrt(z.var(dim=0) + self.variance_eps)
        return F.relu(self.variance_target - std).mean()

    def _covariance(self, z: torch.Tensor) -> torch.Tensor:
        n, d = z.shape
        centred = z - z.mean(dim=0)
        cov = centred.T @ centred / (n - 1)
        off_diagonal = cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()
        return off_diagonal / d


@dataclass(frozen=True)
class VICRegConfig:
    """VICReg options; ``build(..., **options)`` accepts these field names.

    The weights are the paper's ImageNet ones (lambda = mu = 25, nu = 1), as are
    ``variance_target`` (gamma = 1) and ``variance_eps`` (1e-4). The projector
    has the paper's shape, three linear layers with BatchNorm and ReLU between
    them, but 2048 units instead of 8192 so that it fits a CPU run; pass
    ``proj_hidden_dim=8192, proj_out_dim=8192`` on a GPU.
    """

    invariance_weight: float = option(
        25.0, non_negative, "lambda: weight of the invariance (MSE) term")
    variance_weight: float = option(25.0, non_negative, "mu: weight of the variance hinge")
    covariance_weight: float = option(1.0, non_negative, "nu: weight of the covariance term")
    variance_target: float = option(1.0, positive, "gamma: target std of each dimension")
    variance_eps: float = option(1e-4, positive, "epsilon inside the std")
    proj_hidden_dim: int = option(2048, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(2048, positive_int, "output width of the projector")
    proj_layers: int = option(3, positive_int, "linear layers of the projector")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")



def vicreg_projector(in_dim: int, config: VICRegConfig) -> nn.Sequential:
    """The expander ``h``: ``[B, in_dim] -> [B, proj_out_dim]``."""
    return mlp_head(
        in_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_norm
    )


class VICReg(nn.Module, PretextTask):
    """The VICReg pretext task: encoder, expander, :class:`VICRegLoss`.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "invariance",
    "variance", "covariance"}``; ``embedding`` is the encoder output of view 1
    ``[B, embed_dim]``, detached. Under DDP the projections are gathered, so the
    variance and covariance terms use the global batch.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: VICRegConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = vicreg_projector(encoder_dim(encoder, "vicreg"), config)
        self.criterion = VICRegLoss(
            config.invariance_weight,
            config.variance_weight,
            config.covariance_weight,
            config.variance_target,
            config.variance_eps,
        )

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        z1 = gather_with_grad(self.projector(h1))
        z2 = gather_with_grad(self.projector(self.encoder.embed(v2)))
        terms = self.criterion.terms(z1, z2)
        out = {name: value.detach() for name, value in terms.items()}
        out["loss"] = terms["loss"]
        out["embedding"] = h1.detach()
        return out


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> VICReg:
    """``core.vicreg`` factory; ``options`` are :class:`VICRegConfig` fields."""
    return VICReg(encoder, dataset, parse_options(VICRegConfig, options, "core.vicreg"))
