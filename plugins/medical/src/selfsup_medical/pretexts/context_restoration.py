"""Context restoration and inpainting pretraining of a U-Net (2D or 3D).

Chen, Bentley, Mori, Misawa, Fujiwara & Rueckert, "Self-supervised learning for
medical image analysis using image context restoration", Medical Image Analysis 58
(2019) 101539: pairs of small, non-overlapping patches of an image are swapped,
``T`` times in a row, and a network restores the original image with an L2 loss
over the whole image. Swapping keeps the image's intensity distribution, so the
network cannot spot the corruption from intensities alone and has to use the
anatomical context; the restoring network keeps the input's size, so all of a
U-Net (encoder and decoder) is pretrained for segmentation.

Two related corruptions are offered: ``mode="inpaint"`` zeroes random boxes
(context prediction; Pathak et al., "Context Encoders", CVPR 2016, compared with
context restoration for MRI and CT segmentation by Dominic et al.,
Bioengineering 10(2):207, 2023), and ``mode="dropout"`` zeroes random single
voxels (Bhattacharya, Betz, Eggert & Schlaefer, "Self-Supervised U-Net for
Segmenting Flat and Sessile Polyps", SPIE Medical Imaging 2022, arXiv:2110.08776:
"we train a U-Net to inpaint randomly dropped out pixels").

Shapes: a batch is ``[B, C, H, W]`` (``image2d``) or ``[B, C, D, H, W]``
(``volume3d``); the corruption mask is ``[B, 1, *spatial]`` (True where a voxel
was moved or dropped). Patches and boxes are squares or cubes of side
``patch_fraction`` times each spatial side (at least one voxel). Every random draw
comes from the trainer's generator, so the corruption of a step is reproducible.

The pretext trains the ``dense`` face: the restored image is
``encoder.dense(corrupted)``, which must have the input's channels, so any dense
image model can be pretrained this way (a restoration U-Net, the denoisers of
this plugin). A U-Net whose output has a segmentation dataset's classes instead
(``medical.unet`` on ``medical.synthetic_seg3d``) is pretrained through a separate
1x1 restoration head on its last decoder features, trained here and not exported:
the U-Net's final convolution stays untrained, and ``MedUNet.as_dense(n_classes)``
(used by ``medical.dice_finetune``) keeps or replaces it, while every other layer
carries the pretrained weights.

Changed in 0.2: the task calls ``encoder.dense`` instead of running the U-Net's
layers itself (the same operations, so the same numbers), and no longer returns
the U-Net's pooled features as ``"embedding"`` for the collapse diagnostics: a
dense model has no embedding face to promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    PretextTask,
    SSLDataset,
    one_of,
    open_unit,
    option,
    parse_options,
    positive_int,
)
from selfsup_medical.models import MedUNet

NAME = "medical.context_restoration"
MODES: tuple[str, ...] = ("swap", "inpaint", "dropout")
LOSS_ON: tuple[str, ...] = ("image", "corrupted")
#: candidate positions drawn per swap; the first pair that does not overlap is used
_SWAP_TRIES = 32


# -- the dense model as a restorer (shared with medical.mae3d and medical.blind_spot) ------


def restoration_head(encoder: nn.Module) -> nn.Module | None:
    """A new 1x1 conv head when ``encoder`` is a U-Net whose dense output does not have
    its input's channels (segmentation logits); None when ``dense`` restores as it is."""
    if not isinstance(encoder, MedUNet) or encoder.out_channels == encoder.in_channels:
        return None
    conv = nn.Conv2d if encoder.spatial_dims == 2 else nn.Conv3d
    return conv(encoder.features[5], encoder.in_channels, kernel_size=1)


def restore(encoder: Any, x: torch.Tensor, head: nn.Module | None) -> torch.Tensor:
    """The restoration of ``x``: ``encoder.dense(x)``, or, with a ``head`` (see
    :func:`restoration_head`), the U-Net's last decoder features through it."""
    if head is None:
        return encoder.dense(x)  # type: ignore[no-any-return]
    return unet_restore(encoder, x, head)


