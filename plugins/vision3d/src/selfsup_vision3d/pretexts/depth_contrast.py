"""Image-depth style pretraining without CLIP (``vision3d.depth_contrast``).

After CLIP2Point (Huang, Xie, Shi, Zhang & Yang, "CLIP2Point: Transfer CLIP to
Point Cloud Classification with Image-Depth Pre-training", ICCV 2023,
arXiv:2210.01055). The paper pretrains a depth-map encoder, initialised from CLIP's
image encoder, on ShapeNet renderings with two contrastive terms: *inter-modality*,
the depth map of a view against the frozen CLIP embedding of the RGB image rendered
from the same view; *intra-modality*, the depth maps of one view rendered at two
camera distances against each other.

Here, for each cloud of the batch, one view direction uniform on SO(3) is drawn from
the trainer's generator and the cloud is rendered to a 64 x 64 depth map twice
(:func:`~selfsup_vision3d.geometry.render_depth`, a pure-torch z-buffer): at
distance 1 (the cloud fills the image) and "farther" (the cloud scaled by a factor
in ``[far_min, far_max]``). A small CNN (:class:`~selfsup_vision3d.encoders.DepthCNN`)
embeds the depth maps; the point encoder embeds a point view of the cloud
(``dataset.augment``). With projection heads on both and SimCLR's NT-Xent:

``loss = nce(points, near depth) + intra_weight * nce(near depth, far depth)``.

What differs from the paper, exactly: no CLIP weights ship offline, so the depth
encoder is a small CNN trained from scratch, not CLIP's ViT; there are no RGB
renderings, so the inter-modality partner of a depth map is the *point encoder's*
embedding of the same cloud (trained, where CLIP's image branch is frozen), which
makes this a point-depth cross-modal objective (the point encoder is what gets
exported and evaluated); renderings are orthographic z-buffers of the points with a
3 x 3 splat, not meshes rendered by a graphics pipeline; one view per cloud per step
(the paper uses 10 views per object); the Dual-Path Adapter and zero-shot transfer
are not built.
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

from ..encoders import DepthCNN
from ..geometry import random_rotations, render_depth

NAME = "vision3d.depth_contrast"


def _scale(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1
    return None if ok else "be in (0, 1]"


@dataclass(frozen=True)
class DepthContrastConfig:
    """Options of ``vision3d.depth_contrast``."""

    image_size: int = option(64, positive_int, "depth map side, pixels")
    depth_dim: int = option(128, positive_int, "width of the depth CNN's embedding")
    far_min: float = option(0.6, _scale, "smallest scale of the 'farther' rendering")
    far_max: float = option(0.85, _scale, "largest scale of the 'farther' rendering")
    proj_hidden_dim: int = option(256, positive_int, "hidden width of the projection heads")
    proj_out_dim: int = option(128, positive_int, "output width of the projection heads")
    temperature: float = option(0.1, positive, "NT-Xent temperature")
    intra_weight: float = option(1.0, non_negative, "weight of the depth-depth term")

    def __post_init__(self) -> None:
        if self.far_min > self.far_max:
            raise ValueError(f"{NAME}: far_min={self.far_min} exceeds far_max={self.far_max}")


class DepthContrast(nn.Module, PretextTask):
    """The objective of the module. ``forward`` returns ``loss``, ``inter``, ``intra``
    and the point encoder's ``embedding`` of the point view."""

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: DepthContrastConfig
                 ) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        c = config
        self.depth = DepthCNN(c.depth_dim)
        self.point_head = mlp_head(encoder_dim(encoder, NAME), c.proj_hidden_dim, c.proj_out_dim)
        self.depth_head = mlp_head(c.depth_dim, c.proj_hidden_dim, c.proj_out_dim)
        self.nce = NTXentLoss(c.temperature)

    def render(self, batch: torch.Tensor, generator: torch.Generator
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Near and far depth maps ``[B, 1, S, S]`` of one random view per cloud."""
        b = batch.shape[0]
        rot = random_rotations(b, generator, "so3", batch.device)[:, None]
        u = torch.rand(b, 1, 1, generator=generator, device=generator.device).to(batch.device)
        far = self.config.far_min + (self.config.far_max - self.config.far_min) * u
        size = self.config.image_size
        near_img = render_depth(batch, rot, size)
        far_img = render_depth(batch * far, rot, size)
        return near_img, far_img

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        near, far = self.render(batch.float(), generator)
        view = self.dataset.augment(batch, generator)
        e = self.encoder.embed(view)
        z_points = self.point_head(e)
        z_near = self.depth_head(self.depth(near))
        z_far = self.depth_head(self.depth(far))
        inter = self.nce(z_points, z_near)
        intra = self.nce(z_near, z_far)
        loss = inter + self.config.intra_weight * intra
        return {"loss": loss, "inter": inter.detach(), "intra": intra.detach(),
                "embedding": e.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> DepthContrast:
    """``vision3d.depth_contrast`` factory; ``options`` are :class:`DepthContrastConfig`."""
    return DepthContrast(encoder, dataset, parse_options(DepthContrastConfig, options, NAME))
