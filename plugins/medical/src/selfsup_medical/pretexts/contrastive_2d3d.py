"""Joint 2D/3D contrastive pretraining of a 3D U-Net encoder: volumes and their slices.

The idea of learning from 2D slices and 3D volumes jointly, with a slice-level
("intra") and a volume-level ("inter") objective, follows Nguyen, Nguyen, Truong,
Cao, Nguyen, Ho, Swoboda, Albarqouni, Xie & Sonntag, "Joint Self-Supervised
Image-Volume Representation Learning with Intra-Inter Contrastive Clustering",
AAAI 2023 (arXiv:2212.01893). That paper embeds every slice with a 2D CNN,
assembles the slice embeddings into a volume embedding with deformable attention,
and trains both with SwAV-style cluster agreement. Slice-level contrast inside a
volume, with positives and negatives drawn from different depths, is the local
idea of Chaitanya, Erdil, Karani & Konukoglu, "Contrastive learning of global and
local features for medical image segmentation with limited annotations",
NeurIPS 2020. The contrastive loss is SimCLR's NT-Xent (Chen et al., ICML 2020),
core's ``selfsup.api.NTXentLoss``.

The task trains the ``embedding`` face of a volume encoder (a 3D
:class:`~selfsup_medical.models.MedUNet`, ``medical.unet`` or
``medical.unet_encoder``, which is exported and later fine-tuned for segmentation),
without a second network:

- **3D, inter-volume**: two views of each volume ``[B, C, D, H, W]`` from
  ``dataset.augment``; the encoder's embeddings (``encoder.embed``: the U-Net's
  pooled deepest features)
  go through a projector, and NT-Xent pulls the two views of a volume together
  and pushes the other volumes of the batch away.
- **2D, intra-volume**: ``slices_per_volume`` (``S``) axial slices (along ``D``)
  of each volume, one drawn uniformly from each of ``S`` equal depth ranges, so
  they are spread through the volume. A 3D U-Net cannot take a 2D image, so each
  slice becomes a *pseudo-3D* slab: the slice repeated ``slab_depth`` times along
  depth (16, the smallest depth the U-Net's four poolings accept). On a
  depth-constant input the 3D convolutions act, away from the slab's two ends, as
  2D convolutions whose kernels are the 3D kernels summed over depth, so the same
  weights embed slices and volumes (cf. "Cross-Dimensional Medical Self-Supervised
  Representation Learning Based on a Pseudo-3D Transformation", which turns 2D
  images into 3D-shaped inputs for the same reason). Two views of every slab come
  from ``dataset.augment``; a second projector and NT-Xent *within each volume*
  make the two views of a slice positives and the other ``S - 1`` slices of the
  same volume (both views) negatives, so the features have to tell apart
  anatomy at different depths of one scan, not only one scan from another.

The loss is ``weight_3d * L_3d + weight_2d * mean over volumes of L_2d``; a
weight of 0 skips that branch. Views are 3D transforms: on a slab the in-plane
crop, flips, zoom and intensity changes act as 2D augmentations, while the
small rotations about in-plane axes tilt the slab (some depth mixing and zero
padding at its ends), which we accept rather than write a second set of views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    NORMS,
    VOLUME3D,
    Norm,
    NTXentLoss,
    PretextTask,
    SSLDataset,
    encoder_dim,
    gather_with_grad,
    mlp_head,
    non_negative,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
    two_views,
)

NAME = "medical.contrastive_2d3d"
#: the U-Net pools four times, so every side must be a multiple of 16
MIN_SLAB_DEPTH = 16


def stratified_slices(batch: int, depth: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``[batch, n]`` slice indices: one uniform draw from each of ``n`` equal depth ranges.

    Range ``j`` is ``[floor(j * depth / n), floor((j + 1) * depth / n))``; ``n <= depth``.
    """
    if n > depth:
        raise ValueError(
            f"{NAME}: slices_per_volume={n} is more than the volumes' {depth} slices; "
            "lower slices_per_volume"
        )
    j = torch.arange(n, dtype=torch.float64)
    lo = torch.floor(j * depth / n)
    hi = torch.floor((j + 1) * depth / n)
    u = torch.rand((batch, n), generator=generator, device=generator.device).cpu().double()
    idx = lo + torch.floor(u * (hi - lo))
    return torch.minimum(idx, hi - 1).long()