def unet_restore(unet: MedUNet, x: torch.Tensor, head: nn.Module | None) -> torch.Tensor:
    """MONAI ``BasicUNet``'s forward step by step (contracting path, the four
    up-sampling blocks with skips), so that the last decoder features can go through
    ``head`` instead of the U-Net's final convolution; with ``head=None`` the output
    equals ``unet.dense(x)``."""
    x0, x1, x2, x3, x4 = unet.encode(x)  # standardises x when unet.standardize
    n = unet.net
    u = n.upcat_1(n.upcat_2(n.upcat_3(n.upcat_4(x4, x3), x2), x1), x0)
    _, mu, sd = unet.standardized(x)
    return unet.destandardized((n.final_conv if head is None else head)(u), mu, sd)


# -- corruptions -------------------------------------------------------------------------


def patch_sides(spatial: tuple[int, ...], fraction: float) -> tuple[int, ...]:
    """Side of the patch along each spatial axis: ``fraction`` of the side, at least 1."""
    return tuple(max(1, round(s * fraction)) for s in spatial)


def _corners(
    n: tuple[int, ...], spatial: tuple[int, ...], sides: tuple[int, ...], g: torch.Generator
) -> torch.Tensor:
    """Uniform random corners ``[*n, dims]`` (long, on the CPU) of boxes inside the image."""
    u = torch.rand((*n, len(spatial)), generator=g, device=g.device).cpu()
    room = torch.tensor([s - p + 1 for s, p in zip(spatial, sides)], dtype=torch.float64)
    return (u.double() * room).floor().long().clamp(max=room.long() - 1)


def _box(corner: list[int], sides: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(c, c + p) for c, p in zip(corner, sides))


