"""``medical.brain_tissue3d``: 3D patches of a real brain MRI, labelled by tissue.

The volume-level task for core's probes (``core.linear_probe``, ``core.knn``) on
volume embeddings (``medical.unet_encoder``). Offline: the MNI152 ICBM 2009a
symmetric T1 template and its grey- and white-matter probability maps, which
ship inside the ``nilearn`` wheel (:mod:`selfsup_medical.sources`; 197x233x189
at 1 mm, values 0-255).

Patches: ``[1, patch, patch, patch]`` cubes of the T1 (``patch`` 32 by default,
a multiple of 16 for the U-Net), divided by the template's 99.9th percentile and
clipped to ``[0, 1.5]``. The volume is cut into coronal bands ``patch`` thick
(the anterior-posterior axis, nibabel's second); inside a band, cubes sit on a
grid with stride ``stride`` (8) in the left-right and inferior-superior axes, so
cubes of one band overlap but cubes of different bands never share a voxel. The
grids are centred in the volume. A cube is kept when at least
``min_foreground`` (25%) of its voxels exceed 10% of the reference intensity
(air is dropped).

Label (3 classes): the largest of the cube's mean grey-matter probability (0),
mean white-matter probability (1) and the rest, ``1 - GM - WM`` (2: CSF, skull,
scalp and background).

Splits by band, so no voxel is shared across splits: band ``b`` (posterior to
anterior) goes to ``BAND_SPLITS[b % 7]``; with the default ``patch`` the seven
bands go to train (band 0, behind the head, keeps no cube), train, train, test,
val, train and train. Coronal bands all cross
cortex, white matter and CSF; axial layers would not (the lowest and highest hold
no white matter). Counts with the defaults
(``python -m selfsup_medical.datasets.brain_tissue`` prints them)::

    split   grey  white  other  total
    train    272    105    260    637
    val       92     51     89    232
    test     109     78     95    282
    logistic regression, test accuracy: mean intensity 0.844, five intensity statistics 0.911

The task is largely one of intensity: a logistic regression on each cube's mean
intensity alone gets 0.844 test accuracy, on five intensity statistics (mean,
std, 10/50/90th percentiles) 0.911 (:func:`intensity_baseline`); the benchmark
``medical.tissue3d`` asks how much of that frozen volume embeddings keep.

Being an average of 152 brains, the template is smoother than one scan; the
bands differ in anatomy (frontal, parietal, occipital), so a probe is tested
on anatomy it did not see.

Views (:mod:`selfsup_medical.datasets.views`, the ``views`` option) apply to
pretraining batches, so core's joint-embedding objectives run on these volumes.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from selfsup.api import VOLUME3D, TaskSpec

from ..images import ImageDataset
from ..sources import package_file
from .views import parse_views

NAME = "medical.brain_tissue3d"
CLASSES = ("grey matter", "white matter", "other")
#: the split of coronal band ``b`` is ``BAND_SPLITS[b % 7]``
BAND_SPLITS = ("train", "train", "train", "test", "val", "train", "train")
TEMPLATE = "datasets/data/mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"


@functools.lru_cache(maxsize=1)
def template() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The MNI152 2009a T1 ``[197, 233, 189]`` in units of its 99.9th percentile, and the
    grey- and white-matter probability maps in ``[0, 1]`` (nilearn's files)."""
    import nibabel

    def load(kind: str) -> np.ndarray:
        file = package_file("nilearn", TEMPLATE.format(kind))
        return np.asarray(
            nibabel.load(file).dataobj, dtype=np.float32  # type: ignore[attr-defined]
        )

    t1 = load("t1")
    t1 = np.clip(t1 / np.percentile(t1, 99.9), 0.0, 1.5)
    return t1, load("gm") / 255.0, load("wm") / 255.0


def _check(patch: int, stride: int, min_foreground: float) -> None:
    if isinstance(patch, bool) or not isinstance(patch, int) or patch < 32 or patch % 16:
        raise ValueError(
            f"{NAME}: patch must be a multiple of 16 and >= 32 (the U-Net trains on it), "
            f"got {patch!r}"
        )
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"{NAME}: stride must be an integer >= 1, got {stride!r}")
    if not 0.0 <= float(min_foreground) < 1.0:
        raise ValueError(f"{NAME}: min_foreground must be in [0, 1), got {min_foreground!r}")


