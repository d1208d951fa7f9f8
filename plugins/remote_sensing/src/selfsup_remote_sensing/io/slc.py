"""Readers of single-look complex (SLC) SAR images from the user's files.

Each reader returns one complex128 array ``[H, W]`` (rows azimuth, columns range) or
raises :class:`SLCFileError` naming the file and the reason. Formats:

- GeoTIFF / TIFF (``.tif``, ``.tiff``; read with tifffile, georeferencing ignored): a
  complex band (``CFloat32``/``CFloat64``, e.g. SNAP or GDAL exports; complex-integer
  ``CInt16`` as tifffile decodes it), or two float/integer bands (real, imaginary) stored
  as ``[2, H, W]`` pages/planes or ``[H, W, 2]`` samples.
- NumPy ``.npy`` (loaded with ``allow_pickle=False``): a complex ``[H, W]`` array, or a
  real ``[2, H, W]`` / ``[H, W, 2]`` array of real and imaginary parts.
- HDF5 (``.h5``, ``.hdf5``; h5py): datasets ``real`` and ``imag`` of the same shape
  ``[H, W]``, or one complex dataset ``slc``; other names via ``real_key``/``imag_key``/
  ``complex_key``.

Refused, with the file and the reason: an unreadable file or unknown suffix, a
non-numeric or boolean dtype, a real array without a band axis of 2 (an amplitude or
intensity image is not an SLC), the wrong number of dimensions, real and imaginary
parts of different shapes, NaN/Inf values, an image that is all zero, an image smaller
than ``min_size`` pixels along a side. :func:`read_folder` reads every file it knows in a
folder, keeps the good ones and lists the others as ``(file, reason)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
NPY_SUFFIXES = (".npy",)
HDF5_SUFFIXES = (".h5", ".hdf5")
SUFFIXES = TIFF_SUFFIXES + NPY_SUFFIXES + HDF5_SUFFIXES


class SLCFileError(ValueError):
    """A file that does not hold a usable SLC image; the message names the file and why."""


def read_slc(
    path: str | Path,
    *,
    real_key: str = "real",
    imag_key: str = "imag",
    complex_key: str = "slc",
    min_size: int = 8,
) -> np.ndarray:
    """The complex image ``[H, W]`` (complex128) in ``path``; see the module docstring."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in TIFF_SUFFIXES:
            import tifffile

            z = _complex_from_array(np.asarray(tifffile.imread(path)), path)
        elif suffix in NPY_SUFFIXES:
            z = _complex_from_array(np.load(path, allow_pickle=False), path)
        elif suffix in HDF5_SUFFIXES:
            z = _read_hdf5(path, real_key, imag_key, complex_key)
        else:
            raise SLCFileError(f"{path}: unknown suffix {suffix!r}; SLC files are "
                               f"{', '.join(SUFFIXES)}")
    except SLCFileError:
        raise
    except Exception as exc:  # a library's own parse error: name the file
        raise SLCFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from exc
    return check_slc(z, str(path), min_size=min_size)


def check_slc(z: np.ndarray, source: str, *, min_size: int = 8) -> np.ndarray:
    """``z`` as complex128 ``[H, W]`` if it is a usable SLC, else :class:`SLCFileError`."""
    if z.ndim != 2:
        raise SLCFileError(f"{source}: an SLC image is 2-D [H, W], got shape {z.shape}")
    if min(z.shape) < min_size:
        raise SLCFileError(f"{source}: image of shape {z.shape} is smaller than {min_size} "
                           "pixels along a side")
    bad = ~np.isfinite(z)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise SLCFileError(f"{source}: {int(bad.sum())} NaN/Inf pixels, first at {first}; "
                           "mask or fill them before training")
    if not np.any(z):
        raise SLCFileError(f"{source}: the image is all zero")
    return z.astype(np.complex128)


def _complex_from_array(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.size == 0:
        raise SLCFileError(f"{path}: cannot be read as an image (no pixel data: damaged or "
                           "empty file)")
    if arr.dtype.names is not None and len(arr.dtype.names) == 2:  # structured (re, im)
        re, im = (arr[n] for n in arr.dtype.names)
        return _pair(np.asarray(re), np.asarray(im), path)
    if np.iscomplexobj(arr):
        return np.squeeze(arr) if arr.ndim > 2 else arr
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise SLCFileError(f"{path}: dtype {arr.dtype} is not numeric; an SLC is complex, or "
                           "two real bands (real, imaginary)")
    if arr.ndim == 3 and arr.shape[0] == 2:
        return _pair(arr[0], arr[1], path)
    if arr.ndim == 3 and arr.shape[-1] == 2:
        return _pair(arr[..., 0], arr[..., 1], path)
    raise SLCFileError(
        f"{path}: a real array of shape {arr.shape} and dtype {arr.dtype} is not an SLC; "
        "expected a complex [H, W] array or real and imaginary bands [2, H, W] / [H, W, 2] "
        "(an amplitude or intensity image has lost the phase MERLIN needs)"
    )


def _pair(re: Any, im: Any, path: Path) -> np.ndarray:
    re, im = np.asarray(re), np.asarray(im)
    if re.shape != im.shape:
        raise SLCFileError(f"{path}: real part {re.shape} and imaginary part {im.shape} "
                           "differ in shape")
    for part, name in ((re, "real"), (im, "imaginary")):
        if part.dtype == bool or not np.issubdtype(part.dtype, np.number) or np.iscomplexobj(part):
            raise SLCFileError(f"{path}: the {name} part has dtype {part.dtype}; expected a "
                               "real number type")
    return re.astype(np.float64) + 1j * im.astype(np.float64)


def _read_hdf5(path: Path, real_key: str, imag_key: str, complex_key: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        if complex_key in f:
            return _complex_from_array(np.asarray(f[complex_key][()]), path)
        missing = [k for k in (real_key, imag_key) if k not in f]
        if missing:
            raise SLCFileError(f"{path}: no dataset {complex_key!r} and no {missing}; the file "
                               f"has {sorted(f.keys())} (pass real_key/imag_key/complex_key)")
        return _pair(f[real_key][()], f[imag_key][()], path)


def read_folder(root: str | Path, **options: Any) -> tuple[list[tuple[str, np.ndarray]],
                                                           list[tuple[str, str]]]:
    """``([(file name, complex image), ...], [(file, reason), ...])`` for the SLC files of
    ``root`` (sorted by name; files with other suffixes are ignored, sub-folders too)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SLC folder {root} does not exist or is not a folder")
    good: list[tuple[str, np.ndarray]] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        if path.suffix.lower() not in SUFFIXES:
            continue
        try:
            good.append((path.name, read_slc(path, **options)))
        except SLCFileError as exc:
            skipped.append((str(path), str(exc)))
    return good, skipped
