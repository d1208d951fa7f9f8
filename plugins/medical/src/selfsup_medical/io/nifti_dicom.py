"""Reading one NIfTI file, DICOM file or DICOM series folder: :func:`read_image`.

Images go through MONAI's ``LoadImage`` (Cardoso et al., "MONAI: An open-source
framework for deep learning in healthcare", arXiv:2211.02701) with nibabel for
NIfTI (``.nii``, ``.nii.gz``) and pydicom for DICOM (single files, multi-frame
files, and a folder holding the slices of one series, stacked in MONAI's order:
by ``InstanceNumber`` / ``ImagePositionPatient``, rescale slope and intercept
applied, so CT comes out in Hounsfield units). :func:`read_image` returns a
channel-first float32 array ``[C, *spatial]``: ``[C, X, Y]`` for a 2D image,
``[C, X, Y, Z]`` for a volume, in MONAI's axis order (NIfTI voxel axes; for DICOM
columns, rows, slices), so the last axis of a volume is the slice (axial) axis.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import defaultdict
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..images import ImageDataError, check_image
from .checks import ImageReadError, first_line

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".ima")
SUPPORTED = (
    "NIfTI files (.nii, .nii.gz), DICOM files (.dcm, .dicom, .ima, or any file with "
    "the DICM marker) and DICOM series (a folder of one series' slices)"
)


def read_image(
    path: str | Path,
    *,
    spatial_dims: int | None = None,
    files: Sequence[str | Path] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one NIfTI file, DICOM file or DICOM series folder as ``[C, *spatial]`` float32.

    ``spatial_dims``: 2 or 3 to require that many spatial axes; None accepts 2D
    images and 3D volumes. ``files``: for a series folder, the slice files to
    stack (default: every DICOM file in it, which must be one series). The array
    is checked with :func:`~selfsup_medical.images.check_image` (dimensions, zero
    extent, NaN/Inf), whose error names the file.

    ``meta``: ``path``, ``format`` (``"nifti"``, ``"dicom"``, ``"dicom_series"``),
    ``affine`` (voxel to RAS millimetres, ``[d+1, d+1]``), ``spacing`` (mm per
    spatial axis), ``files`` (the files read), ``header`` (MONAI's full meta dict).
    """
    if spatial_dims is not None and spatial_dims not in (2, 3):
        raise ValueError(f"read_image: spatial_dims must be 2, 3 or None, got {spatial_dims!r}")
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"no image at {str(path)!r} (resolved to {p.resolve()}); "
            f"pass a path to one of: {SUPPORTED}"
        )
    if p.is_dir():
        fmt = "dicom_series"
        series = list(files) if files is not None else _series_files(p)
        slices = [Path(f) for f in series]
    else:
        fmt = image_format(p) or ""
        if not fmt:
            raise ImageReadError(
                f"{p}: not a supported image format (suffix "
                f"{suffix_of(p) or 'none'!r}, no DICOM marker); supported: "
                f"{SUPPORTED}"
            )
        slices = [p]
    array, header = _load(p, fmt, slices)
    if spatial_dims is None and array.ndim not in (3, 4):
        raise ImageDataError(
            f"{p}: image has shape {tuple(array.shape)} ({array.ndim} "
            "dimensions); expected [C, H, W] or [C, D, H, W]"
        )
    check_image(array, source=str(p), spatial_dims=spatial_dims or array.ndim - 1)
    meta = {
        "path": p,
        "format": fmt,
        "files": slices,
        "header": header,
        **_geometry(header, array.ndim - 1),
    }
    return array, meta


def image_format(path: Path) -> str | None:
    """``"nifti"``, ``"dicom"`` or None for a file, by its name (and DICOM marker)."""
    name = path.name.lower()
    if name.endswith(NIFTI_SUFFIXES):
        return "nifti"
    if name.endswith(DICOM_SUFFIXES) or _has_dicom_marker(path):
        return "dicom"
    return None


