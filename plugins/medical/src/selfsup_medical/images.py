"""Images and volumes as selfsup datasets, their checks and their views.

A sample is a float32 tensor ``[C, H, W]`` (modality ``image2d``) or
``[C, D, H, W]`` (``volume3d``); a batch stacks them to ``[B, C, ...]``.
:class:`ImageDataset` serves four kinds of task:

- restoration (``TaskSpec("dense")``): the pretraining items are degraded
  images (noisy, low-dose) and no clean image is ever shown to a pretext task;
  labelled items are ``(degraded, clean)``, and restoration evaluators compare a
  model's output with ``clean``;
- segmentation (``TaskSpec("segmentation", n)``): pretraining items are images,
  labelled items ``(image, label map)`` with the label map a long tensor of the
  image's spatial shape;
- classification (``TaskSpec("classification", n)``): labelled items
  ``(image, class)`` with the class an integer scalar tensor, for core's probes
  on image or volume embeddings;
- none: unlabelled images for pretraining only.

Intensities are scaled to about ``[0, 1]`` by whoever builds the dataset (each
source documents how), so that PSNR with a data range of 1 means the same thing
everywhere.

Views are :class:`~selfsup_medical.datasets.views.ImageViews` (MONAI's random
transforms, declared once for every image dataset of the plugin).

``modality`` is an argument of :class:`ImageDataset` (the class serves both
``image2d`` and ``volume3d`` and checks every sample's dimensions against it when
it is built); the registry sets the same value from the DatasetSpec afterwards.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from selfsup.api import IMAGE2D, VOLUME3D, SSLDataset, TaskSpec

from .datasets.views import ImageViews

SPLITS: tuple[str, str, str] = ("train", "val", "test")
NO_TASK = TaskSpec("none")


class ImageDataError(ValueError):
    """An image or volume that cannot be used as given."""


def check_image(array: Any, *, source: str, field: str = "image", spatial_dims: int) -> None:
    """Reject an image that is not ``[C, *spatial]`` with finite values and a non-zero extent.

    ``source`` names the file or dataset item, so the error says where to look.
    """
    shape = tuple(array.shape)
    if len(shape) != spatial_dims + 1:
        want = "[C, H, W]" if spatial_dims == 2 else "[C, D, H, W]"
        raise ImageDataError(
            f"{source}: {field} has shape {shape} ({len(shape)} dimensions); expected {want} "
            f"for a {spatial_dims}D dataset"
        )
    if any(s == 0 for s in shape):
        raise ImageDataError(f"{source}: {field} has zero extent, shape {shape}")
    values = torch.as_tensor(array)
    if values.is_complex():
        raise ImageDataError(
            f"{source}: {field} is complex; pass magnitudes, or use a k-space "
            "dataset for complex MRI data"
        )
    if values.is_floating_point():
        bad = ~torch.isfinite(values)
        if bad.any():
            first = tuple(int(i) for i in bad.nonzero()[0])
            raise ImageDataError(
                f"{source}: {field} has {int(bad.sum())} NaN/Inf voxels, first "
                f"at index {first}; fix or mask them before training"
            )


def scale_unit(image: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
    """``image`` divided by the 99.9th percentile of ``reference`` (default: itself).

    A percentile rather than the maximum, so that a few hot voxels do not darken
    the whole image; values are not clipped and the minimum is not subtracted
    (shift CT in Hounsfield units to a zero minimum first).
    """
    ref = (reference if reference is not None else image).float()
    scale = torch.quantile(ref.flatten()[:: max(1, ref.numel() // 1_000_000)], 0.999)
    return image.float() / scale.clamp_min(1e-8)


class ImageDataset(SSLDataset):
    """2D images or 3D volumes with a restoration, segmentation, classification or no task.

    ``pretrain``: the samples pretext tasks see (degraded images for a restoration
    task); ``labelled``: ``split -> [(input, target), ...]``. Every sample is
    checked (:func:`check_image`) when the dataset is built.
    """

    def __init__(
        self,
        name: str,
        *,
        modality: str,
        pretrain: Sequence[torch.Tensor],
        labelled: Mapping[str, Sequence[tuple[torch.Tensor, torch.Tensor]]] | None = None,
        task: TaskSpec = NO_TASK,
        views: ImageViews | None = None,
        source: str = "",
    ) -> None:
        if modality not in (IMAGE2D, VOLUME3D):
            raise ValueError(
                f"dataset {name!r}: modality must be image2d or volume3d, got {modality!r}"
            )
        dims = 2 if modality == IMAGE2D else 3
        if not pretrain:
            raise ImageDataError(f"dataset {name!r} has no pretraining images")
        for i, x in enumerate(pretrain):
            check_image(x, source=f"dataset {name!r}, pretraining item {i}", spatial_dims=dims)
        labelled = {s: list(v) for s, v in (labelled or {}).items() if len(v)}
        for split, items in labelled.items():
            for i, (x, y) in enumerate(items):
                where = f"dataset {name!r}, {split} item {i}"
                check_image(x, source=where, spatial_dims=dims)
                if task.kind == "classification":
                    label = torch.as_tensor(y)
                    if label.ndim or label.is_floating_point() or not (
                        0 <= int(label) < int(task.n_classes or 0)
                    ):
                        raise ImageDataError(
                            f"{where}: the class label is {y!r}; expected an integer scalar "
                            f"in [0, {task.n_classes})"
                        )
                elif task.kind == "segmentation":
                    spatial = tuple(x.shape[1:])
                    if tuple(y.shape[-dims:]) != spatial or y.is_floating_point():
                        raise ImageDataError(
                            f"{where}: the label map has shape {tuple(y.shape)} and dtype "
                            f"{y.dtype}; expected an integer map of the image's spatial shape "
                            f"{spatial}"
                        )
                else:
                    check_image(y, source=where, field="target", spatial_dims=dims)
                    if tuple(y.shape) != tuple(x.shape):
                        raise ImageDataError(
                            f"{where}: target shape {tuple(y.shape)} differs "
                            f"from the input's {tuple(x.shape)}"
                        )
        self.name, self.modality, self.task, self.source = name, modality, task, source
        self.views = views or ImageViews()
        self._pretrain = [x.float() for x in pretrain]
        self._labelled = labelled
        self.splits = tuple(s for s in SPLITS if s in labelled)

    @property
    def spatial_dims(self) -> int:
        return 2 if self.modality == IMAGE2D else 3

    @property
    def in_channels(self) -> int:
        return int(self._pretrain[0].shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self._pretrain[0].shape[1:])

    # lists are map-style datasets to torch's DataLoader; torch types Dataset nominally
    def pretrain_set(self) -> list[torch.Tensor]:  # type: ignore[override]
        return self._pretrain

    def labelled_split(  # type: ignore[override]
        self, split: str
    ) -> Sequence[tuple[torch.Tensor, torch.Tensor]] | None:
        return self._labelled.get(split)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.views.apply(batch, generator)

    def input_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:{self.modality}:{len(self._pretrain)}".encode())
        for x in self._pretrain[:: max(1, len(self._pretrain) // 32)]:
            h.update(x.numpy().tobytes()[:4096])
        return h.hexdigest()[:16]
