"""``medical.synthetic_seg2d`` / ``medical.synthetic_seg3d``: MONAI's synthetic segmentation data.

Images come from :func:`monai.data.synthetic.create_test_image_2d` / ``_3d``
(MONAI Consortium, https://monai.io), one ``numpy.random.RandomState`` per
image seeded from ``SeedSequence([seed, i])``: ``NUM_OBJECTS`` discs (2D) or
balls (3D) with radii in ``[size // 16, size // 5)`` (2D) or
``[size // 10, size // 4)`` (3D), each given a random foreground class
``1 .. K``. MONAI's ``num_seg_classes`` is ``K``, the number of FOREGROUND
classes (label 0, the background, comes on top), so this module passes
``n_classes - 1``: here ``n_classes`` counts every label value including the
background. Intensity: an object of class ``k`` has value ``k``, then every
voxel becomes ``max(value, u)`` with ``u ~ U(0, K * noise)`` and the image is
min-max scaled to ``[0, 1]``. The noise is one-sided (a max, not added): the
brightest class is only confused with noise once ``noise > 1``.

Samples: image ``[1, size, size]`` (2D) or ``[1, size, size, size]`` (3D)
float32 in ``[0, 1]``; label map ``[size, size]`` / ``[size, size, size]`` long
with values ``0 .. n_classes - 1``. Split: a seeded permutation, 60/20/20
(train/val/test); pretraining items are the train split's images; labelled
items of every split are ``(image, label map)``.

Why ``noise=1.5`` rather than MONAI's usual 0.0-0.6: below 1, an intensity
threshold alone segments the images. Measured: the best mean foreground Dice
of per-voxel thresholds (``n_classes - 1`` thresholds fitted on the train split
to maximise the pooled Dice, :func:`fit_thresholds`; scored per image on the
test split, :func:`threshold_dice`), and of the same procedure after a 3-wide
grey opening (:func:`opened`), which shows that the objects are still there
for a model that uses context; n_classes 3, seed 0, default sizes::

    noise   2D (200 x 64^2)       3D (40 x 32^3)
            threshold  opened     threshold  opened
    0.0     1.000      0.981      1.000      0.939
    0.4     1.000      0.981      1.000      0.939
    0.6     0.869      0.975      0.752      0.937
    0.8     0.785      0.961      0.659      0.934
    1.0     0.746      0.936      0.619      0.925
    1.2     0.586      0.900      0.399      0.914
    1.5     0.491      0.830      0.345      0.895
    2.0     0.421      0.739      0.281      0.832

At 1.5 a threshold gets about half the Dice (0.49 2D, 0.35 3D) while the
opening still gets 0.83 / 0.90, and the discs are visible by eye. Produced by
``python -m selfsup_medical.datasets.synthetic_seg`` (this module's
``__main__``; about 16 s of CPU).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from selfsup.api import IMAGE2D, VOLUME3D, TaskSpec

from ..images import SPLITS, ImageDataset
from .views import ImageViews, parse_views

NAMES = {2: "medical.synthetic_seg2d", 3: "medical.synthetic_seg3d"}
#: objects per image (later objects overwrite earlier ones where they overlap)
NUM_OBJECTS = 12
#: the default noise level: see the table of the module docstring
DEFAULT_NOISE = 1.5
#: split fractions (train, val, test)
FRACTIONS = (0.6, 0.2, 0.2)
#: histogram bins used to fit thresholds
BINS = 256


def radii(size: int, dims: int) -> tuple[int, int]:
    """``(rad_min, rad_max)`` for images of side ``size`` (see the module docstring)."""
    if dims == 2:
        return max(1, size // 16), max(2, size // 5)
    return max(1, size // 10), max(2, size // 4)


def generate(
    dims: int,
    *,
    n: int,
    size: int,
    n_classes: int,
    noise: float,
    seed: int,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``n`` items ``(image [1, *spatial] float32, label map [*spatial] long)``."""
    from monai.data.synthetic import create_test_image_2d, create_test_image_3d

    rad_min, rad_max = radii(size, dims)
    out = []
    for i in range(n):
        state = np.random.RandomState(np.random.SeedSequence([seed, i]).generate_state(1)[0])
        kwargs: dict[str, Any] = dict(
            num_objs=NUM_OBJECTS,
            rad_max=rad_max,
            rad_min=rad_min,
            noise_max=noise,
            num_seg_classes=n_classes - 1,
            random_state=state,
        )
        if dims == 2:
            image, label = create_test_image_2d(size, size, **kwargs)
        else:
            image, label = create_test_image_3d(size, size, size, **kwargs)
        out.append(
            (
                torch.from_numpy(np.asarray(image, dtype=np.float32))[None],
                torch.from_numpy(np.asarray(label, dtype=np.int64)),
            )
        )
    return out