def intra_volume_ntxent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent within each volume, averaged over volumes.

    ``z1``, ``z2``: ``[B, S, P]`` projections of the two views of ``S`` slices of
    each of ``B`` volumes. For volume ``b`` this is
    ``NTXentLoss(temperature)(z1[b], z2[b])``: ``2S`` anchors, one positive each
    (the other view of the slice), ``2S - 2`` negatives (the volume's other slices).
    """
    if z1.ndim != 3 or z1.shape != z2.shape or z1.shape[1] < 2:
        raise ValueError(
            f"{NAME}: intra-volume contrast needs two [B, S, P] batches with S >= 2 slices, "
            f"got {tuple(z1.shape)} and {tuple(z2.shape)}"
        )
    b, s, _ = z1.shape
    z = F.normalize(torch.cat([z1, z2], dim=1), dim=2)  # [B, 2S, P]
    logits = z @ z.transpose(1, 2) / temperature
    eye = torch.eye(2 * s, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(eye, float("-inf"))
    idx = torch.arange(s, device=z.device)
    positives = torch.cat([idx + s, idx]).repeat(b)
    return F.cross_entropy(logits.reshape(b * 2 * s, 2 * s), positives)


def slice_slabs(x: torch.Tensor, idx: torch.Tensor, depth: int) -> torch.Tensor:
    """Pseudo-3D slabs ``[B * S, C, depth, H, W]`` of slices ``idx`` ``[B, S]`` of ``x``
    ``[B, C, D, H, W]``: each slice repeated ``depth`` times along the depth axis."""
    b, c, _, h, w = x.shape
    rows = torch.arange(b, device=x.device).repeat_interleave(idx.shape[1])
    slices = x.permute(0, 2, 1, 3, 4)[rows, idx.reshape(-1).to(x.device)]  # [B*S, C, H, W]
    return slices.unsqueeze(2).expand(-1, c, depth, h, w).contiguous()


def _slices(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 2
    return None if ok else "be an int >= 2 (a slice needs other slices as negatives)"


def _slab_depth(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 1 and x % MIN_SLAB_DEPTH == 0
    return None if ok else f"be a multiple of {MIN_SLAB_DEPTH} (the U-Net pools four times)"


@dataclass(frozen=True)
class Contrastive2D3DConfig:
    """Options of :func:`build` (``medical.contrastive_2d3d``).

    ``weight_3d`` and ``weight_2d`` may not both be 0. The projectors (one for
    volumes, one for slices) are sized for the U-Net's narrow (64-256) embeddings.
    """

    temperature: float = option(0.5, positive,
                                "NT-Xent temperature of both branches (0.5: small CPU batches)")
    slices_per_volume: int = option(4, _slices, "slices contrasted within each volume (S)")
    slab_depth: int = option(MIN_SLAB_DEPTH, _slab_depth,
                             "times a slice is repeated to form its pseudo-3D slab")
    weight_3d: float = option(1.0, non_negative, "weight of the volume loss (0: off)")
    weight_2d: float = option(1.0, non_negative, "weight of the slice loss (0: off)")
    proj_hidden_dim: int = option(256, positive_int, "hidden units of each projector")
    proj_out_dim: int = option(64, positive_int, "outputs of each projector")
    proj_layers: int = option(2, positive_int, "linear layers of each projector")
    proj_norm: Norm = option("batch", one_of(*NORMS), "norm of the projectors' hidden layers")

    def __post_init__(self) -> None:
        if self.weight_3d == 0 and self.weight_2d == 0:
            raise ValueError(f"{NAME}: weight_3d and weight_2d are both 0; nothing to train")


class Contrastive2D3D(nn.Module, PretextTask):
    """Inter-volume NT-Xent on volume views plus intra-volume NT-Xent on slice views.

    ``forward(batch, generator)``: ``batch`` ``[B, C, D, H, W]`` (``B >= 2`` when the
    3D branch is on); returns ``{"loss", "embedding", "loss_3d", "loss_2d"}``;
    ``embedding`` is ``encoder.embed`` of the first volume view ``[B, embed_dim]``,
    detached.
    """

    def __init__(
        self, encoder: nn.Module, dataset: SSLDataset, config: Contrastive2D3DConfig
    ) -> None:
        super().__init__()
        if dataset.modality != VOLUME3D:
            raise ValueError(
                f"{NAME} needs a volume3d dataset; {dataset.name!r} is {dataset.modality!r}"
            )
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        dim = encoder_dim(encoder, NAME)
        c = config
        self.projector_3d = mlp_head(
            dim, c.proj_hidden_dim, c.proj_out_dim, c.proj_layers, c.proj_norm
        )
        self.projector_2d = mlp_head(
            dim, c.proj_hidden_dim, c.proj_out_dim, c.proj_layers, c.proj_norm
        )
        self.criterion = NTXentLoss(c.temperature)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor) or batch.ndim != 5:
            shape = tuple(batch.shape) if isinstance(batch, torch.Tensor) else None
            raise TypeError(
                f"{NAME} expects a volume batch [B, C, D, H, W], got "
                f"{shape or type(batch).__name__}"
            )
        c = self.config
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        zero = h1.new_zeros(())
        loss_3d = zero
        if c.weight_3d > 0:
            if batch.shape[0] < 2:
                raise ValueError(
                    f"{NAME}: inter-volume contrast needs at least 2 volumes per batch, got "
                    f"{batch.shape[0]}; raise the batch size or set weight_3d=0"
                )
            z1 = gather_with_grad(self.projector_3d(h1))
            z2 = gather_with_grad(self.projector_3d(self.encoder.embed(v2)))
            loss_3d = self.criterion(z1, z2)
        loss_2d = zero
        if c.weight_2d > 0:
            b, s = batch.shape[0], c.slices_per_volume
            idx = stratified_slices(b, batch.shape[2], s, generator)
            slabs = slice_slabs(batch, idx, c.slab_depth)
            s1, s2 = two_views(self.dataset, slabs, generator)
            g1 = self.projector_2d(self.encoder.embed(s1)).view(b, s, -1)
            g2 = self.projector_2d(self.encoder.embed(s2)).view(b, s, -1)
            loss_2d = intra_volume_ntxent(g1, g2, c.temperature)
        loss = c.weight_3d * loss_3d + c.weight_2d * loss_2d
        return {
            "loss": loss,
            "embedding": h1.detach(),
            "loss_3d": loss_3d.detach(),
            "loss_2d": loss_2d.detach(),
        }


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> Contrastive2D3D:
    """``medical.contrastive_2d3d`` factory; ``options`` are :class:`Contrastive2D3DConfig`
    fields."""
    return Contrastive2D3D(
        encoder, dataset, parse_options(Contrastive2D3DConfig, options, NAME)
    )
