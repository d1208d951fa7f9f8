"""The stochastic views of this plugin's image and volume datasets, declared once.

Every image dataset (``medical.ct_denoise``, ``medical.brain_tissue3d``,
``medical.synthetic_seg2d``/``3d``, ``medical.volumes``, ``medical.images``) has
the same five view options. :mod:`selfsup_medical.plugin` registers their defaults
(:data:`VIEW_DEFAULTS`) as each :class:`~selfsup.api.DatasetSpec`'s ``views``; a
dataset factory receives them, updated by a user's ``[dataset.views]`` table, as
one ``views`` mapping and reads it with :func:`parse_views`.

The views are MONAI's random transforms (spatial crop resized back, flips, a small
affine, intensity shift and scale), applied per sample with a seed drawn from the
trainer's generator, so they are reproducible and core's joint-embedding
objectives run on images and volumes unchanged.

Importing this module imports neither torch nor MONAI (the plugin's registration
reads :data:`VIEW_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfsup.api import non_negative, option, parse_options, unit_interval

if TYPE_CHECKING:
    import torch


def _kept_fraction(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 < x <= 1.0
    return None if ok else "be in (0, 1] (the fraction of each side the crop keeps)"


@dataclass(frozen=True)
class ImageViews:
    """The view options; each view is off at 0 (``crop`` at 1)."""

    crop: float = option(0.8, _kept_fraction,
                         "fraction of each side the random crop keeps, resized back")
    flip: float = option(0.5, unit_interval, "probability of a flip along each spatial axis")
    rotate: float = option(0.2, non_negative,
                           "largest rotation in radians (affine, about every axis in 3D)")
    scale: float = option(0.1, non_negative, "largest relative zoom of the affine")
    intensity: float = option(0.1, non_negative,
                              "largest intensity shift (added) and relative scale change")

    def transform(self, spatial_shape: Sequence[int]) -> Any:
        """The MONAI ``Compose`` for samples of ``spatial_shape`` (channel first)."""
        from monai import transforms as T

        dims = len(spatial_shape)
        steps: list[Any] = []
        if self.crop < 1.0:
            roi = [max(1, int(s * self.crop)) for s in spatial_shape]
            steps += [
                T.RandSpatialCrop(roi, random_size=False),
                T.Resize(list(spatial_shape), mode="area" if dims == 2 else "trilinear"),
            ]
        if self.flip:
            steps += [T.RandFlip(prob=self.flip, spatial_axis=axis) for axis in range(dims)]
        if self.rotate or self.scale:
            steps.append(
                T.RandAffine(
                    prob=1.0,
                    rotate_range=[self.rotate] * (1 if dims == 2 else 3),
                    scale_range=[self.scale] * dims,
                    padding_mode="zeros",
                )
            )
        if self.intensity:
            steps += [
                T.RandScaleIntensity(factors=self.intensity, prob=1.0),
                T.RandShiftIntensity(offsets=self.intensity, prob=1.0),
            ]
        return T.Compose(steps)

    def apply(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view of each sample of ``batch`` ``[B, C, *spatial]``."""
        import numpy as np
        import torch

        compose = self.transform(batch.shape[2:])
        seeds = torch.randint(
            0, 2**31 - 1, (batch.shape[0],), generator=generator, device=generator.device
        ).tolist()
        out = []
        for sample, seed in zip(batch.detach().cpu(), seeds):
            compose.set_random_state(seed=int(seed))
            view = compose(sample)
            out.append(torch.as_tensor(np.asarray(view), dtype=batch.dtype))
        return torch.stack(out).to(batch.device)


#: the defaults, as registered on every image dataset's DatasetSpec(views=...)
VIEW_DEFAULTS: dict[str, float] = dataclasses.asdict(ImageViews())


def parse_views(views: Mapping[str, Any] | None, owner: str) -> ImageViews:
    """``views`` (None: the defaults) as checked :class:`ImageViews`; ``owner`` names the
    dataset in errors (``"medical.ct_denoise views: option crop must be ..."``)."""
    return parse_options(ImageViews, dict(views or {}), f"{owner} views")


__all__ = ["VIEW_DEFAULTS", "ImageViews", "parse_views"]