def split_items(n: int, seed: int) -> dict[str, list[int]]:
    """Indices of the train/val/test splits: a seeded permutation cut 60/20/20."""
    order = np.random.default_rng(seed).permutation(n).tolist()
    n_train = round(FRACTIONS[0] * n)
    n_val = round(FRACTIONS[1] * n)
    cuts = (0, n_train, n_train + n_val, n)
    return {s: order[cuts[j] : cuts[j + 1]] for j, s in enumerate(SPLITS)}


def _check(
    name: str, n: int, what: str, size: int, n_classes: int, noise: float, seed: int, dims: int
) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 5:
        raise ValueError(f"{name}: {what} must be an integer >= 5 (60/20/20 split), got {n!r}")
    smallest = 16 if dims == 2 else 12
    if isinstance(size, bool) or not isinstance(size, int) or size < smallest:
        raise ValueError(f"{name}: size must be an integer >= {smallest}, got {size!r}")
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
        raise ValueError(
            f"{name}: n_classes counts the label values including the background "
            f"and must be an integer >= 2, got {n_classes!r}"
        )
    if (
        isinstance(noise, bool)
        or not isinstance(noise, (int, float))
        or not (math.isfinite(noise) and noise >= 0)
    ):
        raise ValueError(f"{name}: noise must be a finite number >= 0, got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{name}: seed must be an integer >= 0, got {seed!r}")


def _build(
    dims: int,
    what: str,
    n: int,
    size: int,
    n_classes: int,
    noise: float,
    seed: int,
    views: ImageViews,
) -> ImageDataset:
    name = NAMES[dims]
    _check(name, n, what, size, n_classes, noise, seed, dims)
    items = generate(dims, n=n, size=size, n_classes=n_classes, noise=noise, seed=seed)
    labelled = {s: [items[i] for i in idx] for s, idx in split_items(n, seed).items()}
    counts = ", ".join(f"{s} {len(v)}" for s, v in labelled.items())
    return ImageDataset(
        name,
        modality=IMAGE2D if dims == 2 else VOLUME3D,
        pretrain=[x for x, _ in labelled["train"]],
        labelled=labelled,
        task=TaskSpec("segmentation", n_classes),
        views=views,
        source=(
            f"MONAI create_test_image_{dims}d, {n} x {size}^{dims}, {n_classes} label "
            f"values (background included), noise {noise}, seed {seed}; {counts}"
        ),
    )


