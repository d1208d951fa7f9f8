"""``medical.mri_recon``: single-coil MRI reconstruction from simulated undersampling.

Images: the real MR and CT slices that ship inside installed wheels
(:mod:`selfsup_medical.sources`: 89 slices from 8 source volumes) plus the
Shepp-Logan phantom in the training split only (a phantom alone would flatter
total-variation methods, so it is never validated or tested on). Every image
is ``[1, size, size]``, divided by its 99.9th percentile
(:func:`selfsup_medical.images.scale_unit`).

Each slice becomes a complex image ``m exp(i phi)``: ``m`` the magnitude image
and, with ``smooth_phase=True`` (the default), ``phi`` a smooth random phase
``c0 + c1 x + c2 y + c3 x^2 + c4 xy + c5 y^2`` on ``x, y in [-1, 1]`` with
``c0 ~ U(-pi, pi)``, ``c1, c2 ~ U(-pi/2, pi/2)`` (a k-space shift of at most half
a line) and ``c3..c5 ~ U(-pi/4, pi/4)``. Real MR images carry such a phase
(B0 inhomogeneity, coil and receiver phase); without it the k-space of a real
image is conjugate-symmetric, and a method could fill the missing lines from
the mirrored ones, which is not possible on scanner data. The reference stays
the magnitude ``m``.

Acquisition: :func:`selfsup_medical.kspace.simulate_scan` with a per-slice seed
(``SeedSequence([seed, k])``, ``k`` the slice's position in the source list):
a Cartesian column mask (``"random"`` or ``"equispaced"`` with a fully-sampled
centre of ``center_fraction`` of the columns; ``1/acceleration`` of the columns
sampled) and, when ``snr_db`` is set, complex Gaussian noise on the sampled
k-space.

Splits: whole source volumes (:func:`selfsup_medical.sources.split_by_volume`;
slices of one volume never cross splits); the assignment does not depend on
``seed``, which draws only the masks, noise and phases. With the shipped
sources that gives train 61 slices (nilearn's MNI152 T1 template, 35;
``anatomical.nii``, 25; the phantom), val 5 (three CT slices, ``MR_small`` and
the abdominal MR), test 24
(``example4d.nii.gz``, a brain EPI volume at its native 128x96 resolution).
Exact 60/20/20 would need splitting a volume. Pretraining scans are the train
split's; ``n_supervised`` of them (chosen with ``seed``) keep their
fully-sampled reference (``has_target`` True), the others carry zeros.
Labelled items of every split are ``(scan, magnitude [1, H, W])``.

``split="matched"`` (a sanity setting, issue 16) instead deals the slices of the
training volumes (the MNI152 template and ``anatomical.nii``) out by slice index:
index ``% 5 == 2`` to test, ``% 5 == 4`` to val, the rest (and the phantom) to
train (37 / 12 / 12 slices), so that training and test scans come from the same
anatomy, contrast and resolution (neighbouring slices of one volume look alike: a
matched, optimistic setting, not a generalisation test).

Batch layout: :mod:`selfsup_medical.kspace`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..images import scale_unit
from ..kspace import MASKS, KSpaceDataset, simulate_scan
from ..sources import (
    PHANTOM,
    Slice,
    anatomical_records,
    phantom_record,
    split_by_volume,
)

NAME = "medical.mri_recon"


def random_phase(size: int, rng: np.random.Generator) -> torch.Tensor:
    """A random smooth phase map ``[size, size]`` in radians (see the module docstring)."""
    axis = np.linspace(-1.0, 1.0, size)
    y, x = np.meshgrid(axis, axis, indexing="ij")
    bounds = np.array([math.pi, math.pi / 2, math.pi / 2, math.pi / 4, math.pi / 4, math.pi / 4])
    c = rng.uniform(-bounds, bounds)
    phi = c[0] + c[1] * x + c[2] * y + c[3] * x**2 + c[4] * x * y + c[5] * y**2
    return torch.from_numpy(phi).float()


def slice_seed(seed: int, k: int) -> int:
    """An independent 31-bit seed for slice ``k`` of a dataset drawn with ``seed``."""
    return int(np.random.SeedSequence([seed, k]).generate_state(1)[0] >> 1)


def _check_options(
    acceleration: int,
    mask: str,
    n_supervised: int,
    image_size: int,
    snr_db: float | None,
    seed: int,
) -> None:
    if isinstance(acceleration, bool) or not isinstance(acceleration, int) or acceleration < 1:
        raise ValueError(f"{NAME}: acceleration must be an integer >= 1, got {acceleration!r}")
    if mask not in MASKS:
        raise ValueError(f"{NAME}: mask={mask!r} is not one of {list(MASKS)}")
    if isinstance(n_supervised, bool) or not isinstance(n_supervised, int) or n_supervised < 0:
        raise ValueError(f"{NAME}: n_supervised must be an integer >= 0, got {n_supervised!r}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 16:
        raise ValueError(f"{NAME}: image_size must be an integer >= 16, got {image_size!r}")
    if snr_db is not None and (
        isinstance(snr_db, bool)
        or not isinstance(snr_db, (int, float))
        or not math.isfinite(snr_db)
    ):
        raise ValueError(
            f"{NAME}: snr_db must be a finite number (dB) or None for no noise, got {snr_db!r}"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{NAME}: seed must be an integer >= 0, got {seed!r}")


SPLIT_KINDS = ("volumes", "matched")


def matched_split(train: list[Slice]) -> dict[str, list[Slice]]:
    """The training volumes' slices dealt out by index (see ``split="matched"``)."""
    out: dict[str, list[Slice]] = {"train": [], "val": [], "test": []}
    for record in train:
        if record.volume == PHANTOM:
            out["train"].append(record)
            continue
        out[{2: "test", 4: "val"}.get(record.index % 5, "train")].append(record)
    return out


