"""``medical.ct_denoise``: low-dose CT denoising on real slices shipped in installed wheels.

What the images are, honestly: only three real CT slices ship offline
(pydicom's ``CT_small`` spine slice and two 512x512 head CTs, one of them
lossy JPEG 2000), so the dataset also uses the 86 real MR slices of
:mod:`selfsup_medical.sources` as attenuation maps, plus the Shepp-Logan
phantom in the training split. MR contrast is not CT contrast (no bright
bone, bright fluid in EPI), but the anatomy and its texture are real, and
the noise is simulated with CT physics.

Attenuation maps (units of :func:`selfsup_medical.sources.hu_to_unit`, 1 =
twice water): CT slices ``(HU + 1000) / 2000``; MR slices, scaled to ``[0, 1]``,
times 0.5, so that the brightest tissue attenuates like water; the phantom as
scikit-image gives it (skull 1). Low dose: :func:`selfsup_medical.ct.simulate_low_dose`
with ``photons`` incident counts per detector bin, ``angles`` parallel-beam
projection angles (CT's "views") over 180 degrees, a 30 cm field of view whatever
the image size, and a per-slice seed (``SeedSequence([seed, k])``). Both the low-dose and the
full-dose FBP are divided by the full-dose FBP's 99.9th percentile
(:func:`selfsup_medical.images.scale_unit` with the clean image as reference),
so they share units and the clean image lies in about ``[0, 1]``.

Items: pretraining items are the low-dose FBP images of the train split only
(``[1, size, size]``); labelled items of every split are
``(low-dose FBP, full-dose FBP)``. Splits keep whole source volumes together
(:func:`selfsup_medical.sources.split_by_volume`, independent of ``seed``):
train 61 slices (nilearn's MNI152 T1 template 35, ``anatomical.nii`` 25, the
phantom), val 5 (the three CT slices, ``MR_small``, the abdominal MR), test 24
(``example4d.nii.gz``, brain EPI). The stochastic views
(:mod:`selfsup_medical.datasets.views`, the ``views`` option) apply to pretraining
batches. Changed in 0.2: the number of projection angles, the option ``views`` in
0.1, is ``angles``, since ``views`` now holds the view options of every dataset.

Sanity noise (issue 16): ``noise="ct"`` (default) is the low-dose simulation above.
``noise="gaussian"`` keeps the full-dose FBP images as the clean targets and adds
i.i.d. zero-mean Gaussian noise of standard deviation ``sigma`` (image units) to
them instead: pixel-independent by construction, the setting where the
blind-spot assumption of Noise2Self/Noise2Void holds. ``noise="correlated"`` adds
the same Gaussian noise blurred by a Gaussian kernel of standard deviation
``correlation`` pixels and rescaled to standard deviation ``sigma``: spatially
correlated by construction (neighbouring pixels' noise correlates at about
``exp(-1 / (4 correlation^2))``), the setting C-BSN is built for. ``photons`` and
``angles`` only matter for ``"ct"``; the noise is drawn per slice from
``SeedSequence([seed, k])`` as the dose is.

Measured low-dose PSNR (dB) against the full-dose FBP (data range 1, mean over
each split, 128x128, 180 angles, seed 0)::

    photons   test   val    train
    1e5       43.3   39.3   39.7
    1e4       33.3   29.2   29.7
    1e3       23.3   19.6   19.5

The test slices (a brain EPI volume with no skull, halved) attenuate least;
the train volume ``anatomical.nii`` and ``CT_small`` fill the whole square
with tissue, so their longest rays keep only a few photons at 1e4 (about 45
and 3 expected counts) and show streaks. Produced by
``python -m selfsup_medical.datasets.ct`` (this module's ``__main__``; about
35 s of CPU, most of it the 90 Radon transforms, which are cached per
``(image_size, angles)`` across doses and seeds).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from selfsup.api import IMAGE2D, TaskSpec

from ..ct import CTGeometry, clean_projection, low_dose
from ..evaluators.restoration import psnr
from ..images import ImageDataset, scale_unit
from ..sources import Slice, anatomical_records, phantom_record, split_by_volume
from .views import parse_views

NAME = "medical.ct_denoise"
#: MR intensities (scaled to [0, 1]) times this are attenuation maps: brightest tissue = water
MR_ATTENUATION = 0.5

Projection = tuple[int, np.ndarray, torch.Tensor]


def attenuation(record: Slice) -> torch.Tensor:
    """The attenuation map ``[1, H, W]`` (``hu_to_unit`` units) of one source slice."""
    if record.modality == "MR":
        return scale_unit(record.image) * MR_ATTENUATION
    return record.image.float()  # CT in hu_to_unit units; the phantom as given


def _check_options(photons: float, image_size: int, seed: int, angles: int) -> None:
    if (
        isinstance(photons, bool)
        or not isinstance(photons, (int, float))
        or not (math.isfinite(photons) and photons > 0)
    ):
        raise ValueError(
            f"{NAME}: photons (incident counts per detector bin) must be a finite "
            f"number > 0, e.g. 1e4 (low dose) or 1e3 (very low), got {photons!r}"
        )
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"{NAME}: image_size must be an integer >= 16, got {image_size!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{NAME}: seed must be an integer >= 0, got {seed!r}")
    if isinstance(angles, bool) or not isinstance(angles, int) or angles < 8:
        raise ValueError(f"{NAME}: angles must be an integer >= 8, got {angles!r}")


@functools.lru_cache(maxsize=2)
def clean_projections(image_size: int, angles: int) -> dict[str, tuple[Projection, ...]]:
    """``split -> (slice number, noise-free sinogram, full-dose FBP), ...``, cached.

    The Radon transforms are the slow part and do not depend on dose or seed.
    """
    geometry = CTGeometry(views=angles)
    records = [*anatomical_records(image_size), phantom_record(image_size)]
    position = {(r.volume, r.index): k for k, r in enumerate(records)}
    return {
        split: tuple(
            (position[(r.volume, r.index)], *clean_projection(attenuation(r), geometry))
            for r in items
        )
        for split, items in split_by_volume(records).items()
    }


def synthetic_noise(
    shape: tuple[int, ...], *, sigma: float, correlation: float, seed: int
) -> torch.Tensor:
    """Zero-mean Gaussian noise of standard deviation ``sigma``, i.i.d. when
    ``correlation`` is 0, else white noise blurred by a Gaussian of standard deviation
    ``correlation`` pixels (wrap-around borders, so every pixel has the same
    statistics) and rescaled to ``sigma``."""
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(shape)
    if correlation > 0:
        from scipy.ndimage import gaussian_filter

        axes = tuple(range(1, len(shape)))  # not across channels
        white = gaussian_filter(white, sigma=correlation, mode="wrap", axes=axes)
        # the blurred field's standard deviation is known exactly: sum of squared weights
        delta = np.zeros(shape[1:])
        delta[tuple(0 for _ in axes)] = 1.0
        white /= np.sqrt((gaussian_filter(delta, sigma=correlation, mode="wrap") ** 2).sum())
    return torch.from_numpy(sigma * white).float()


def pairs(
    *,
    photons: float,
    image_size: int,
    seed: int,
    angles: int = 180,
    noise: str = "ct",
    sigma: float = 0.05,
    correlation: float = 1.0,
) -> dict[str, list[tuple[torch.Tensor, torch.Tensor]]]:
    """``split -> [(noisy image, full-dose FBP), ...]``, both ``[1, size, size]``; the
    noisy image is the low-dose FBP (``noise="ct"``) or the full-dose FBP plus
    synthetic noise (``"gaussian"``, ``"correlated"``: see the module docstring)."""
    _check_options(photons, image_size, seed, angles)
    _check_noise(noise, sigma, correlation)
    geometry = CTGeometry(views=angles)
    out: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    for split, items in clean_projections(image_size, angles).items():
        out[split] = []
        for k, sinogram, full in items:
            state = int(np.random.SeedSequence([seed, k]).generate_state(1)[0])
            clean = scale_unit(full)
            if noise == "ct":
                low = low_dose(sinogram, full, photons=photons, seed=state, geometry=geometry)
                noisy = scale_unit(low, reference=full)
            else:
                width = correlation if noise == "correlated" else 0.0
                noisy = clean + synthetic_noise(
                    tuple(clean.shape), sigma=sigma, correlation=width, seed=state
                )
            out[split].append((noisy, clean))
    return out


NOISES = ("ct", "gaussian", "correlated")


def _check_noise(noise: str, sigma: float, correlation: float) -> None:
    if noise not in NOISES:
        raise ValueError(f"{NAME}: noise must be one of {list(NOISES)}, got {noise!r}")
    for name, value in (("sigma", sigma), ("correlation", correlation)):
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not (math.isfinite(value) and value > 0)
        ):
            raise ValueError(f"{NAME}: {name} must be a finite number > 0, got {value!r}")


def build(
    *,
    photons: float = 1e4,
    image_size: int = 128,
    seed: int = 0,
    angles: int = 180,
    noise: str = "ct",
    sigma: float = 0.05,
    correlation: float = 1.0,
    views: Mapping[str, Any] | None = None,
) -> ImageDataset:
    """The ``medical.ct_denoise`` dataset (see the module docstring); ``angles``:
    projection angles; ``noise``/``sigma``/``correlation``: the sanity noises;
    ``views``: the view options (:func:`.views.parse_views`)."""
    image_views = parse_views(views, NAME)
    labelled = pairs(photons=photons, image_size=image_size, seed=seed, angles=angles,
                     noise=noise, sigma=sigma, correlation=correlation)
    counts = ", ".join(f"{k} {len(v)}" for k, v in labelled.items())
    return ImageDataset(
        NAME,
        modality=IMAGE2D,
        pretrain=[low for low, _ in labelled["train"]],
        labelled=labelled,
        task=TaskSpec("dense"),
        views=image_views,
        source=(
            (f"i.i.d. Gaussian noise (sigma {sigma:g}) on full-dose FBP images of "
             if noise == "gaussian" else
             f"Gaussian noise (sigma {sigma:g}) blurred by a {correlation:g}-pixel Gaussian "
             "on full-dose FBP images of " if noise == "correlated" else "")
            + f"low-dose CT simulated at {photons:g} photons/bin, {angles} angles, on real "
            f"CT (3) and MR (86) slices shipped in pydicom/nibabel/nilearn + the Shepp-Logan "
            f"phantom (train), {image_size}x{image_size}; slices per split: {counts}"
        ),
    )


def _report(image_size: int = 128, seed: int = 0) -> None:
    """Print the low-dose PSNR table of the module docstring."""
    print("photons   " + "   ".join(f"{s:>5}" for s in ("test", "val", "train")))
    for photons in (1e5, 1e4, 1e3):
        data = pairs(photons=photons, image_size=image_size, seed=seed)
        means = [
            np.mean([psnr(lo.numpy(), hi.numpy()) for lo, hi in data[s]])
            for s in ("test", "val", "train")
        ]
        print(f"{photons:<8g}  " + "   ".join(f"{m:5.1f}" for m in means))


if __name__ == "__main__":
    _report()
