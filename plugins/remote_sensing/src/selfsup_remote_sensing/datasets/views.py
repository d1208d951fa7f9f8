"""Stochastic views of SAR patches, for core's joint-embedding objectives (``core.simclr``,
``core.vicreg``, ...), declared once for every ``sar.slc`` dataset of this plugin.

A view maps an SLC batch ``[B, 2, H, W]`` (real, imaginary) to another of the same shape,
each sample drawn independently from the trainer's generator (reproducible, and the same
whatever the worker count). What each view assumes:

- ``gain_db`` (log-intensity shift): ``z * 10^(g / 20)``, ``g ~ U(-gain_db, gain_db)``,
  i.e. ``log |z|^2`` shifted by ``g ln(10) / 10``. Speckle is multiplicative
  (``z = sqrt(R) n``), so this is exactly the same speckle on a reflectivity ``10^(g/10) R``:
  the view assumes only that what a patch shows does not depend on the radiometric
  calibration (absolute backscatter level), which is false where the level itself is
  the information (water against land at the same texture).
- ``flip`` (probability per axis): mirror azimuth and/or range. White speckle is
  unchanged in law. Assumes the content's meaning is mirror-invariant (SAR
  geometry is not: layover and shadow fall on the side away from / toward the
  sensor, so a range flip shows a scene as if seen from the other side). On
  correlated speckle a flip mirrors the spectrum (an azimuth Doppler centroid ``f``
  becomes ``-f``): the speckle correlation is then a mirrored transfer function.
- ``rotate`` (probability): a 90-degree rotation (square patches only; others are left
  as they are), which swaps azimuth and range. Assumes the same as ``flip``, and that
  the resolution cell and the speckle correlation are the same in azimuth and range,
  which sensors rarely give (pixel spacings and transfer functions differ).
- ``crop`` (the smallest fraction of each side kept): a random square window of side
  ``s ~ U(crop, 1)`` of the patch, brought back to the patch size by nearest-neighbour
  pixel replication of the complex samples. Each pixel keeps its single-look law
  (interpolation would average complex samples with random phases and change it),
  but the speckle grain grows by ``1 / s``: the view assumes what a patch shows is
  the same at zooms in ``[1, 1 / crop]`` and asks the encoder to ignore grain size.

What no view does: draw new speckle. Where the clean reflectivity is unknown (every
real scene, and every pretraining patch here: pretexts never see a clean image),
re-sampling ``z' = sqrt(R) n'`` would need ``R``, and re-sampling from the noisy
intensity (``sqrt(|z|^2) n'``) squares the speckle (a product of two exponentials)
instead of giving a second look; so the plugin offers neither. The phase is kept
as is too (an encoder that reads ``log |z|^2``, as ``remote_sensing.patch_cnn`` does, is
phase-blind anyway).

Importing this module imports no torch (the plugin's registration reads
:data:`VIEW_DEFAULTS`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfsup.api import non_negative, option, parse_options, unit_interval

if TYPE_CHECKING:
    import torch


def _kept_fraction(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0.0 < x <= 1.0
    return None if ok else "be in (0, 1] (the smallest fraction of each side the crop keeps)"


@dataclass(frozen=True)
class SARViews:
    """The view options (module docstring); each view is off at 0 (``crop`` at 1)."""

    crop: float = option(0.6, _kept_fraction,
                         "smallest fraction of each side a random square crop keeps, brought "
                         "back to the patch size by nearest-neighbour pixel replication")
    flip: float = option(0.5, unit_interval, "probability of mirroring each axis")
    rotate: float = option(0.5, unit_interval,
                           "probability of a 90-degree rotation (square patches)")
    gain_db: float = option(3.0, non_negative,
                            "largest intensity gain change in dB (a log-intensity shift)")

    def apply(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One view of an SLC batch ``[B, 2, H, W]``, drawn from ``generator``."""
        import torch
        import torch.nn.functional as F

        if not torch.is_tensor(batch) or batch.ndim != 4 or batch.shape[1] != 2:
            raise TypeError("SAR views take SLC batches [B, 2, H, W] (real, imaginary), got "
                            f"{tuple(getattr(batch, 'shape', ()))}")
        b, _, h, w = batch.shape

        def uniform(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator).to(batch.device)

        out = batch
        if self.crop < 1.0:
            sides = self.crop + (1.0 - self.crop) * uniform(b)
            corners = uniform(b, 2)
            views = []
            for i in range(b):
                ch = max(1, round(float(sides[i]) * h))
                cw = max(1, round(float(sides[i]) * w))
                top = int(float(corners[i, 0]) * (h - ch + 1))
                left = int(float(corners[i, 1]) * (w - cw + 1))
                window = out[i:i + 1, :, top:top + ch, left:left + cw]
                views.append(F.interpolate(window, size=(h, w), mode="nearest-exact"))
            out = torch.cat(views)
        if self.flip:
            for axis in (2, 3):
                flip = (uniform(b) < self.flip)[:, None, None, None]
                out = torch.where(flip, out.flip(axis), out)
        if self.rotate and h == w:
            rot = (uniform(b) < self.rotate)[:, None, None, None]
            out = torch.where(rot, out.rot90(1, (2, 3)), out)
        if self.gain_db:
            gain_db = (2 * uniform(b) - 1) * self.gain_db
            out = out * (10.0 ** (gain_db / 20.0)).to(out.dtype)[:, None, None, None]
        return out


#: the views every ``sar.slc`` dataset registers (``DatasetSpec.views``)
VIEW_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(SARViews)}


def parse_views(views: Mapping[str, Any] | None, owner: str) -> SARViews:
    """The validated :class:`SARViews` of a dataset factory's ``views`` mapping."""
    return parse_options(SARViews, dict(views or {}), f"{owner} views")


def intensity_gain_range(views: SARViews) -> tuple[float, float]:
    """The range of the log-intensity shift ``gain_db`` draws (natural log)."""
    shift = views.gain_db * math.log(10.0) / 10.0
    return -shift, shift