def build(
    *,
    acceleration: int = 4,
    mask: str = "random",
    center_fraction: float = 0.08,
    snr_db: float | None = None,
    n_supervised: int = 0,
    image_size: int = 128,
    seed: int = 0,
    smooth_phase: bool = True,
    split: str = "volumes",
) -> KSpaceDataset:
    """The ``medical.mri_recon`` dataset (see the module docstring); ``split``:
    ``"volumes"`` (whole source volumes) or ``"matched"`` (interleaved slices)."""
    _check_options(acceleration, mask, n_supervised, image_size, snr_db, seed)
    if split not in SPLIT_KINDS:
        raise ValueError(f"{NAME}: split must be one of {list(SPLIT_KINDS)}, got {split!r}")
    records = [*anatomical_records(image_size), phantom_record(image_size)]
    position = {(r.volume, r.index): k for k, r in enumerate(records)}
    splits = split_by_volume(records)
    if split == "matched":
        splits = matched_split(splits["train"])

    def scan(record: Slice) -> dict[str, torch.Tensor]:
        k = position[(record.volume, record.index)]
        magnitude = scale_unit(record.image)
        image = magnitude.to(torch.complex64)
        if smooth_phase:
            rng = np.random.default_rng(np.random.SeedSequence([seed, k, 1]))
            image = magnitude * torch.exp(1j * random_phase(image_size, rng))
        out = simulate_scan(
            image,
            kind=mask,
            acceleration=acceleration,
            center_fraction=center_fraction,
            snr_db=snr_db,
            seed=slice_seed(seed, k),
        )
        out["target"] = magnitude.float()  # the exact magnitude, not |m exp(i phi)| rounded
        return out

    labelled = {
        split: [(s, s["target"].clone()) for s in map(scan, items)]
        for split, items in splits.items()
    }
    train = labelled["train"]
    if n_supervised > len(train):
        raise ValueError(
            f"{NAME}: n_supervised={n_supervised} exceeds the {len(train)} training scans; lower it"
        )
    keep = set(np.random.default_rng(seed).permutation(len(train))[:n_supervised].tolist())
    pretrain = []
    for i, (s, _) in enumerate(train):
        supervised = i in keep
        pretrain.append(
            {
                **s,
                "target": s["target"] if supervised else torch.zeros_like(s["target"]),
                "has_target": torch.tensor(supervised),
            }
        )
    counts = ", ".join(f"{k} {len(v)}" for k, v in labelled.items())
    return KSpaceDataset(
        NAME,
        pretrain=pretrain,
        labelled=labelled,
        source=(
            f"real MR/CT slices shipped in pydicom, nibabel (+ Shepp-Logan phantom in "
            f"train), {image_size}x{image_size}, {mask} mask {acceleration}x, centre "
            f"{center_fraction}, snr_db {snr_db}; {split} split, slices per split: {counts}; "
            f"{n_supervised} supervised pretraining scans"
        ),
    )