def suffix_of(path: Path) -> str:
    """The file's suffix in lower case, ``.nii.gz`` counted as one."""
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _has_dicom_marker(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def _series_files(folder: Path) -> list[Path]:
    files = [f for f in sorted(folder.iterdir()) if f.is_file() and image_format(f) == "dicom"]
    if not files:
        raise ImageReadError(
            f"{folder}: a folder is read as a DICOM series, but it holds no "
            f"DICOM files; supported: {SUPPORTED}"
        )
    groups = group_series(files)
    if len(groups) > 1:
        raise ImageReadError(
            f"{folder}: holds {len(groups)} DICOM series (SeriesInstanceUID "
            f"{', '.join(sorted(groups))[:200]}); put each series in its own folder, or pass "
            "files= to read one"
        )
    return files


def group_series(files: Sequence[Path]) -> dict[str, list[Path]]:
    """DICOM files by ``SeriesInstanceUID`` (a file without one, or unreadable, is its own)."""
    import pydicom

    groups: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        try:
            ds = pydicom.dcmread(
                f, stop_before_pixels=True, specific_tags=["SeriesInstanceUID"], force=True
            )
            uid = str(getattr(ds, "SeriesInstanceUID", "") or f"file:{f.name}")
        except Exception:  # read properly (and reported) when the file itself is loaded
            uid = f"file:{f.name}"
        groups[uid].append(f)
    return dict(groups)


@contextlib.contextmanager
def _quiet_monai_setup() -> Iterator[None]:
    """Hide MONAI's notices that the optional GPU DICOM decoder (nvImageCodec) is absent."""
    plugin_log = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")

    def drop(record: logging.LogRecord) -> bool:
        return "nvImageCodec" not in record.getMessage()

    plugin_log.addFilter(drop)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            yield
    finally:
        plugin_log.removeFilter(drop)


@lru_cache(maxsize=1)
def _loader() -> Any:
    """One ``LoadImage`` per process: building it registers (and probes) all MONAI readers."""
    with _quiet_monai_setup():
        from monai.transforms import LoadImage

        return LoadImage(image_only=False, ensure_channel_first=True, dtype=np.float32)


def _load(path: Path, fmt: str, files: Sequence[Path]) -> tuple[np.ndarray, dict[str, Any]]:
    """MONAI ``LoadImage`` with the reader chosen by format, so a failure shows its real cause."""
    from monai.data import NibabelReader, PydicomReader

    if fmt == "nifti":
        reader: Any = NibabelReader()
    else:
        # only the files we identified (MONAI would otherwise take every file in a folder);
        # matched on the base name so that any spelling of the folder path works
        names = "|".join(re.escape(f.name) for f in files)
        reader = PydicomReader(fname_regex=rf"(?s).*[\\/](?:{names})$")
    try:
        image, header = _loader()(str(path), reader=reader)
    except Exception as err:  # the readers raise a zoo of types; all mean "cannot read this"
        what = {"nifti": "NIfTI", "dicom": "DICOM", "dicom_series": "DICOM series"}[fmt]
        raise ImageReadError(
            f"{path}: could not be read as {what} ({type(err).__name__}: "
            f"{first_line(err)}); supported: {SUPPORTED}"
        ) from err
    array = np.ascontiguousarray(np.asarray(image, dtype=np.float32))
    return array, dict(header)


def _geometry(header: dict[str, Any], dims: int) -> dict[str, Any]:
    """Affine and voxel spacing from MONAI's meta; identity and 1 mm when absent or broken."""
    affine = np.eye(dims + 1)
    raw = header.get("affine")
    if raw is not None:
        a = np.asarray(raw, dtype=np.float64)
        if a.ndim == 2 and a.shape[0] == a.shape[1] and a.shape[0] >= dims + 1:
            affine = a[: dims + 1, : dims + 1] if a.shape[0] == dims + 1 else _sub_affine(a, dims)
    spacing = np.sqrt((affine[:dims, :dims] ** 2).sum(axis=0))
    spacing = np.where(np.isfinite(spacing) & (spacing > 0), spacing, 1.0)
    return {"affine": affine, "spacing": tuple(float(s) for s in spacing)}


def _sub_affine(a: np.ndarray, dims: int) -> np.ndarray:
    out = np.eye(dims + 1)
    out[:dims, :dims] = a[:dims, :dims]
    out[:dims, dims] = a[:dims, -1]
    return out
