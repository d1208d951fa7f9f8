"""Your NIfTI/DICOM images from a folder: ``medical.volumes`` (3D) and ``medical.images`` (2D).

Files are found and read by :func:`selfsup_medical.io.scan_folder` (NIfTI,
DICOM files, DICOM series folders; label maps paired by name; unreadable and
invalid files skipped with the reason, kept on the dataset as ``skipped``).
Each image is then, in this order:

1. shifted so its minimum is 0 (per channel): CT in Hounsfield units and MR
   magnitudes both start at 0, and padding (below) is the image's minimum;
2. resampled with MONAI's ``Resize`` (linear, anti-aliased; label maps nearest
   neighbour) so that its longest *physical* side (voxels times spacing from the
   file's affine) spans ``size`` voxels and voxels are isotropic, keeping the
   aspect ratio (``medical.images``: in-plane only, slices kept);
3. zero-padded, centred, to ``size`` per side: ``[C, size, size, size]``
   (``medical.volumes``) or ``[C, size, size]`` (``medical.images``);
4. divided per channel by the 99.9th percentile of its (unpadded) voxels
   (:func:`~selfsup_medical.images.scale_unit`), so intensities are about
   ``[0, 1]``; a volume is scaled as a whole, so its slices share one scale.

``medical.images`` takes 2D images as they are and every slice along the last
(axial, for NIfTI/DICOM) axis of 3D volumes, leaving out constant slices
(padding, empty slices), which have nothing to learn from. Samples keep MONAI's
axis order (see :mod:`selfsup_medical.io`).

With ``labels``: ``TaskSpec("segmentation", n_classes)`` (``n_classes``
defaults to the largest label + 1), label maps are long tensors of the sample's
spatial shape (``[size, size, size]`` or ``[size, size]``), and the labelled
images are split 60/20/20 into train/val/test *by image file* (the slices of one
volume never cross splits) with a permutation seeded by ``seed``. Pretext tasks
see the train images plus the images that have no label map, never validation
or test images. Without ``labels``: ``TaskSpec("none")``, every image is for
pretraining.

Views: the ``views`` option (:mod:`selfsup_medical.datasets.views`: ``crop``,
``flip``, ``rotate``, ``scale``, ``intensity``).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from selfsup.api import IMAGE2D, VOLUME3D, TaskSpec

from ..images import ImageDataError, ImageDataset, scale_unit
from ..io import FolderItem, Skipped, scan_folder
from .views import ImageViews, parse_views

VOLUMES = "medical.volumes"
IMAGES = "medical.images"
SPLIT_FRACTIONS: tuple[float, float, float] = (0.6, 0.2, 0.2)


def build_volumes(
    *,
    root: str | Path | None = None,
    labels: str | Path | None = None,
    size: int = 64,
    n_classes: int | None = None,
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """``medical.volumes``: the 3D volumes under ``root``, ``[C, size, size, size]`` each.

    ``labels``: the folder of label maps (may be ``root`` itself), or None.
    ``size``: voxels per side, a multiple of 16 (the U-Nets halve it 4 times).
    ``n_classes``: the segmentation classes (default: the largest label + 1).
    """
    return _build(
        VOLUMES,
        3,
        root=root,
        labels=labels,
        size=size,
        n_classes=n_classes,
        seed=seed,
        views=parse_views(views, VOLUMES),
    )


def build_images(
    *,
    root: str | Path | None = None,
    labels: str | Path | None = None,
    size: int = 128,
    n_classes: int | None = None,
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """``medical.images``: 2D images and the axial slices of volumes under ``root``.

    Samples are ``[C, size, size]``; options as :func:`build_volumes`.
    """
    return _build(
        IMAGES,
        2,
        root=root,
        labels=labels,
        size=size,
        n_classes=n_classes,
        seed=seed,
        views=parse_views(views, IMAGES),
    )


def split_groups(n: int, seed: int) -> dict[str, list[int]]:
    """Indices ``0..n-1`` of groups (files, volumes) split 60/20/20, seeded.

    With 3 or more groups validation and test get at least one each (round half
    up of 20%); with fewer, every group is in train.
    """
    order = np.random.default_rng(seed).permutation(n).tolist()
    if n < 3:
        return {"train": sorted(order), "val": [], "test": []}
    n_val = max(1, int(SPLIT_FRACTIONS[1] * n + 0.5))
    n_test = max(1, int(SPLIT_FRACTIONS[2] * n + 0.5))
    return {
        "train": sorted(order[n_val + n_test :]),
        "val": sorted(order[:n_val]),
        "test": sorted(order[n_val : n_val + n_test]),
    }


def _build(
    name: str,
    dims: int,
    *,
    root: str | Path | None,
    labels: str | Path | None,
    size: int,
    n_classes: int | None,
    seed: int,
    views: ImageViews,
) -> ImageDataset:
    if root is None:
        raise ValueError(
            f"{name} needs the folder of your images: pass root=... (e.g. --set "
            "dataset.root=/data/scans), and labels=... for a folder of label maps"
        )
    _check_options(name, size, n_classes, seed)
    prepare = _prepare_volume if dims == 3 else _prepare_slices
    items, skipped = scan_folder(
        root,
        labels=labels,
        spatial_dims=dims,
        prepare=lambda im, lab, meta: prepare(im, lab, meta, size),
    )
    items, wrong = _same_channels(items)
    skipped = sorted(skipped + wrong)
    if not items:  # defensive: scan_folder raises first when nothing is usable
        raise ImageDataError(f"{name}: no usable images under {root}")
    labelled_items = [it for it in items if it.label_path is not None]
    where = f"{name} (root={str(root)!r}" + (f", labels={str(labels)!r})" if labels else ")")
    modality = IMAGE2D if dims == 2 else VOLUME3D
    if labels is None:
        pretrain = [x for it in items for x in _samples(it)]
        ds = ImageDataset(
            name,
            modality=modality,
            pretrain=pretrain,
            task=TaskSpec("none"),
            views=views,
            source=f"folder {root}",
        )
        split_files: dict[str, list[Path]] = {"pretrain": [it.path for it in items]}
    else:
        if not labelled_items:
            raise ImageDataError(
                f"{where}: no image has a label map: a label map is named like its image "
                "(img_001.nii.gz -> img_001.nii.gz or img_001_seg/_label/_labels/_mask/_gt."
                "nii.gz in the labels folder); pass labels=None to pretrain without them"
            )
        task = TaskSpec("segmentation", _n_classes(where, labelled_items, n_classes))
        groups = split_groups(len(labelled_items), seed)
        if not groups["val"]:
            warnings.warn(
                f"{where}: only {len(labelled_items)} labelled image(s); all are in "
                "the train split and there is no val/test split to evaluate on",
                stacklevel=3,
            )
        labelled: dict[str, Sequence[tuple[torch.Tensor, torch.Tensor]]] = {
            split: [pair for i in idx for pair in _pairs(labelled_items[i])]
            for split, idx in groups.items()
        }
        unlabelled = [it for it in items if it.label_path is None]
        pretrain = [x for x, _ in labelled["train"]] + [
            x for it in unlabelled for x in _samples(it)
        ]
        ds = ImageDataset(
            name,
            modality=modality,
            pretrain=pretrain,
            labelled=labelled,
            task=task,
            views=views,
            source=f"folder {root}, labels {labels}",
        )
        split_files = {
            split: [labelled_items[i].path for i in idx] for split, idx in groups.items()
        }
        split_files["unlabelled"] = [it.path for it in unlabelled]
    ds.skipped = skipped  # type: ignore[attr-defined]
    ds.files = [it.path for it in items]  # type: ignore[attr-defined]
    ds.split_files = split_files  # type: ignore[attr-defined]
    return ds


def _check_options(name: str, size: Any, n_classes: Any, seed: Any) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 16 or size % 16:
        raise ValueError(
            f"{name}: size={size!r} must be a multiple of 16 (16, 32, 64, ...): "
            "the U-Nets halve each side four times"
        )
    if n_classes is not None and (
        isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2
    ):
        raise ValueError(
            f"{name}: n_classes={n_classes!r} must be an integer >= 2 (background "
            "and at least one structure), or None to count the label maps' classes"
        )
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{name}: seed={seed!r} must be an integer")


def _same_channels(items: list[FolderItem]) -> tuple[list[FolderItem], list[Skipped]]:
    """Keep the images with the most common channel count (a batch needs one)."""
    counts: dict[int, int] = {}
    for it in items:
        c = _channels(it)
        counts[c] = counts.get(c, 0) + 1
    if len(counts) <= 1:
        return items, []
    keep = max(counts, key=lambda c: (counts[c], -c))
    bad = [
        Skipped(
            str(it.path),
            f"image has {_channels(it)} channels; most images here have "
            f"{keep}, and a dataset needs one channel count",
        )
        for it in items
        if _channels(it) != keep
    ]
    return [it for it in items if _channels(it) == keep], bad


def _channels(item: FolderItem) -> int:
    image = item.image[0] if isinstance(item.image, list) else item.image
    return int(image.shape[0])


def _n_classes(where: str, items: list[FolderItem], n_classes: int | None) -> int:
    top, top_path = -1, None
    for it in items:
        labels = it.label if isinstance(it.label, list) else [it.label]
        m = max((int(lab.max()) for lab in labels), default=-1)
        if m > top:
            top, top_path = m, it.label_path
    if n_classes is None:
        if top < 1:
            raise ImageDataError(
                f"{where}: every label map holds only 0 (background); "
                "segmentation needs at least one labelled structure"
            )
        return top + 1
    if top >= n_classes:
        raise ImageDataError(
            f"{where}: label map {top_path} holds class {top} but "
            f"n_classes={n_classes}; raise n_classes to {top + 1} or more, or "
            "pass n_classes=None"
        )
    return n_classes


def _samples(item: FolderItem) -> list[torch.Tensor]:
    return item.image if isinstance(item.image, list) else [item.image]


def _pairs(item: FolderItem) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if isinstance(item.image, list):
        return list(zip(item.image, item.label))
    return [(item.image, item.label)]


# -- resampling ------------------------------------------------------------------------------
def fit_shape(shape: tuple[int, ...], spacing: tuple[float, ...], size: int) -> tuple[int, ...]:
    """Grid whose longest physical side spans ``size`` voxels, voxels isotropic."""
    extent = np.asarray(shape, dtype=np.float64) * np.asarray(spacing, dtype=np.float64)
    scale = size / float(extent.max())
    return tuple(int(min(size, max(1, round(e * scale)))) for e in extent)


def _resize(
    image: torch.Tensor, label: torch.Tensor | None, target: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """MONAI ``Resize`` of the spatial axes of ``[C, *spatial]`` (label: nearest neighbour)."""
    from monai.transforms import Resize
    from monai.utils import convert_to_tensor

    dims = len(target)
    if tuple(image.shape[1:]) != target:
        mode = "bilinear" if dims == 2 else "trilinear"
        image = convert_to_tensor(
            Resize(list(target), mode=mode, anti_aliasing=True)(image), track_meta=False
        )
        if label is not None:
            label = convert_to_tensor(
                Resize(list(target), mode="nearest-exact")(label), track_meta=False
            )
    return image.float(), label


def _pad(x: torch.Tensor, size: int, axes: int) -> torch.Tensor:
    """Zero-pad the first ``axes`` spatial axes of ``[C, *spatial]`` to ``size``, centred."""
    pad: list[int] = []
    for s in reversed(x.shape[1 : 1 + axes]):
        lo = (size - int(s)) // 2
        pad = [*pad, lo, size - int(s) - lo]
    spatial = x.ndim - 1
    pad = [0, 0] * (spatial - axes) + pad  # F.pad lists the last axis first
    return F.pad(x, pad)


def _unit(image: torch.Tensor, source: str) -> torch.Tensor:
    """Per channel: minimum to 0, then :func:`scale_unit` (99.9th percentile to 1)."""
    out = []
    for c, channel in enumerate(image):
        lo, hi = channel.min(), channel.max()
        if not hi > lo:
            raise ImageDataError(
                f"{source}: channel {c} is constant (every voxel "
                f"{float(lo):g}); nothing to learn from"
            )
        out.append(scale_unit(channel - lo))
    return torch.stack(out)


def _prepare_volume(
    image: np.ndarray, label: np.ndarray | None, meta: dict[str, Any], size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    source = str(meta["path"])
    x = torch.from_numpy(image)
    x = x - x.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)  # min to 0, so padding is the min
    y = torch.from_numpy(label) if label is not None else None
    x, y = _resize(x, y, fit_shape(tuple(x.shape[1:]), meta["spacing"], size))
    x = _pad(_unit(x, source), size, 3)
    return x, (_pad(y, size, 3)[0].round().long() if y is not None else None)


def _prepare_slices(
    image: np.ndarray, label: np.ndarray | None, meta: dict[str, Any], size: int
) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """A 2D image, or a volume's slices along its last axis, each ``[C, size, size]``."""
    source = str(meta["path"])
    x = torch.from_numpy(image)
    y = torch.from_numpy(label) if label is not None else None
    flat = x.ndim == 3
    if flat:  # a 2D image is a volume of one slice here
        x, y = x[..., None], (y[..., None] if y is not None else None)
    x = x - x.flatten(1).min(dim=1).values.view(-1, 1, 1, 1)
    spacing = tuple(meta["spacing"])[:2]
    target = (*fit_shape(tuple(x.shape[1:3]), spacing, size), int(x.shape[3]))
    x, y = _resize(x, y, target)
    x = _pad(_unit(x, source), size, 2)
    y = _pad(y, size, 2)[0].round().long() if y is not None else None
    images, maps = [], []
    for k in range(x.shape[-1]):
        s = x[..., k]
        if not flat and not s.max() > s.min():
            continue
        images.append(s.contiguous())
        if y is not None:
            maps.append(y[..., k].contiguous())
    if not images:
        raise ImageDataError(f"{source}: every slice is constant; nothing to learn from")
    return images, (maps if y is not None else None)


__all__ = ["IMAGES", "VOLUMES", "build_images", "build_volumes", "fit_shape", "split_groups"]
