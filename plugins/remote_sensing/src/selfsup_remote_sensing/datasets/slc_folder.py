"""``remote_sensing.slc_folder``: your own single-look complex images from a folder.

Every ``.tif``/``.tiff``, ``.npy``, ``.h5``/``.hdf5`` file directly in ``root`` is read
by :func:`..io.slc.read_slc` (formats and refusals there). A file that cannot be used
is skipped with its reason, kept in ``dataset.skipped`` as ``(file, reason)`` and
reported in one warning; only a folder with nothing usable is an error. Each image
is scaled by :func:`.base.scale_scene` (so its bright end lies near intensity 1, the
range the networks' fixed log-intensity normalisation expects), optionally
re-centred in its spectrum (``recenter=True``: MERLIN's step for sensor data whose
spectrum is off zero Doppler, :func:`..speckle.recenter_spectrum`), and cut into
``patch_size`` patches with ``patch_overlap`` for pretraining. The whole images are the
dataset's ``scenes`` (no reference: the no-reference measures read them). There are
no labelled splits. Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import torch

from ..io.slc import read_folder
from ..speckle import recenter_spectrum
from .base import SLCDataset, patches_of, scale_scene, slc_tensor
from .views import parse_views

NAME = "remote_sensing.slc_folder"


def build(
    *,
    root: str | None = None,
    patch_size: int = 64,
    patch_overlap: int = 32,
    looks: float = 1.0,
    recenter: bool = False,
    real_key: str = "real",
    imag_key: str = "imag",
    complex_key: str = "slc",
    views: Mapping[str, Any] | None = None,
) -> SLCDataset:
    """The folder dataset (see the module docstring); ``looks``: the images' number of looks
    (1 for SLC), used by the no-reference measures."""
    if root is None:
        raise ValueError(f"{NAME}: set root = '<folder of SLC files>' (GeoTIFF, .npy or HDF5)")
    if not isinstance(patch_overlap, int) or not 0 <= patch_overlap < patch_size:
        raise ValueError(f"{NAME}: patch_overlap must be an integer in [0, patch_size), got "
                         f"{patch_overlap!r} with patch_size {patch_size}")
    good, skipped = read_folder(root, real_key=real_key, imag_key=imag_key,
                                complex_key=complex_key, min_size=patch_size)
    if skipped:
        warnings.warn(f"{NAME}: skipped {len(skipped)} file(s): "
                      + "; ".join(reason for _, reason in skipped), stacklevel=2)
    if not good:
        raise ValueError(f"{NAME}: no usable SLC file in {root}"
                         + (f"; skipped: {[r for _, r in skipped]}" if skipped else
                            " (files must end in .tif, .tiff, .npy, .h5 or .hdf5)"))
    scenes: list[tuple[str, torch.Tensor, float]] = []
    for name, z in good:
        slc = slc_tensor(scale_scene(z))
        if recenter:
            slc = recenter_spectrum(slc)
        scenes.append((name, slc, float(looks)))
    pretrain = patches_of([s for _, s, _ in scenes], patch_size, patch_overlap)
    ds = SLCDataset(pretrain=pretrain, scenes=scenes, patch_size=patch_size,
                    views=parse_views(views, NAME),
                    source=f"{len(good)} SLC file(s) from {root}, {len(pretrain)} patches")
    ds.skipped = skipped
    return ds
