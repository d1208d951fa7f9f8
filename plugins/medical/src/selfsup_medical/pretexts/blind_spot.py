"""Blind-spot denoising: Noise2Self grid masking and Noise2Void pixel replacement.

Batson & Royer, "Noise2Self: Blind Denoising by Self-Supervision", ICML 2019, and
Krull, Buchholz & Jug, "Noise2Void - Learning Denoising from Single Noisy Images",
CVPR 2019. Both train a denoiser ``f`` on noisy images ``y`` alone: if the noise is
independent from pixel to pixel (given the clean image) and zero-mean, a function
that does not look at ``y_p`` when predicting pixel ``p`` (a *J-invariant*
function) minimises ``E ||f(y) - y||^2`` exactly where it minimises the supervised
``E ||f(y) - x||^2`` plus the noise variance (Noise2Self, Prop. 1). Training makes
``f`` J-invariant on a set ``J`` of pixels by hiding them from the input and
scoring only them:

- ``masking="noise2self"``: ``J`` is one phase of a ``grid x grid`` lattice (the
  pixels whose coordinates are all congruent to a random offset modulo ``grid``;
  ``1 / grid^d`` of the pixels), as in Noise2Self's ``Masker``. The hidden pixels
  are replaced (``replacement``) by ``"interpolate"``: the weighted mean of their
  ``3^d - 1`` neighbours, the centre excluded (Noise2Self's kernel, weight
  ``1 / |offset|_1``: 1 for face neighbours and 1/2 for the diagonal ones in 2D),
  or ``"zero"``. With ``grid >= 2`` no neighbour of a hidden pixel is hidden.
- ``masking="noise2void"``: ``J`` is one random pixel in every ``grid^d`` box
  (Noise2Void's stratified sampling; the paper's 64 pixels per 64 x 64 patch is
  ``grid=8``), each replaced by the value of a uniformly drawn *other* pixel of its
  ``(2 radius + 1)^d`` neighbourhood (Noise2Void's 5 x 5 window for ``radius=2``),
  the same neighbour for every channel. An offset that leaves the image is mirrored
  (``p - o`` instead of ``p + o``), which can never land on ``p`` itself.

The loss is the mean squared error over the hidden pixels only (all channels);
every other output is ignored. Masks, phases and neighbours are drawn per sample
from the trainer's generator.

Shapes: a batch is ``[B, C, H, W]`` (image2d) or ``[B, C, D, H, W]`` (volume3d);
the model's ``dense`` face (``medical.unet``) must return the same shape (as many
output channels as input channels: a restoration U-Net; a segmentation U-Net is
trained through a separate restoration head, as in context restoration).

Inference is the plain model on the whole, unmasked image, as Noise2Void does;
Noise2Self (§4) reports that this matches the J-invariant average over all grid
phases in practice, at ``grid^d`` times less cost.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    IMAGE2D,
    VOLUME3D,
    PretextTask,
    SSLDataset,
    one_of,
    option,
    parse_options,
    positive_int,
)
from selfsup_medical.pretexts.context_restoration import restoration_head, restore

NAME = "medical.blind_spot"
MASKINGS = ("noise2self", "noise2void")
REPLACEMENTS = {"noise2self": ("interpolate", "zero"), "noise2void": ("neighbour",)}


def _grid(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 2
    return None if ok else "be an int >= 2 (grid 1 would hide every pixel)"


@dataclass(frozen=True)
class BlindSpotConfig:
    """Options of :func:`build` (``medical.blind_spot``).

    ``replacement`` must go with ``masking``: Noise2Self takes ``"interpolate"``
    or ``"zero"``, Noise2Void ``"neighbour"``.
    """

    masking: str = option("noise2self", one_of(*MASKINGS),
                          "noise2self (one grid phase) or noise2void (one random pixel per box)")
    grid: int = option(4, _grid,
                       "lattice period (Noise2Self) or box side (Noise2Void); 1 / grid^d "
                       "of the pixels are hidden per step")
    replacement: str | None = option(None, None,
                                     "what a hidden pixel shows; None: the method's own "
                                     "(interpolate for Noise2Self, neighbour for Noise2Void)")
    radius: int = option(2, positive_int,
                         "Noise2Void's neighbourhood half-width (2: a 5 x 5 window)")

    def __post_init__(self) -> None:
        allowed = REPLACEMENTS.get(self.masking, ())
        if allowed and self.replacement is not None and self.replacement not in allowed:
            raise ValueError(
                f"{NAME}: replacement={self.replacement!r} does not go with "
                f"masking={self.masking!r}; use one of {list(allowed)} or None"
            )

    @property
    def resolved_replacement(self) -> str:
        return self.replacement or REPLACEMENTS[self.masking][0]


def grid_mask(
    batch: int, spatial: tuple[int, ...], grid: int, generator: torch.Generator
) -> torch.Tensor:
    """Noise2Self's masks ``[B, 1, *spatial]`` (bool): one random grid phase per sample."""
    phases = torch.randint(
        0, grid, (batch, len(spatial)), generator=generator, device=generator.device
    ).cpu()
    mask = torch.ones((batch, *spatial), dtype=torch.bool)
    for axis, size in enumerate(spatial):
        coord = torch.arange(size)
        shape = [1] * len(spatial)
        shape[axis] = size
        on_axis = (coord.view(1, *shape) % grid) == phases[:, axis].view(-1, *[1] * len(spatial))
        mask &= on_axis
    return mask.unsqueeze(1)


