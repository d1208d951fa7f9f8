"""Readers of hyperspectral cubes and ENVI spectral libraries from the user's files.

Cubes come back as float64 ``[bands, H, W]`` with the wavelengths when the file states
them (:class:`Cube`). Formats:

- ENVI raw + header (``name.hdr`` beside ``name``, ``name.img``, ``name.dat``, ``name.raw``
  or ``name.bsq/.bil/.bip``; pass either file): ``data type`` 1, 2, 3, 4, 5, 12, 13, 14,
  15 (the integer and float types; complex types are refused), ``interleave`` bsq, bil or
  bip, ``byte order`` 0 or 1, ``header offset``, ``wavelength`` (nanometres, or
  micrometres with ``wavelength units = Micrometers``, converted to nanometres) and ``data
  ignore value`` (those samples become NaN and are refused as such). An ``ENVI Spectral
  Library`` (``file type``) is read by :func:`read_spectral_library`: ``lines`` spectra of
  ``samples`` bands, with their ``spectra names``.
- GeoTIFF / TIFF (``.tif``, ``.tiff``; tifffile, georeferencing ignored): a ``[bands, H, W]``
  stack of pages (planar) or ``[H, W, bands]`` samples; the axis whose length is not one
  of the two largest is taken as the band axis when ``band_axis`` is not given.

Refused with the file and the reason (:class:`HSIFileError`): a missing header or data
file, a header without ``samples``/``lines``/``bands``/``data type``, an unknown data
type or interleave, a data file whose size does not match the header, a non-numeric or
complex dtype, fewer than 2 bands, NaN/Inf, an all-zero cube. :func:`read_folder` reads
every cube of a folder and lists the refused files with their reasons. Nothing is
downloaded.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ENVI_DTYPES: dict[int, str] = {1: "u1", 2: "i2", 3: "i4", 4: "f4", 5: "f8", 12: "u2", 13: "u4",
                               14: "i8", 15: "u8"}
DATA_SUFFIXES = ("", ".img", ".dat", ".raw", ".bsq", ".bil", ".bip", ".sli")
TIFF_SUFFIXES = (".tif", ".tiff")


class HSIFileError(ValueError):
    """A file that does not hold a usable cube; the message names the file and why."""


@dataclass
class Cube:
    """A hyperspectral cube ``data`` ``[bands, H, W]`` and its wavelengths in nm (or None)."""

    data: np.ndarray
    wavelengths: np.ndarray | None
    path: Path


def parse_envi_header(path: str | Path) -> dict[str, Any]:
    """The fields of an ENVI ``.hdr`` as strings, ``{...}`` lists as lists of strings."""
    path = Path(path)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise HSIFileError(f"{path}: cannot read the ENVI header ({exc})") from None
    if not text.lstrip().startswith("ENVI"):
        raise HSIFileError(f"{path}: not an ENVI header (it must start with 'ENVI')")
    fields: dict[str, Any] = {}
    for match in re.finditer(r"^\s*([^=\n]+?)\s*=\s*(\{[^}]*\}|[^\n]*)", text, re.M):
        key, value = match.group(1).strip().lower(), match.group(2).strip()
        if value.startswith("{"):
            fields[key] = [v.strip() for v in value[1:-1].split(",") if v.strip()]
        else:
            fields[key] = value
    return fields


def _header_and_data(path: Path) -> tuple[Path, Path]:
    if path.suffix.lower() == ".hdr":
        header = path
        stem = path.with_suffix("")
        for suffix in DATA_SUFFIXES:
            candidate = Path(str(stem) + suffix)
            if candidate.is_file():
                return header, candidate
        raise HSIFileError(f"{path}: no data file beside the header (looked for "
                           f"{', '.join(stem.name + s for s in DATA_SUFFIXES)})")
    for header in (Path(str(path) + ".hdr"), path.with_suffix(".hdr")):
        if header.is_file():
            return header, path
    raise HSIFileError(f"{path}: no ENVI header ({path.name}.hdr or {path.stem}.hdr) beside it")


def _int_field(fields: dict[str, Any], key: str, path: Path, default: int | None = None) -> int:
    value = fields.get(key)
    if value is None:
        if default is not None:
            return default
        raise HSIFileError(f"{path}: the ENVI header lacks '{key}'")
    try:
        return int(str(value))
    except ValueError:
        raise HSIFileError(f"{path}: ENVI header field '{key}' is not an integer: "
                           f"{value!r}") from None


def _wavelengths_nm(fields: dict[str, Any]) -> np.ndarray | None:
    raw = fields.get("wavelength")
    if not isinstance(raw, list) or not raw:
        return None
    try:
        w = np.asarray([float(v) for v in raw])
    except ValueError:
        return None
    units = str(fields.get("wavelength units", "")).lower()
    if units.startswith("micro") or units == "um" or (not units and w.max() < 30):
        w = w * 1000.0
    return w


def read_envi_raw(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """``(array [bands, lines, samples] float64, header fields)`` of an ENVI raw file."""
    header, data_path = _header_and_data(Path(path))
    fields = parse_envi_header(header)
    samples, lines = _int_field(fields, "samples", header), _int_field(fields, "lines", header)
    bands = _int_field(fields, "bands", header)
    code = _int_field(fields, "data type", header)
    if code not in ENVI_DTYPES:
        raise HSIFileError(f"{header}: ENVI data type {code} is not supported (complex or "
                           f"unknown); supported: {sorted(ENVI_DTYPES)}")
    order = ">" if _int_field(fields, "byte order", header, 0) == 1 else "<"
    dtype = np.dtype(order + ENVI_DTYPES[code])
    offset = _int_field(fields, "header offset", header, 0)
    interleave = str(fields.get("interleave", "bsq")).lower()
    if interleave not in ("bsq", "bil", "bip"):
        raise HSIFileError(f"{header}: interleave {interleave!r} is not bsq, bil or bip")
    count = samples * lines * bands
    size = data_path.stat().st_size
    if size < offset + count * dtype.itemsize:
        raise HSIFileError(f"{data_path}: {size} bytes, but the header's {bands} bands x "
                           f"{lines} lines x {samples} samples of {dtype.name} need "
                           f"{offset + count * dtype.itemsize}")
    flat = np.fromfile(data_path, dtype=dtype, count=count, offset=offset)
    if interleave == "bsq":
        cube = flat.reshape(bands, lines, samples)
    elif interleave == "bil":
        cube = flat.reshape(lines, bands, samples).transpose(1, 0, 2)
    else:
        cube = flat.reshape(lines, samples, bands).transpose(2, 0, 1)
    out = cube.astype(np.float64)
    ignore = fields.get("data ignore value")
    if ignore is not None:
        with contextlib.suppress(ValueError):
            out[out == float(str(ignore))] = np.nan
    return out, fields


def _check_cube(cube: np.ndarray, path: Path) -> np.ndarray:
    if cube.dtype.kind not in "iuf":
        raise HSIFileError(f"{path}: dtype {cube.dtype} is not a real number type (complex, "
                           f"boolean or text cubes are refused)")
    if cube.ndim != 3 or cube.shape[0] < 2:
        raise HSIFileError(f"{path}: expected a cube [bands >= 2, H, W], got shape "
                           f"{cube.shape}")
    cube = cube.astype(np.float64)
    if not np.isfinite(cube).all():
        raise HSIFileError(f"{path}: the cube holds NaN/Inf (or 'data ignore value') samples")
    if not np.any(cube):
        raise HSIFileError(f"{path}: the cube is all zero")
    return cube


def read_cube(path: str | Path, band_axis: int | None = None) -> Cube:
    """The cube in ``path`` (ENVI or GeoTIFF), ``[bands, H, W]``; see the module docstring."""
    path = Path(path)
    wavelengths = None
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            arr = np.asarray(tifffile.imread(path))
            if arr.ndim == 3:
                axis = band_axis if band_axis is not None else int(np.argmin(arr.shape))
                arr = np.moveaxis(arr, axis, 0)
        else:
            arr, fields = read_envi_raw(path)
            if str(fields.get("file type", "")).lower() == "envi spectral library":
                raise HSIFileError(f"{path}: an ENVI spectral library, not a cube (read it "
                                   "with read_spectral_library)")
            wavelengths = _wavelengths_nm(fields)
    except HSIFileError:
        raise
    except Exception as exc:
        raise HSIFileError(f"{path}: cannot be read ({type(exc).__name__}: {exc})") from None
    cube = _check_cube(arr, path)
    if wavelengths is not None and len(wavelengths) != cube.shape[0]:
        wavelengths = None
    return Cube(cube, wavelengths, path)


def read_spectral_library(path: str | Path) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """``(spectra [n, bands], wavelengths nm or None, names)`` of an ENVI spectral library."""
    arr, fields = read_envi_raw(path)
    spectra = arr[0]  # one band; lines are spectra, samples are wavelengths
    names = fields.get("spectra names")
    names = list(names) if isinstance(names, list) else [str(i) for i in range(len(spectra))]
    if len(names) != len(spectra):
        raise HSIFileError(f"{path}: {len(names)} spectra names for {len(spectra)} spectra")
    if not np.isfinite(spectra).all():
        raise HSIFileError(f"{path}: the library holds NaN/Inf values")
    w = _wavelengths_nm(fields)
    return spectra, (w if w is not None and len(w) == spectra.shape[1] else None), names


def read_folder(root: str | Path, band_axis: int | None = None
                ) -> tuple[list[Cube], list[tuple[str, str]]]:
    """``([cube, ...], [(file, reason), ...])`` for the cubes directly in ``root``, sorted by
    name: each GeoTIFF (``.tif``/``.tiff``) and each ENVI header (``.hdr``, read with its
    data file); an ENVI data file (``.img``, ``.dat``, ``.raw``, ``.bsq``, ``.bil``,
    ``.bip``) without a header beside it is listed as skipped. Other files and sub-folders
    are ignored."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"hyperspectral folder {root} does not exist or is not a folder")
    good: list[Cube] = []
    skipped: list[tuple[str, str]] = []
    for path in sorted(p for p in root.iterdir() if p.is_file()):
        suffix = path.suffix.lower()
        try:
            if suffix in TIFF_SUFFIXES:
                good.append(read_cube(path, band_axis))
            elif suffix == ".hdr":
                path = _header_and_data(path)[1]  # the cube is named by its data file
                good.append(read_cube(path))
            elif suffix in DATA_SUFFIXES[1:]:
                _header_and_data(path)  # refuses a data file without a header; else the
                # header's own entry reads it
        except HSIFileError as exc:
            skipped.append((str(path), str(exc)))
    return good, skipped