def swap_patches(
    x: torch.Tensor, n_swaps: int, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Chen et al. 2019's corruption: swap ``n_swaps`` pairs of patches, one pair at a time.

    The two patches of a pair do not overlap (of ``_SWAP_TRIES`` candidate pairs the
    first disjoint one is used; a swap with none is skipped, which only happens for
    patches close to half the image). Later pairs may overlap earlier ones, as in
    the paper's iterative procedure. Returns ``(corrupted, mask)``.
    """
    spatial = tuple(int(s) for s in x.shape[2:])
    sides = patch_sides(spatial, fraction)
    b = x.shape[0]
    cand = _corners((b, n_swaps, _SWAP_TRIES, 2), spatial, sides, generator)
    # Two boxes are disjoint when they are apart by at least a side along some axis.
    apart = ((cand[..., 0, :] - cand[..., 1, :]).abs() >= torch.tensor(sides)).any(-1)
    out = x.clone()
    mask = torch.zeros((b, 1, *spatial), dtype=torch.bool, device=x.device)
    for i in range(b):
        for t in range(n_swaps):
            ok = apart[i, t].nonzero()
            if len(ok) == 0:
                continue
            c1, c2 = cand[i, t, int(ok[0]), 0].tolist(), cand[i, t, int(ok[0]), 1].tolist()
            box1, box2 = (slice(None), *_box(c1, sides)), (slice(None), *_box(c2, sides))
            first = out[i][box1].clone()
            out[i][box1] = out[i][box2]
            out[i][box2] = first
            mask[i][box1] = True
            mask[i][box2] = True
    return out, mask


def inpaint_boxes(
    x: torch.Tensor, n_boxes: int, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Context prediction: zero ``n_boxes`` random boxes (they may overlap)."""
    spatial = tuple(int(s) for s in x.shape[2:])
    sides = patch_sides(spatial, fraction)
    corners = _corners((x.shape[0], n_boxes), spatial, sides, generator)
    mask = torch.zeros((x.shape[0], 1, *spatial), dtype=torch.bool, device=x.device)
    for i in range(x.shape[0]):
        for t in range(n_boxes):
            mask[i][(slice(None), *_box(corners[i, t].tolist(), sides))] = True
    return x.masked_fill(mask, 0.0), mask


def drop_voxels(
    x: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bhattacharya et al.'s corruption: zero each voxel (all channels) with prob. ``fraction``."""
    u = torch.rand((x.shape[0], 1, *x.shape[2:]), generator=generator, device=generator.device)
    mask = (u < fraction).to(x.device)
    return x.masked_fill(mask, 0.0), mask


def restoration_loss(
    restored: torch.Tensor, original: torch.Tensor, mask: torch.Tensor, loss_on: str
) -> torch.Tensor:
    """Mean squared error over the whole image (``"image"``, the papers' choice) or over
    the corrupted voxels only (``"corrupted"``; 0 when nothing was corrupted)."""
    err = (restored.float() - original.float()) ** 2
    if loss_on == "image":
        return err.mean()
    weight = mask.expand_as(err).to(err.dtype)
    return (err * weight).sum() / weight.sum().clamp_min(1.0)


# -- the pretext task ---------------------------------------------------------------------


def _patch_fraction(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 0.25
    return None if ok else "be in (0, 0.25] (two patches must fit side by side)"


@dataclass(frozen=True)
class ContextRestorationConfig:
    """Options of :func:`build` (``medical.context_restoration``).

    The defaults (10 swaps of patches an eighth of the side; 4 boxes; 25% of the
    voxels) are this package's choices for 32-128 voxel images, not values from
    the papers.
    """

    mode: str = option("swap", one_of(*MODES),
                       "swap (Chen et al.), inpaint (zeroed boxes) or dropout (zeroed voxels)")
    n_swaps: int = option(10, positive_int, "pairs of patches swapped per image (T of the paper)")
    n_boxes: int = option(4, positive_int, "boxes zeroed per image (inpaint)")
    patch_fraction: float = option(0.125, _patch_fraction,
                                   "side of a patch or box, as a fraction of each image side")
    drop_fraction: float = option(0.25, open_unit,
                                  "probability that a voxel is dropped (dropout)")
    loss_on: str = option("image", one_of(*LOSS_ON),
                          "image: MSE over the whole image (the papers); corrupted: only the "
                          "moved or zeroed voxels")


class ContextRestoration(nn.Module, PretextTask):
    """Corrupt the batch, let the U-Net restore it, MSE against the original.

    ``forward(batch, generator)``: ``batch`` ``[B, C, *spatial]``; returns
    ``{"loss", "corrupted_fraction"}``: the restoration loss and the fraction of
    voxels the corruption touched.
    """

    def __init__(
        self, encoder: nn.Module, dataset: SSLDataset, config: ContextRestorationConfig
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = restoration_head(encoder)
        self.config = config

    def corrupt(
        self, x: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(corrupted, mask)`` of a batch, drawn from ``generator``."""
        c = self.config
        if c.mode == "swap":
            return swap_patches(x, c.n_swaps, c.patch_fraction, generator)
        if c.mode == "inpaint":
            return inpaint_boxes(x, c.n_boxes, c.patch_fraction, generator)
        return drop_voxels(x, c.drop_fraction, generator)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(
                f"{NAME} expects an image batch tensor [B, C, *spatial], got {type(batch).__name__}"
            )
        corrupted, mask = self.corrupt(batch, generator)
        restored = restore(self.encoder, corrupted, self.head)
        loss = restoration_loss(restored, batch, mask, self.config.loss_on)
        return {"loss": loss, "corrupted_fraction": mask.float().mean().detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> ContextRestoration:
    """``medical.context_restoration`` factory; ``options`` are
    :class:`ContextRestorationConfig` fields."""
    config = parse_options(ContextRestorationConfig, options, NAME)
    return ContextRestoration(encoder, dataset, config)


__all__ = [
    "ContextRestoration",
    "ContextRestorationConfig",
    "build",
    "drop_voxels",
    "inpaint_boxes",
    "restoration_head",
    "restoration_loss",
    "restore",
    "swap_patches",
    "unet_restore",
]
