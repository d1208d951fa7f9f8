"""Masked-autoencoder pretraining of a convolutional U-Net on volumes (and 2D images).

He, Chen, Xie, Li, Dollár & Girshick, "Masked Autoencoders Are Scalable Vision
Learners", CVPR 2022: split the image into non-overlapping patches, hide a large
random subset (75%), reconstruct the hidden patches, and compute the mean squared
error on the masked patches only (optionally against per-patch normalised
targets, the paper's ``norm_pix_loss``). For 3D medical images: Chen, Agarwal,
Aggarwal, Safta, Balan & Brown, "Masked Image Modeling Advances 3D Medical Image
Analysis", WACV 2023 (arXiv:2204.11716), who found a high masking ratio with small
patches and raw-voxel targets to work well on CT and MRI, and Zhou, Liu, Bae, He,
Samaras & Prasanna, "Self Pre-training with Masked Autoencoders for Medical Image
Classification and Segmentation", ISBI 2023 (arXiv:2203.05573), who pretrain on the
target dataset itself, as a selfsup run does.

Those papers use Vision Transformers, which drop the masked tokens. A convolutional
U-Net cannot drop voxels, so, as in the convolutional masked-image-modelling
variants (SimMIM's mask-by-replacement; Xie et al., CVPR 2022), masked patches are
replaced by zeros and the model's ``dense`` face (``medical.unet``,
``medical.unet_encoder``; see :mod:`selfsup_medical.pretexts.context_restoration`
for a segmentation U-Net, whose output has classes, not the input's channels)
predicts every voxel; only the masked patches enter the loss.

Shapes: a batch is ``[B, C, D, H, W]`` (``volume3d``) or ``[B, C, H, W]``
(``image2d``); patches are cubes (squares) of side ``patch_size``, which must
divide every spatial side; the patch mask is ``[B, N]`` (N patches, True =
masked) and the voxel mask ``[B, 1, *spatial]``. Exactly
``round(mask_ratio * N)`` patches are masked per sample (MAE's random shuffle),
drawn from the trainer's generator.

Changed in 0.2: the task calls ``encoder.dense`` (the same numbers as before) and
no longer returns the U-Net's pooled features as ``"embedding"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    PretextTask,
    SSLDataset,
    boolean,
    open_unit,
    option,
    parse_options,
    positive_int,
)
from selfsup_medical.pretexts.context_restoration import restoration_head, restore

NAME = "medical.mae3d"


def check_patch_grid(spatial: tuple[int, ...], patch_size: int) -> tuple[int, ...]:
    """The patch grid ``spatial // patch_size``, or a ValueError naming the side that does
    not divide."""
    for axis, s in enumerate(spatial):
        if s % patch_size:
            raise ValueError(
                f"{NAME}: spatial side {s} (axis {axis} of {spatial}) is not divisible by "
                f"patch_size={patch_size}; pick a patch_size that divides every side"
            )
    return tuple(s // patch_size for s in spatial)


def random_patch_mask(
    batch: int, grid: tuple[int, ...], ratio: float, generator: torch.Generator
) -> torch.Tensor:
    """``[B, N]`` bool, exactly ``n_masked(N, ratio)`` True per row, uniformly at random."""
    n = math.prod(grid)
    k = n_masked(n, ratio)
    noise = torch.rand((batch, n), generator=generator, device=generator.device)
    ids = noise.argsort(dim=1)[:, :k]
    return torch.zeros((batch, n), dtype=torch.bool, device=noise.device).scatter(1, ids, True)


def n_masked(n_patches: int, ratio: float) -> int:
    """How many of ``n_patches`` are masked: ``round(ratio * n)``, at least 1 and at most
    ``n - 1`` so that there is always something to predict and something to see."""
    return min(max(round(ratio * n_patches), 1), n_patches - 1)


def voxel_mask(patch_mask: torch.Tensor, grid: tuple[int, ...], patch_size: int) -> torch.Tensor:
    """Expand a ``[B, N]`` patch mask to ``[B, 1, *spatial]``."""
    m = patch_mask.view(patch_mask.shape[0], 1, *grid)
    for axis in range(2, 2 + len(grid)):
        m = m.repeat_interleave(patch_size, dim=axis)
    return m


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, *spatial]`` -> ``[B, N, C * patch_size**dims]``, patches in row-major order
    of the grid (the order of :func:`voxel_mask`)."""
    b, c, *spatial = x.shape
    dims = len(spatial)
    grid = [s // patch_size for s in spatial]
    shape = [b, c]
    for g in grid:
        shape += [g, patch_size]
    x = x.reshape(shape)
    grid_axes = [2 + 2 * i for i in range(dims)]
    inner_axes = [3 + 2 * i for i in range(dims)]
    x = x.permute(0, *grid_axes, 1, *inner_axes)
    return x.reshape(b, math.prod(grid), c * patch_size**dims)


def masked_patch_mse(
    pred: torch.Tensor,
    target: torch.Tensor,
    patch_mask: torch.Tensor,
    patch_size: int,
    norm_pix_loss: bool = False,
) -> torch.Tensor:
    """MAE's loss: per-patch mean squared error, averaged over the masked patches.

    With ``norm_pix_loss`` each target patch is standardised by its own mean and
    variance (over its voxels and channels; ``+1e-6`` in the variance, as MAE).
    """
    p = patchify(pred.float(), patch_size)
    t = patchify(target.float(), patch_size)
    if norm_pix_loss:
        mean = t.mean(dim=-1, keepdim=True)
        var = t.var(dim=-1, keepdim=True, unbiased=False)
        t = (t - mean) / (var + 1e-6).sqrt()
    per_patch = ((p - t) ** 2).mean(dim=-1)
    m = patch_mask.to(per_patch.dtype)
    return (per_patch * m).sum() / m.sum().clamp_min(1.0)


@dataclass(frozen=True)
class MAE3DConfig:
    """Options of :func:`build` (``medical.mae3d``)."""

    patch_size: int = option(4, positive_int,
                             "side of the cubic (square) patches in voxels; a 32^3 volume has "
                             "512 patches of 4 (Chen et al. preferred small patches)")
    mask_ratio: float = option(0.75, open_unit, "fraction of the patches masked (MAE's 0.75)")
    norm_pix_loss: bool = option(False, boolean,
                                 "standardise each target patch (MAE's option); off, so the "
                                 "U-Net's output stays an image")


class MaskedAutoencoder(nn.Module, PretextTask):
    """Zero random patches, reconstruct with the U-Net, MSE on the masked patches.

    ``forward(batch, generator)``: ``batch`` ``[B, C, *spatial]``; returns
    ``{"loss", "mask_ratio"}`` (the fraction actually masked).
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: MAE3DConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = restoration_head(encoder)
        self.config = config

    def mask(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(patch_mask [B, N], voxel_mask [B, 1, *spatial])`` for a batch."""
        grid = check_patch_grid(tuple(int(s) for s in x.shape[2:]), self.config.patch_size)
        pm = random_patch_mask(x.shape[0], grid, self.config.mask_ratio, generator).to(x.device)
        return pm, voxel_mask(pm, grid, self.config.patch_size)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"{NAME} expects an image batch tensor [B, C, *spatial], got {type(batch).__name__}"
            )
        patch_mask, vmask = self.mask(batch, generator)
        pred = restore(self.encoder, batch.masked_fill(vmask, 0.0), self.head)
        c = self.config
        loss = masked_patch_mse(pred, batch, patch_mask, c.patch_size, c.norm_pix_loss)
        return {"loss": loss, "mask_ratio": patch_mask.float().mean().detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> MaskedAutoencoder:
    """``medical.mae3d`` factory; ``options`` are :class:`MAE3DConfig` fields."""
    return MaskedAutoencoder(encoder, dataset, parse_options(MAE3DConfig, options, NAME))
