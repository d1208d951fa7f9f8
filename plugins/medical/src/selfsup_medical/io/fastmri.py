"""fastMRI-style single-coil HDF5 files: :func:`read_fastmri`.

fastMRI (Zbontar et al., "fastMRI: An Open Dataset and Benchmarks for
Accelerated MRI", arXiv:1811.08839): :func:`read_fastmri` reads a single-coil
HDF5 file, ``"kspace"`` complex ``[slices, H, W]`` and, when present, the
reference ``"reconstruction_esc"`` (preferred) or ``"reconstruction_rss"``
``[slices, h, w]``, which fastMRI centre-crops to 320 x 320 (the k-space's image
is ``H x W``, e.g. 640 x 368 with the readout oversampled twice);
:func:`center_crop` is fastMRI's crop, so ``center_crop(|ifft2c(kspace)|, (h, w))``
equals ``reconstruction_esc`` for fastMRI's single-coil files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checks import ImageReadError, first_line

FASTMRI_REFERENCES: tuple[str, ...] = ("reconstruction_esc", "reconstruction_rss")


def fastmri_header(path: str | Path) -> dict[str, Any]:
    """What :func:`read_fastmri` would return, without the arrays: shapes, fields, mask.

    Raises :class:`ImageReadError` naming the file and field for a file that is not
    HDF5, has no complex ``"kspace"`` ``[slices, H, W]``, or whose reference does
    not fit it.
    """
    import h5py

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"no fastMRI file at {str(path)!r} (resolved to {p.resolve()})")
    try:
        fh = h5py.File(p, "r")
    except OSError as err:
        raise ImageReadError(
            f"{p}: not an HDF5 file ({first_line(err)}); fastMRI files are "
            "HDF5 with a 'kspace' dataset"
        ) from err
    with fh:
        if "kspace" not in fh or not isinstance(fh["kspace"], h5py.Dataset):
            raise ImageReadError(
                f"{p}: has no dataset 'kspace' (its fields: {sorted(fh.keys())});"
                " a fastMRI file holds complex k-space [slices, H, W] in 'kspace'"
            )
        ks = fh["kspace"]
        if not np.issubdtype(ks.dtype, np.complexfloating):
            raise ImageReadError(
                f"{p}: field 'kspace' has dtype {ks.dtype}; it must be complex (complex64), "
                "e.g. kspace[..., 0] + 1j * kspace[..., 1] if real and imaginary parts are "
                "stored in a last axis of 2"
            )
        if ks.ndim != 3 or min(ks.shape) == 0:
            hint = (
                " (4 dimensions: multi-coil k-space; combine the coils into one, e.g. "
                "fastMRI's emulated single coil, first)"
                if ks.ndim == 4
                else ""
            )
            raise ImageReadError(
                f"{p}: field 'kspace' has shape {tuple(ks.shape)}; expected "
                f"single-coil [slices, H, W]{hint}"
            )
        shape = tuple(int(s) for s in ks.shape)
        ref_field = next((f for f in FASTMRI_REFERENCES if f in fh), None)
        ref_shape = None
        if ref_field is not None:
            ref = fh[ref_field]
            ref_shape = tuple(int(s) for s in ref.shape)
            if (
                len(ref_shape) != 3
                or ref_shape[0] != shape[0]
                or ref_shape[1] > shape[1]
                or ref_shape[2] > shape[2]
                or min(ref_shape) == 0
            ):
                raise ImageReadError(
                    f"{p}: field {ref_field!r} has shape {ref_shape} but 'kspace' has {shape}; "
                    "a reference must be [slices, h, w] with the k-space's slices and h <= H, "
                    "w <= W (a centre crop of the image)"
                )
        mask = np.asarray(fh["mask"][()], dtype=np.float32).reshape(-1) if "mask" in fh else None
        attrs = {k: _plain(v) for k, v in fh.attrs.items()}
    return {
        "path": p,
        "shape": shape,
        "dtype": str(ks.dtype),
        "reference_field": ref_field,
        "reference_shape": ref_shape,
        "mask": mask,
        "attrs": attrs,
    }


def read_fastmri(path: str | Path) -> dict[str, Any]:
    """Read a fastMRI-style single-coil HDF5 file.

    Returns :func:`fastmri_header`'s dict plus ``"kspace"`` (complex64
    ``[slices, H, W]``) and ``"reference"`` (float32 ``[slices, h, w]`` from
    ``reconstruction_esc``, else ``reconstruction_rss``, else None). The file's
    optional ``"mask"`` (``[W]``, 1 = acquired column: fastMRI's test files are
    already undersampled) is returned as is; see
    :mod:`selfsup_medical.datasets.fastmri` for what the dataset does with it.
    """
    import h5py

    info = fastmri_header(path)
    p = info["path"]
    with h5py.File(p, "r") as fh:
        kspace = np.asarray(fh["kspace"][()], dtype=np.complex64)
        ref = info["reference_field"]
        reference = np.asarray(fh[ref][()], dtype=np.float32) if ref else None
    bad = ~np.isfinite(kspace.view(np.float32))
    if bad.any():
        raise ImageReadError(
            f"{p}: field 'kspace' has {int(bad.sum())} NaN/Inf values (real or imaginary parts)"
        )
    if reference is not None and not np.isfinite(reference).all():
        raise ImageReadError(
            f"{p}: field {ref!r} has {int((~np.isfinite(reference)).sum())} NaN/Inf values"
        )
    if info["mask"] is not None and info["mask"].shape[0] != kspace.shape[-1]:
        raise ImageReadError(
            f"{p}: field 'mask' has {info['mask'].shape[0]} entries but 'kspace' "
            f"has {kspace.shape[-1]} columns"
        )
    return {**info, "kspace": kspace, "reference": reference}


def center_crop(array: Any, shape: tuple[int, int]) -> Any:
    """The centre ``shape`` of the last two axes (fastMRI's ``center_crop``)."""
    h, w = shape
    top = (array.shape[-2] - h) // 2
    left = (array.shape[-1] - w) // 2
    if top < 0 or left < 0:
        raise ValueError(f"center_crop: cannot crop {tuple(array.shape[-2:])} to {shape}")
    return array[..., top : top + h, left : left + w]


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


__all__ = ["FASTMRI_REFERENCES", "center_crop", "fastmri_header", "read_fastmri"]
