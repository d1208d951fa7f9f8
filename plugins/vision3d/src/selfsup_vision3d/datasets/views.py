"""Stochastic views of a batch of point clouds ``[B, N, 3]``.

Declared once on each dataset's spec (:data:`DEFAULT_VIEWS`), set in an
experiment's ``[dataset.views]`` table, and drawn from the trainer's generator, so
a resumed run sees the same views. Per cloud, in this order:

1. crop, with probability ``crop_prob``: the points beyond a random plane are cut
   (a cap of up to ``crop_max`` of the cloud, the plane's normal uniform on the
   sphere) and the kept points are repeated to fill the ``N`` slots;
2. point dropout: a share drawn from ``[0, dropout_max]`` of the points is replaced
   by copies of the cloud's first kept point (PointNet++'s random input dropout;
   the shape ``[N, 3]`` never changes);
3. anisotropic scale: each axis by a factor in ``[scale_min, scale_max]``;
4. rotation (``"so3"``: uniform on SO(3); ``"up"``: about the z axis; ``"none"``);
5. jitter: Gaussian noise of std ``jitter`` clipped at ``jitter_clip``.

:func:`apply_views` returns the view and the rotation ``R`` ``[B, 3, 3]`` applied
(``view = (scaled, cropped cloud) @ R^T + noise``), for objectives that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from selfsup.api import non_negative, one_of, option, positive, unit_interval

from ..geometry import random_rotations

DEFAULT_VIEWS: dict[str, Any] = {
    "rotation": "so3", "scale_min": 0.8, "scale_max": 1.25, "jitter": 0.01,
    "jitter_clip": 0.05, "dropout_max": 0.3, "crop_prob": 0.5, "crop_max": 0.3,
}


def _crop_share(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x < 1
    return None if ok else "be in [0, 1)"


@dataclass(frozen=True)
class PointViews:
    """The view options (see the module)."""

    rotation: str = option("so3", one_of("so3", "up", "none"),
                           "random rotation: uniform on SO(3), about the up (z) axis, or none")
    scale_min: float = option(0.8, positive, "smallest per-axis scale factor")
    scale_max: float = option(1.25, positive, "largest per-axis scale factor")
    jitter: float = option(0.01, non_negative, "std of the Gaussian jitter per coordinate")
    jitter_clip: float = option(0.05, non_negative, "jitter clipped at +- this")
    dropout_max: float = option(0.3, _crop_share, "largest share of points dropped")
    crop_prob: float = option(0.5, unit_interval, "chance a cloud is cut by a random plane")
    crop_max: float = option(0.3, _crop_share, "largest share of the cloud a crop removes")

    def __post_init__(self) -> None:
        if self.scale_min > self.scale_max:
            raise ValueError(f"views: scale_min={self.scale_min} exceeds "
                             f"scale_max={self.scale_max}; swap them")


def _uniform(shape: tuple[int, ...], generator: torch.Generator, lo: float, hi: float,
             device: torch.device) -> torch.Tensor:
    u = torch.rand(shape, generator=generator, device=generator.device).to(device)
    return lo + (hi - lo) * u


def _fill(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Each cloud's kept points repeated cyclically into all ``N`` slots."""
    n = x.shape[1]
    order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)  # kept points first
    count = keep.sum(1).clamp(min=1)
    slot = torch.arange(n, device=x.device)[None] % count[:, None]
    src = torch.gather(order, 1, slot)
    return torch.gather(x, 1, src[..., None].expand(-1, -1, 3))


def apply_views(batch: torch.Tensor, views: PointViews,
                generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One view of ``batch`` ``[B, N, 3]`` and the rotation ``[B, 3, 3]`` applied."""
    x = batch.float()
    b, n, _ = x.shape
    dev = x.device
    if views.crop_prob > 0 and views.crop_max > 0:
        normal = torch.randn(b, 3, generator=generator, device=generator.device).to(dev)
        normal = normal / normal.norm(dim=1, keepdim=True).clamp(min=1e-9)
        height = (x * normal[:, None]).sum(-1)  # [B, N]
        share = _uniform((b,), generator, 0.0, views.crop_max, dev)
        rank = ((1 - share) * (n - 1)).long().clamp(0, n - 1)
        cut = height.sort(dim=1).values.gather(1, rank[:, None])[:, 0]  # the top `share` go
        crop = _uniform((b,), generator, 0.0, 1.0, dev) < views.crop_prob
        keep = (height <= cut[:, None]) | ~crop[:, None]
        x = _fill(x, keep)
    if views.dropout_max > 0:
        share = _uniform((b, 1), generator, 0.0, views.dropout_max, dev)
        drop = _uniform((b, n), generator, 0.0, 1.0, dev) < share
        drop[:, 0] = False
        x = torch.where(drop[..., None], x[:, :1].expand(-1, n, -1), x)
    scale = _uniform((b, 1, 3), generator, views.scale_min, views.scale_max, dev)
    rot = random_rotations(b, generator, views.rotation, dev)
    x = (x * scale) @ rot.transpose(1, 2)
    if views.jitter > 0:
        noise = torch.randn(x.shape, generator=generator, device=generator.device).to(dev)
        x = x + (views.jitter * noise).clamp(-views.jitter_clip, views.jitter_clip)
    return x.to(batch.dtype), rot