def _starts(length: int, patch: int, step: int) -> list[int]:
    n = (length - patch) // step + 1
    offset = (length - (patch + step * (n - 1))) // 2
    return [offset + step * i for i in range(n)]


def corners(
    patch: int = 32, stride: int = 8, min_foreground: float = 0.25
) -> dict[str, list[tuple[int, int, int]]]:
    """``split -> [(x, y, z) corner of each kept cube, ...]`` (see the module docstring)."""
    _check(patch, stride, min_foreground)
    t1, _, _ = template()
    out: dict[str, list[tuple[int, int, int]]] = {"train": [], "val": [], "test": []}
    for band, y in enumerate(_starts(t1.shape[1], patch, patch)):
        split = BAND_SPLITS[band % len(BAND_SPLITS)]
        for x in _starts(t1.shape[0], patch, stride):
            for z in _starts(t1.shape[2], patch, stride):
                cube = t1[x : x + patch, y : y + patch, z : z + patch]
                if (cube > 0.1).mean() >= min_foreground:
                    out[split].append((x, y, z))
    return out


def patches(
    patch: int = 32, stride: int = 8, min_foreground: float = 0.25
) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """``split -> [(cube [1, p, p, p], class), ...]`` at :func:`corners`."""
    t1, gm, wm = template()
    out: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for split, starts in corners(patch, stride, min_foreground).items():
        out[split] = []
        for x, y, z in starts:
            box = (slice(x, x + patch), slice(y, y + patch), slice(z, z + patch))
            grey, white = float(gm[box].mean()), float(wm[box].mean())
            label = int(np.argmax([grey, white, 1.0 - grey - white]))
            image = torch.from_numpy(np.ascontiguousarray(t1[box]))[None].float()
            out[split].append((image, torch.tensor(label)))
    return out


def build(
    *,
    patch: int = 32,
    stride: int = 8,
    min_foreground: float = 0.25,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """The ``medical.brain_tissue3d`` dataset; pretraining items are the train cubes."""
    image_views = parse_views(views, NAME)
    labelled = patches(patch, stride, min_foreground)
    counts = ", ".join(f"{k} {len(v)}" for k, v in labelled.items())
    return ImageDataset(
        NAME,
        modality=VOLUME3D,
        pretrain=[x for x, _ in labelled["train"]],
        labelled=labelled,
        task=TaskSpec("classification", len(CLASSES)),
        views=image_views,
        source=(
            f"{patch}^3 cubes (stride {stride}) of nilearn's MNI152 2009a T1 template, "
            f"labelled {'/'.join(CLASSES)} by the template's tissue maps; cubes per split: "
            f"{counts}"
        ),
    )


def intensity_baseline(
    labelled: dict[str, list[tuple[torch.Tensor, torch.Tensor]]], statistics: bool = False
) -> float:
    """Test accuracy of a logistic regression on each cube's mean intensity (or, with
    ``statistics``, its mean, std and 10/50/90th percentiles), fitted on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    def features(split: str) -> tuple[np.ndarray, np.ndarray]:
        x = np.stack([c.reshape(-1).numpy() for c, _ in labelled[split]])
        y = np.array([int(t) for _, t in labelled[split]])
        stats = [x.mean(1)]
        if statistics:
            stats += [x.std(1), *np.percentile(x, [10, 50, 90], axis=1)]
        return np.stack(stats, 1), y

    (x_train, y_train), (x_test, y_test) = features("train"), features("test")
    scale = StandardScaler().fit(x_train)
    model = LogisticRegression(max_iter=2000).fit(scale.transform(x_train), y_train)
    return float(model.score(scale.transform(x_test), y_test))


def _report() -> None:
    """Print the tables of the module docstring."""
    labelled = patches()
    print("split   grey  white  other  total")
    for split, items in labelled.items():
        n = np.bincount([int(y) for _, y in items], minlength=len(CLASSES))
        print(f"{split:<7} {n[0]:>5} {n[1]:>6} {n[2]:>6} {len(items):>6}")
    print(f"logistic regression, test accuracy: mean intensity "
          f"{intensity_baseline(labelled):.3f}, five intensity statistics "
          f"{intensity_baseline(labelled, statistics=True):.3f}")


if __name__ == "__main__":
    _report()