def build_2d(
    *,
    n_images: int = 200,
    size: int = 64,
    n_classes: int = 3,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """``medical.synthetic_seg2d``: ``n_images`` images ``[1, size, size]`` with label maps."""
    image_views = parse_views(views, NAMES[2])
    return _build(2, "n_images", n_images, size, n_classes, noise, seed, image_views)


def build_3d(
    *,
    n_volumes: int = 40,
    size: int = 32,
    n_classes: int = 3,
    noise: float = DEFAULT_NOISE,
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """``medical.synthetic_seg3d``: ``n_volumes`` volumes ``[1, size, size, size]``."""
    image_views = parse_views(views, NAMES[3])
    return _build(3, "n_volumes", n_volumes, size, n_classes, noise, seed, image_views)


# -- the threshold baseline -----------------------------------------------------------------


def _histograms(items: Sequence[tuple[torch.Tensor, torch.Tensor]], n_classes: int) -> np.ndarray:
    """``[n_classes, BINS]`` voxel counts per class and intensity bin over ``[0, 1]``."""
    hist = np.zeros((n_classes, BINS))
    for image, label in items:
        b = np.clip((image[0].numpy().ravel() * BINS).astype(np.int64), 0, BINS - 1)
        np.add.at(hist, (label.numpy().ravel(), b), 1.0)
    return hist


def _pooled_dice(cum: np.ndarray, cuts: Sequence[int]) -> float:
    """Mean foreground Dice when bins ``[cuts[c-1], cuts[c])`` are labelled ``c``."""
    edges = [0, *cuts, BINS]
    scores = []
    for c in range(1, cum.shape[0]):
        lo, hi = edges[c], edges[c + 1]
        in_c = cum[:, hi] - cum[:, lo]  # voxels of each true class predicted as c
        truth = cum[c, BINS]
        denominator = in_c.sum() + truth
        if denominator > 0:
            scores.append(2.0 * in_c[c] / denominator)
    return float(np.mean(scores)) if scores else 1.0


def fit_thresholds(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]], n_classes: int
) -> np.ndarray:
    """The ``n_classes - 1`` increasing intensity thresholds that maximise the pooled mean
    foreground Dice on ``items`` (voxel ``v`` gets class ``#{thresholds <= v}``).

    Coordinate ascent over bin edges from two starts (multi-Otsu on the pooled
    voxels, and evenly spaced), keeping the better; classes are ordered by
    intensity in MONAI's images, so ordered thresholds are the right family.
    """
    hist = _histograms(items, n_classes)
    cum = np.concatenate([np.zeros((n_classes, 1)), np.cumsum(hist, axis=1)], axis=1)
    k = n_classes - 1
    starts = [[round(BINS * (j + 1) / n_classes) for j in range(k)]]
    try:
        from skimage.filters import threshold_multiotsu

        centres = (np.arange(BINS) + 0.5) / BINS
        otsu = threshold_multiotsu(hist=(hist.sum(0), centres), classes=n_classes)
        starts.append([int(np.ceil(t * BINS)) for t in otsu])
    except ValueError:  # fewer distinct intensities than classes: keep the even start
        pass
    best_cuts, best = starts[0], -1.0
    for cuts in starts:
        cuts = list(cuts)
        score = _pooled_dice(cum, cuts)
        for _ in range(50):
            improved = False
            for j in range(k):
                lo = cuts[j - 1] if j > 0 else 0
                hi = cuts[j + 1] if j + 1 < k else BINS
                for edge in range(lo, hi + 1):
                    trial = [*cuts[:j], edge, *cuts[j + 1 :]]
                    value = _pooled_dice(cum, trial)
                    if value > score + 1e-12:
                        cuts, score, improved = trial, value, True
            if not improved:
                break
        if score > best:
            best_cuts, best = cuts, score
    return np.asarray(best_cuts, dtype=np.float64) / BINS


def dice_per_image(prediction: np.ndarray, label: np.ndarray, n_classes: int) -> float:
    """Mean Dice over foreground classes present in the prediction or the label."""
    scores = []
    for c in range(1, n_classes):
        p, t = prediction == c, label == c
        total = p.sum() + t.sum()
        if total:
            scores.append(2.0 * np.logical_and(p, t).sum() / total)
    return float(np.mean(scores)) if scores else 1.0


def threshold_dice(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]], thresholds: np.ndarray, n_classes: int
) -> float:
    """Mean over ``items`` of the per-image mean foreground Dice of ``thresholds``."""
    scores = []
    for image, label in items:
        prediction = np.searchsorted(thresholds, image[0].numpy(), side="right")
        scores.append(dice_per_image(prediction, label.numpy(), n_classes))
    return float(np.mean(scores))


def opened(
    items: Sequence[tuple[torch.Tensor, torch.Tensor]], width: int = 3
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``items`` with each image grey-opened (minimum then maximum filter, ``width`` wide).

    The context-using counterpart of the threshold: MONAI's noise is a maximum,
    so an object voxel is never darker than its class value while background
    voxels often are; an opening removes the bright noise speckles of the
    background and keeps objects wider than the window.
    """
    from scipy.ndimage import grey_opening

    return [
        (torch.from_numpy(grey_opening(x[0].numpy(), size=(width,) * (x.ndim - 1)))[None], y)
        for x, y in items
    ]


def threshold_baseline(dataset: ImageDataset, *, opening: int = 0) -> float:
    """Test-split mean foreground Dice of thresholds fitted on the train split.

    ``opening``: the width of a grey opening applied first (0: none).
    """
    n_classes = int(dataset.task.n_classes or 2)
    train = list(dataset.labelled_split("train") or [])
    test = list(dataset.labelled_split("test") or [])
    if opening:
        train, test = opened(train, opening), opened(test, opening)
    return threshold_dice(test, fit_thresholds(train, n_classes), n_classes)


def _report() -> None:
    """Print the table of the module docstring."""
    print("noise   2D threshold opened   3D threshold opened")
    for noise in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0):
        d2, d3 = build_2d(noise=noise), build_3d(noise=noise)
        cells = [threshold_baseline(d, opening=w) for d in (d2, d3) for w in (0, 3)]
        print(f"{noise:<5}   " + "   ".join(f"{c:.3f}    " for c in cells))


if __name__ == "__main__":
    _report()