def stratified_coords(
    batch: int, spatial: tuple[int, ...], box: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise2Void's stratified sampling: one random pixel per ``box^d`` box.

    Returns ``(sample index [N], coordinates [N, d])``; pixels drawn in the
    partial boxes at the far edges are dropped when they fall outside the image.
    """
    n_boxes = [-(-s // box) for s in spatial]  # ceil: partial boxes at the edges count
    offsets = torch.randint(
        0, box, (batch, *n_boxes, len(spatial)), generator=generator, device=generator.device
    ).cpu()
    corners = torch.stack(
        torch.meshgrid(*[torch.arange(n) * box for n in n_boxes], indexing="ij"), dim=-1
    )
    coords = (corners.unsqueeze(0) + offsets).reshape(batch, -1, len(spatial))
    sample = torch.arange(batch).view(-1, 1).expand(batch, coords.shape[1])
    inside = (coords < torch.tensor(spatial)).all(dim=-1)
    return sample[inside], coords[inside]


def neighbour_offsets(dims: int, radius: int) -> torch.Tensor:
    """All offsets of the ``(2 radius + 1)^d`` window except the centre, ``[K, d]``."""
    span = range(-radius, radius + 1)
    return torch.tensor([o for o in itertools.product(span, repeat=dims) if any(o)])


def draw_neighbours(
    coords: torch.Tensor,
    spatial: tuple[int, ...],
    radius: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """A random other pixel of each pixel's window, ``[N, d]``; never the pixel itself.

    An offset component that leaves the image is mirrored (``c - o``), which stays
    inside for sides ``>= 2 radius + 1`` and keeps a non-zero offset non-zero.
    """
    table = neighbour_offsets(len(spatial), radius)
    pick = torch.randint(
        0, table.shape[0], (coords.shape[0],), generator=generator, device=generator.device
    ).cpu()
    offset = table[pick]
    size = torch.tensor(spatial)
    target = coords + offset
    outside = (target < 0) | (target >= size)
    return torch.where(outside, coords - offset, target)


def interpolation_kernel(dims: int, channels: int) -> torch.Tensor:
    """Noise2Self's neighbour-mean kernel (centre 0, weight ``1/|offset|_1``), grouped."""
    offsets = torch.tensor(list(itertools.product((-1, 0, 1), repeat=dims)))
    l1 = offsets.abs().sum(dim=1).float()
    weights = torch.where(l1 > 0, 1.0 / l1.clamp_min(1.0), torch.zeros_like(l1))
    kernel = (weights / weights.sum()).view(*[3] * dims)
    return kernel.expand(channels, 1, *[3] * dims).contiguous()


def interpolate_neighbours(x: torch.Tensor) -> torch.Tensor:
    """Each pixel's neighbour mean without the pixel itself, same shape as ``x``.

    The border is reflect-padded, which mirrors real neighbours and never the
    centre pixel, so the replacement stays blind at the edges too.
    """
    dims = x.ndim - 2
    kernel = interpolation_kernel(dims, x.shape[1]).to(x.device, x.dtype)
    padded = F.pad(x, [1, 1] * dims, mode="reflect")
    conv = F.conv2d if dims == 2 else F.conv3d
    return conv(padded, kernel, groups=x.shape[1])  # type: ignore[no-any-return]


class BlindSpot(nn.Module, PretextTask):
    """Blind-spot training of a dense denoiser (see the module docstring).

    ``forward(batch, generator)``: ``batch`` is ``[B, C, *spatial]`` noisy images;
    returns ``{"loss", "masked_fraction"}``.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: BlindSpotConfig) -> None:
        super().__init__()
        if dataset.modality not in (IMAGE2D, VOLUME3D):
            raise ValueError(
                f"{NAME} denoises images or volumes; dataset {dataset.name!r} is "
                f"{dataset.modality!r}"
            )
        self.encoder = encoder
        self.config = config
        self.spatial_dims = 2 if dataset.modality == IMAGE2D else 3
        # A segmentation U-Net (out_channels = classes) is pretrained through a
        # separate restoration head on its last decoder features, as in
        # context_restoration; its own final convolution is left for fine-tuning.
        self.head = restoration_head(encoder)

    def mask_and_replace(
        self, y: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The network input (hidden pixels replaced) and the mask ``[B, 1, *spatial]``."""
        cfg = self.config
        spatial = tuple(int(s) for s in y.shape[2:])
        if cfg.masking == "noise2self":
            mask = grid_mask(y.shape[0], spatial, cfg.grid, generator).to(y.device)
            if cfg.resolved_replacement == "interpolate":
                if min(spatial) < 2:
                    raise ValueError(f"{NAME}: interpolation needs sides >= 2, got {spatial}")
                fill = interpolate_neighbours(y)
            else:
                fill = torch.zeros_like(y)
            return torch.where(mask, fill, y), mask
        if min(spatial) < 2 * cfg.radius + 1:
            raise ValueError(
                f"{NAME}: noise2void with radius={cfg.radius} needs spatial sides >= "
                f"{2 * cfg.radius + 1}, got {spatial}; lower radius"
            )
        sample, coords = stratified_coords(y.shape[0], spatial, cfg.grid, generator)
        source = draw_neighbours(coords, spatial, cfg.radius, generator)
        sample, coords, source = sample.to(y.device), coords.to(y.device), source.to(y.device)
        mask = torch.zeros((y.shape[0], 1, *spatial), dtype=torch.bool, device=y.device)
        mask[(sample, torch.zeros_like(sample), *coords.unbind(1))] = True
        # [N, C] values of the chosen neighbours, read from the unmasked image
        values = y.movedim(1, -1)[(sample, *source.unbind(1))]
        masked = y.movedim(1, -1).clone()
        masked[(sample, *coords.unbind(1))] = values
        return masked.movedim(-1, 1), mask

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor) or batch.ndim != self.spatial_dims + 2:
            got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise TypeError(
                f"{NAME} expects a batch of images [B, C, *{self.spatial_dims} spatial dims], "
                f"got {got}"
            )
        y = batch.float()
        x_in, mask = self.mask_and_replace(y, generator)
        pred = restore(self.encoder, x_in, self.head)
        if not isinstance(pred, torch.Tensor) or pred.shape != y.shape:
            got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
            raise ValueError(
                f"{NAME}: the encoder must return a restored image of the input's shape "
                f"{tuple(y.shape)}, got {got}; use a dense model with out_channels equal "
                "to the image channels (medical.unet on a restoration dataset)"
            )
        weight = mask.to(pred.dtype).expand_as(pred)
        loss = ((pred - y) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)
        return {"loss": loss, "masked_fraction": mask.float().mean()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> BlindSpot:
    """``medical.blind_spot`` factory; ``options`` are :class:`BlindSpotConfig` fields."""
    return BlindSpot(encoder, dataset, parse_options(BlindSpotConfig, options, NAME))
