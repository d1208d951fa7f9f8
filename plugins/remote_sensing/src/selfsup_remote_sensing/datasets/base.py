"""What every SAR dataset of the plugin is: SLC patches, labelled pairs, whole scenes.

- ``pretrain_set()``: SLC patches ``[2, P, P]`` float32 (real, imaginary), cut with
  overlap from the training scenes (:mod:`selfsup_remote_sensing.tiling`); no clean
  image ever reaches a pretext task.
- ``labelled_split(split)`` (simulated data only): ``(slc [2, H, W], clean log-intensity
  [1, H, W])`` for whole scenes, so evaluators can also measure tiling.
- ``scenes``: ``[(name, slc [2, H, W], looks)]`` of real images without a reference, for
  the no-reference measures (ratio image, ENL); empty when none is available.
- ``augment(batch, generator)``: one stochastic view of an SLC batch
  (:mod:`.views`: crop, flips, 90-degree rotations, gain; never new speckle), so core's
  joint-embedding objectives train on SAR patches.

Intensity scale: real scenes are divided by :func:`scale_scene`'s factor so that
their bright end lies near 1 like the simulated reflectivities (amplitudes in
``[AMPLITUDE_FLOOR, 1]``): the networks normalise log-intensity with fixed bounds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from selfsup.api import SSLDataset, TaskSpec

from ..tiling import tile
from .views import SARViews

SPLITS: tuple[str, str, str] = ("train", "val", "test")


def scale_scene(z: np.ndarray) -> np.ndarray:
    """``z`` divided by the square root of the 99.5th percentile of its 5x5 boxcar intensity.

    A boxcar mean first, so single bright speckle samples do not set the scale.
    """
    from scipy.ndimage import uniform_filter

    intensity = uniform_filter(np.abs(z) ** 2, size=5, mode="reflect")
    scale = float(np.percentile(intensity, 99.5))
    if not scale > 0:
        raise ValueError("scale_scene: the image has no positive intensity")
    return z / np.sqrt(scale)


def slc_tensor(z: np.ndarray) -> torch.Tensor:
    """A complex ``[H, W]`` array as the plugin's sample ``[2, H, W]`` float32."""
    return torch.from_numpy(np.stack([z.real, z.imag]).astype(np.float32))


class SLCDataset(SSLDataset):
    """SLC patches for pretraining, optional labelled pairs, optional real scenes."""

    def __init__(
        self,
        *,
        pretrain: Sequence[torch.Tensor],
        labelled: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]] | None = None,
        scenes: Sequence[tuple[str, torch.Tensor, float]] = (),
        source: str = "",
        patch_size: int = 64,
        views: SARViews | None = None,
    ) -> None:
        if not pretrain:
            raise ValueError(f"{type(self).__name__}: no pretraining patches")
        for i, x in enumerate(pretrain):
            if x.ndim != 3 or x.shape[0] != 2 or x.dtype != torch.float32:
                raise ValueError(f"pretraining item {i}: expected a float32 SLC [2, H, W], got "
                                 f"{x.dtype} {tuple(x.shape)}")
        self._pretrain = list(pretrain)
        self._labelled = {k: list(v) for k, v in (labelled or {}).items() if len(v)}
        self.splits = tuple(s for s in SPLITS if s in self._labelled)
        self.task = TaskSpec("dense") if self._labelled else TaskSpec("none")
        self.scenes = list(scenes)
        self.source = source
        self.patch_size = patch_size
        #: ``(file, reason)`` of every input the dataset skipped
        self.skipped: list[tuple[str, str]] = []
        self.views = views or SARViews()

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.views.apply(batch, generator)

    def pretrain_set(self) -> list[torch.Tensor]:  # type: ignore[override]
        return self._pretrain

    def labelled_split(  # type: ignore[override]
        self, split: str
    ) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        return self._labelled.get(split)

    def input_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:{self.modality}:{len(self._pretrain)}".encode())
        for x in self._pretrain[:: max(1, len(self._pretrain) // 32)]:
            h.update(x.numpy().tobytes()[:4096])
        return h.hexdigest()[:16]


def patches_of(slcs: Sequence[torch.Tensor], size: int, overlap: int) -> list[torch.Tensor]:
    """Every ``size x size`` patch of each SLC ``[2, H, W]``, cut with ``overlap``
    (images smaller than ``size`` are skipped)."""
    out: list[torch.Tensor] = []
    for slc in slcs:
        if min(slc.shape[1:]) < size:
            continue
        out += [p.contiguous() for p in tile(slc, size, overlap)[0]]
    return out
