"""A predictor-free rotation-equivariant objective (``vision3d.equivariant``).

The issue asks for EquiCaps (Konstantinou, Chavhan, Wu & Patras, "EquiCaps:
Predictor-Free Pose-Aware Pre-Trained Capsule Networks", 2025) or, capsules being
out of reach, a predictor-free equivariant objective; this is the latter, not
EquiCaps. Like EquiCaps and SIE (Garrido, Najman & LeCun, "Self-supervised learning
of split invariant-equivariant representations", ICML 2023), the projection of the
embedding is split in two:

- an invariant part ``a`` (``n_invariant`` numbers): SimCLR's NT-Xent between the
  two views (invariance to every view nuisance);
- an equivariant part ``U`` (``n_vectors`` 3-vectors): the group acts on it
  directly, with no learned predictor. With ``R1, R2`` the rotations the two views
  applied (``dataset.augment_with_rotation``) and ``R = R2 R1^T`` the rotation from
  view 1 to view 2, ``U_1 R^T`` must match ``U_2``: an NT-Xent over the batch between
  the flattened ``U_1 R^T`` and ``U_2`` (the other clouds are the negatives, which
  keeps ``U`` from collapsing to zero).

``loss = nce_invariant + equivariant_weight * nce_equivariant``. The encoder's
embedding feeds both heads, so it must carry pose; ``vision3d.rotation_r2`` measures
how much it does. What differs from EquiCaps: no capsules and no pose matrices
routed between capsule layers; the rotation acts on 3-vectors of the projection
(a vector-neuron-like representation), and the equivariant term is contrastive
rather than a regression to the predicted pose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    NTXentLoss,
    PretextTask,
    SSLDataset,
    encoder_dim,
    mlp_head,
    non_negative,
    option,
    parse_options,
    positive,
    positive_int,
)

NAME = "vision3d.equivariant"


@dataclass(frozen=True)
class EquivariantConfig:
    """Options of ``vision3d.equivariant``."""

    n_invariant: int = option(64, positive_int, "width of the invariant projection")
    n_vectors: int = option(16, positive_int, "3-vectors of the equivariant projection")
    proj_hidden_dim: int = option(256, positive_int, "hidden width of the projection MLP")
    temperature: float = option(0.2, positive, "NT-Xent temperature of both terms")
    equivariant_weight: float = option(1.0, non_negative, "weight of the equivariant term")


class Equivariant(nn.Module, PretextTask):
    """The objective of the module. ``forward`` returns ``loss``, ``invariant``,
    ``equivariant`` and the ``embedding`` of the first view."""

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: EquivariantConfig
                 ) -> None:
        super().__init__()
        if not callable(getattr(dataset, "augment_with_rotation", None)):
            raise TypeError(f"{NAME} needs views that return their rotation "
                            f"(augment_with_rotation); dataset {dataset.name!r} has none")
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        out = config.n_invariant + 3 * config.n_vectors
        self.head = mlp_head(encoder_dim(encoder, NAME), config.proj_hidden_dim, out)
        self.nce = NTXentLoss(config.temperature)

    def _split(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = self.head(e)
        n = self.config.n_invariant
        return p[:, :n], p[:, n:].view(len(p), self.config.n_vectors, 3)

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        augment: Any = getattr(self.dataset, "augment_with_rotation")  # noqa: B009
        v1, r1 = augment(batch, generator)
        v2, r2 = augment(batch, generator)
        e1 = self.encoder.embed(v1)
        a1, u1 = self._split(e1)
        a2, u2 = self._split(self.encoder.embed(v2))
        rel = r2 @ r1.transpose(1, 2)  # view 1 -> view 2
        invariant = self.nce(a1, a2)
        equivariant = self.nce((u1 @ rel.transpose(1, 2)).flatten(1), u2.flatten(1))
        loss = invariant + self.config.equivariant_weight * equivariant
        return {"loss": loss, "invariant": invariant.detach(),
                "equivariant": equivariant.detach(), "embedding": e1.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> Equivariant:
    """``vision3d.equivariant`` factory; ``options`` are :class:`EquivariantConfig` fields."""
    return Equivariant(encoder, dataset, parse_options(EquivariantConfig, options, NAME))
