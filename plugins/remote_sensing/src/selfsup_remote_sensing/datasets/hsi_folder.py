"""``remote_sensing.hsi_folder``: your own hyperspectral cubes from a folder.

Every GeoTIFF (``.tif``/``.tiff``) and ENVI cube (``.hdr`` with its data file) directly in
``root`` is read by :func:`..io.hsi.read_folder` (formats and refusals in
:mod:`..io.hsi`). A file that cannot be used is skipped with its reason, kept in
``dataset.skipped`` as ``(file, reason)`` and reported in one warning: an unreadable or
refused file, a cube smaller than ``patch_size``, and a cube whose band count differs
from the folder's most common one (the networks take a fixed number of bands). Only a
folder with nothing usable is an error.

Each cube is divided by its largest value (so it lies at most at 1, the range of the
synthetic cubes the networks are sized for; relative reflectances are kept) and becomes
a sample ``[2, bands, H, W]`` (the cube and an all-ones observation mask: every band is
taken as observed). Pretraining items are ``patch_size`` patches with ``patch_overlap``.
The whole samples are ``dataset.cubes`` as ``(file name, sample)``, the wavelengths (nm) of
the first cube that states them ``dataset.wavelengths`` (else None). There is no clean
reference, so no labelled split: pretexts (``remote_sensing.noise2self_hsi``) train on it,
and a trained model restores ``cubes``; the ``remote_sensing.hsi`` evaluator needs a
reference and does not apply. Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np
import torch

from selfsup.api import TaskSpec

from ..io.hsi import read_folder
from ..tiling import tile
from .hsi_synthetic import HSIDataset

NAME = "remote_sensing.hsi_folder"


def build(
    *,
    root: str | None = None,
    patch_size: int = 32,
    patch_overlap: int = 16,
    band_axis: int | None = None,
) -> HSIDataset:
    """The folder dataset (see the module docstring); ``band_axis``: the band axis of the
    GeoTIFFs (None: the shortest axis)."""
    if root is None:
        raise ValueError(f"{NAME}: set root = '<folder of hyperspectral cubes>' (ENVI or "
                         "GeoTIFF)")
    if isinstance(patch_size, bool) or not isinstance(patch_size, int) or patch_size < 4:
        raise ValueError(f"{NAME}: patch_size must be an integer >= 4, got {patch_size!r}")
    if not isinstance(patch_overlap, int) or not 0 <= patch_overlap < patch_size:
        raise ValueError(f"{NAME}: patch_overlap must be an integer in [0, patch_size), got "
                         f"{patch_overlap!r} with patch_size {patch_size}")
    cubes, skipped = read_folder(root, band_axis=band_axis)
    sized = []
    for cube in cubes:
        if min(cube.data.shape[1:]) < patch_size:
            skipped.append((str(cube.path), f"{cube.path}: {cube.data.shape[1]}x"
                            f"{cube.data.shape[2]} pixels, smaller than patch_size "
                            f"{patch_size}"))
        else:
            sized.append(cube)
    bands = Counter(c.data.shape[0] for c in sized).most_common(1)[0][0] if sized else 0
    kept = []
    for cube in sized:
        if cube.data.shape[0] != bands:
            skipped.append((str(cube.path), f"{cube.path}: {cube.data.shape[0]} bands, the "
                            f"folder's cubes have {bands}"))
        else:
            kept.append(cube)
    skipped.sort()
    if skipped:
        warnings.warn(f"{NAME}: skipped {len(skipped)} file(s): "
                      + "; ".join(reason for _, reason in skipped), stacklevel=2)
    if not kept:
        raise ValueError(f"{NAME}: no usable cube in {root}"
                         + (f"; skipped: {[r for _, r in skipped]}" if skipped else
                            " (cubes are .tif/.tiff files or ENVI .hdr headers with data)"))
    samples: list[tuple[str, torch.Tensor]] = []
    for cube in kept:
        data = cube.data / float(np.abs(cube.data).max())
        stacked = np.stack([data, np.ones_like(data)]).astype(np.float32)
        samples.append((cube.path.name, torch.from_numpy(stacked)))
    pretrain: list[torch.Tensor] = []
    for _, sample in samples:
        flat = sample.flatten(0, 1)  # tile [C, H, W], then back to [2, bands, P, P]
        pretrain += [p.reshape(2, -1, *p.shape[-2:]).contiguous()
                     for p in tile(flat, patch_size, patch_overlap)[0]]
    wavelengths = next((c.wavelengths for c in kept if c.wavelengths is not None), None)
    ds = HSIDataset(pretrain, {}, wavelengths,
                    source=f"{len(kept)} {bands}-band cube(s) from {root}, {len(pretrain)} "
                           f"patches of {patch_size}")
    ds.task = TaskSpec("none")
    ds.cubes = samples
    ds.skipped = skipped
    return ds
