"""BYOL: predict a slow-moving target network's projection of the other view.

Grill, Strub, Altché, Tallec, Richemond et al., "Bootstrap Your Own Latent: A New
Approach to Self-Supervised Learning", NeurIPS 2020 (arXiv:2006.07733). The online
network (encoder, projector, predictor) regresses the target network's projection
of the other view with the normalised MSE ``2 - 2 cos(p, z')`` (paper Eq. 2),
symmetrised over the two views. The target network (encoder and projector) gets
no gradient; after each optimiser step it moves towards the online network by an
exponential moving average whose rate ``tau`` rises from ``tau_base`` to 1 on a
cosine schedule (paper §3.1 and §3.3).
"""

from __future__ import annotations

import copy
import math
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
    fraction,
    one_of,
    option,
    parse_options,
    positive_int,
)


class BYOLLoss(nn.Module):
    """Symmetric normalised MSE of BYOL (paper Eq. 2 and the sum ``L + L~``).

    ``forward(p1, p2, z1, z2)`` takes the online predictions ``p1, p2`` and the
    target projections ``z1, z2`` of views 1 and 2, all ``[N, D]``, and returns
    ``mean_n(2 - 2 cos(p1, z2)) + mean_n(2 - 2 cos(p2, z1))``, a scalar in ``[0, 8]``.
    The targets are detached: no gradient reaches them even if the caller
    computed them with grad enabled.
    """

    def forward(
        self, p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
    ) -> torch.Tensor:
        check_embeddings("BYOLLoss", p1, z2, min_batch=1)
        check_embeddings("BYOLLoss", p2, z1, min_batch=1)
        return _normalised_mse(p1, z2) + _normalised_mse(p2, z1)


def _normalised_mse(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    # ||p/|p| - z/|z|||^2 = 2 - 2 cos(p, z)
    return (2 - 2 * F.cosine_similarity(p, z.detach(), dim=-1)).mean()


def target_momentum(step: int, total_steps: int, tau_base: float) -> float:
    """``tau_k = 1 - (1 - tau_base) (cos(pi k / K) + 1) / 2`` (paper §3.3).

    ``tau_base`` at ``k = 0``, 1 at ``k = K``; ``step`` is clamped to ``[0, K]``.
    """
    if total_steps < 1:
        raise ValueError(
            f"BYOL: total_steps must be >= 1 for the target momentum schedule, got {total_steps}"
        )
    k = min(max(step, 0), total_steps)
    return 1 - (1 - tau_base) * (math.cos(math.pi * k / total_steps) + 1) / 2


@dataclass(frozen=True)
class BYOLConfig:
    """BYOL options; ``build(..., **options)`` accepts these field names.

    All are the paper's (§3.3): ``tau_base`` 0.996; projector and predictor
    ``Linear(4096) -> BatchNorm -> ReLU -> Linear(256)``. ``proj_norm`` applies to
    both heads.
    """

    tau_base: float = option(
        0.996, fraction, "EMA momentum of the target network at step 0 (cosine to 1)")
    proj_hidden_dim: int = option(4096, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(256, positive_int, "output width of the projector")
    proj_layers: int = option(2, positive_int, "linear layers of the projector")
    pred_hidden_dim: int = option(4096, positive_int, "hidden width of the predictor")
    pred_layers: int = option(2, positive_int, "linear layers of the predictor")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")



def byol_projector(in_dim: int, config: BYOLConfig) -> nn.Sequential:
    """The projector ``g``: ``[B, in_dim] -> [B, proj_out_dim]``."""
    return mlp_head(
        in_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_norm
    )


def byol_predictor(config: BYOLConfig) -> nn.Sequential:
    """The predictor ``q``: ``[B, proj_out_dim] -> [B, proj_out_dim]``."""
    return mlp_head(
        config.proj_out_dim,
        config.pred_hidden_dim,
        config.proj_out_dim,
        config.pred_layers,
        config.proj_norm,
    )


class BYOL(nn.Module, PretextTask):
    """The BYOL pretext task with an EMA target network.

    ``target_encoder`` and ``target_projector`` are copies of the online ones made
    at construction, with ``requires_grad=False``; only their parameters follow
    the EMA, their BatchNorm statistics come from their own forward passes (the
    target runs in the same train/eval mode as the online network).
    ``forward(batch, generator)`` returns ``{"loss", "embedding", "tau"}``;
    ``embedding`` is the online encoder output of view 1 ``[B, embed_dim]``,
    detached, and ``tau`` the momentum of the last EMA update.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: BYOLConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = byol_projector(encoder_dim(encoder, "byol"), config)
        self.predictor = byol_predictor(config)
        self.target_encoder: Any = copy.deepcopy(encoder)
        self.target_projector = copy.deepcopy(self.projector)
        for module in (self.target_encoder, self.target_projector):
            module.requires_grad_(False)
        self.criterion = BYOLLoss()
        self.tau = config.tau_base

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        p1 = gather_with_grad(self.predictor(self.projector(h1)))
        p2 = gather_with_grad(self.predictor(self.projector(self.encoder.embed(v2))))
        with torch.no_grad():
            z1 = gather_with_grad(self.target_projector(self.target_encoder.embed(v1)))
            z2 = gather_with_grad(self.target_projector(self.target_encoder.embed(v2)))
        loss = self.criterion(p1, p2, z1, z2)
        return {"loss": loss, "embedding": h1.detach(), "tau": loss.new_tensor(self.tau)}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """EMA update of the target after optimiser step ``step`` of ``total_steps``.

        The trainer passes ``step`` as the number of steps completed (1 to
        ``total_steps``); the update uses ``tau_step`` of :func:`target_momentum`
        (paper Eq. 1 and §3.3), which reaches 1 (a frozen target) at the last step.
        """
        self.tau = target_momentum(step, total_steps, self.config.tau_base)
        self.update_target(self.tau)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``target <- tau * target + (1 - tau) * online`` for every parameter."""
        pairs = (
            (self.target_encoder, self.encoder),
            (self.target_projector, self.projector),
        )
        for target, online in pairs:
            target_params = list(target.parameters())
            online_params = list(online.parameters())
            if len(target_params) != len(online_params):
                raise RuntimeError(
                    "BYOL: the online network's parameters changed after the target "
                    "was copied; build the pretext task after modifying the encoder"
                )
            for t, o in zip(target_params, online_params, strict=True):
                t.lerp_(o.detach(), 1 - tau)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> BYOL:
    """``core.byol`` factory; ``options`` are :class:`BYOLConfig` fields."""
    return BYOL(encoder, dataset, parse_options(BYOLConfig, options, "core.byol"))
