"""Readers for your own medical images: NIfTI, DICOM, DICOM series and fastMRI HDF5.

Images go through MONAI's ``LoadImage`` (Cardoso et al., "MONAI: An open-source
framework for deep learning in healthcare", arXiv:2211.02701) with nibabel for
NIfTI (``.nii``, ``.nii.gz``) and pydicom for DICOM (single files, multi-frame
files, and a folder holding the slices of one series, stacked in MONAI's order:
by ``InstanceNumber`` / ``ImagePositionPatient``, rescale slope and intercept
applied, so CT comes out in Hounsfield units). :func:`read_image` returns a
channel-first float32 array ``[C, *spatial]``: ``[C, X, Y]`` for a 2D image,
``[C, X, Y, Z]`` for a volume, in MONAI's axis order (NIfTI voxel axes; for DICOM
columns, rows, slices), so the last axis of a volume is the slice (axial) axis.

:func:`scan_folder` reads every image under a folder (recursively), pairs label
maps by name, and *skips* what it cannot use, with the reason, so that one bad
file does not stop a folder run. Which files are images:

- ``*.nii`` and ``*.nii.gz`` are NIfTI images;
- ``*.dcm``, ``*.dicom``, ``*.ima`` and any file with the DICOM ``DICM`` marker
  (names without a suffix, or UID-like names such as ``1.2.840.113619.2.1``) are
  DICOM; the DICOM files of one folder that share a ``SeriesInstanceUID`` are one
  series (one volume). A folder whose files each have their own series (a folder
  of 2D radiographs) gives one image per file; a folder that mixes several
  multi-file series is skipped (put each series in its own folder);
- sidecar files (``.json``, ``.txt``, ``.csv``, ``.bval``, ...), hidden files and
  ``DICOMDIR`` are ignored; any other file is skipped as "not NIfTI or DICOM".

Label maps are paired by name (:func:`label_name_matches`): an image named ``S``
(the file name without ``.nii.gz`` / ``.nii`` / ``.dcm``, or a series folder's
name) takes the label map named ``S``, ``S_seg``, ``S_label``, ``S_labels``,
``S_mask`` or ``S_gt`` in the ``labels`` folder, and an nnU-Net-style image
``S_0000`` also takes ``S``. ``labels`` may be the images' folder itself: then the
files named like another image's label map are label maps, not images. A label
map must have one channel, finite non-negative integer values and its image's
spatial shape, voxel for voxel; images without a label map are kept (unlabelled).

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

import contextlib
import logging
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .images import ImageDataError, check_image

log = logging.getLogger(__name__)

NIFTI_SUFFIXES: tuple[str, ...] = (".nii.gz", ".nii")
DICOM_SUFFIXES: tuple[str, ...] = (".dcm", ".dicom", ".ima")
#: files next to images that are not images (BIDS sidecars, notes, diffusion tables)
SIDECAR_SUFFIXES: frozenset[str] = frozenset(
    {
        ".json",
        ".txt",
        ".md",
        ".csv",
        ".tsv",
        ".xml",
        ".log",
        ".yaml",
        ".yml",
        ".bval",
        ".bvec",
        ".pdf",
        ".html",
    }
)
LABEL_SUFFIXES: tuple[str, ...] = ("_seg", "_label", "_labels", "_mask", "_gt")
SUPPORTED = (
    "NIfTI files (.nii, .nii.gz), DICOM files (.dcm, .dicom, .ima, or any file with "
    "the DICM marker) and DICOM series (a folder of one series' slices)"
)
FASTMRI_REFERENCES: tuple[str, ...] = ("reconstruction_esc", "reconstruction_rss")


class ImageReadError(ImageDataError):
    """A file that is not a readable image of a supported format."""


class Skipped(NamedTuple):
    """A file (or series folder) left out of a folder run, and why."""

    path: str
    reason: str


@dataclass
class FolderItem:
    """One image of a folder, with its label map when one was paired.

    ``image``/``label`` are what ``prepare`` returned (by default the arrays of
    :func:`read_image`, ``[C, *spatial]``, the label map with ``C == 1``);
    ``meta`` is the image's meta (see :func:`read_image`).
    """

    path: Path
    image: Any
    meta: dict[str, Any]
    label_path: Path | None = None
    label: Any = None


@dataclass
class _Entry:
    """An image found on disk, before reading: a file, or a series folder and its files."""

    path: Path
    format: str  # "nifti" | "dicom" | "dicom_series"
    files: tuple[Path, ...] = ()
    name: str = ""


# -- single images ---------------------------------------------------------------------------
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
                f"{_suffix(p) or 'none'!r}, no DICOM marker); supported: "
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


def image_stem(path: Path) -> str:
    """The name a label map is paired by: the file name less its image suffix."""
    name = path.name
    for suffix in NIFTI_SUFFIXES + DICOM_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def label_name_matches(image: str, label: str) -> bool:
    """Whether a label map named ``label`` belongs to the image named ``image`` (module doc)."""
    if label == image or any(label == image + s for s in LABEL_SUFFIXES):
        return True
    return bool(re.fullmatch(r".+_0000", image)) and label_name_matches(image[:-5], label)


def _suffix(path: Path) -> str:
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
    groups = _group_series(files)
    if len(groups) > 1:
        raise ImageReadError(
            f"{folder}: holds {len(groups)} DICOM series (SeriesInstanceUID "
            f"{', '.join(sorted(groups))[:200]}); put each series in its own folder, or pass "
            "files= to read one"
        )
    return files


def _group_series(files: Sequence[Path]) -> dict[str, list[Path]]:
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
            f"{_first_line(err)}); supported: {SUPPORTED}"
        ) from err
    array = np.ascontiguousarray(np.asarray(image, dtype=np.float32))
    return array, dict(header)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:300] if text else "no message"


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


# -- folders ---------------------------------------------------------------------------------
Prepare = Callable[[np.ndarray, "np.ndarray | None", dict[str, Any]], tuple[Any, Any]]


def scan_folder(
    root: str | Path,
    *,
    labels: str | Path | None = None,
    spatial_dims: int,
    prepare: Prepare | None = None,
) -> tuple[list[FolderItem], list[Skipped]]:
    """Every usable image under ``root`` (recursively), label maps paired from ``labels``.

    ``spatial_dims=3``: volumes only (a 2D image, or a volume of one slice, is
    skipped); ``spatial_dims=2``: 2D images and volumes (whose slices a 2D
    dataset uses). ``prepare(image, label, meta) -> (image, label)`` runs on each
    pair right after it is checked (e.g. resizing), so only its result is kept
    in memory; an :class:`~selfsup_medical.images.ImageDataError` it raises skips
    the file. Returns the items (sorted by path) and the skipped files with
    their reasons; logs a one-line summary. Raises when nothing usable is found.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"scan_folder: spatial_dims must be 2 or 3, got {spatial_dims!r}")
    root_p = _existing_dir(root, "root")
    labels_p = _existing_dir(labels, "labels") if labels is not None else None
    same = labels_p is not None and labels_p.resolve() == root_p.resolve()
    exclude = labels_p if labels_p is not None and not same else None
    entries, skipped, ignored = _find_images(root_p, exclude=exclude)
    label_of: dict[Path, _Entry] = {}
    unused: list[_Entry] = []
    if labels_p is not None:
        if same:
            entries, label_entries = _split_same_folder(entries)
        else:
            label_entries, label_skipped, _ = _find_images(labels_p, exclude=None)
            skipped += [Skipped(s.path, f"label map: {s.reason}") for s in label_skipped]
        label_of, unused, ambiguous = _pair(entries, label_entries)
        skipped += ambiguous
        bad = {Path(s.path) for s in ambiguous}
        entries = [e for e in entries if e.path not in bad]
    items: list[FolderItem] = []
    for entry in entries:
        label_entry = label_of.get(entry.path)
        try:
            items.append(_read_item(entry, label_entry, spatial_dims, prepare))
        except ImageDataError as err:
            skipped.append(Skipped(str(entry.path), str(err)))
    skipped.sort()
    _log_summary(root_p, items, skipped, ignored, unused)
    if not items:
        shown = "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        raise ImageDataError(
            f"no usable images under {root_p}"
            + (f" ({len(skipped)} skipped: {shown})" if skipped else "")
            + f"; supported: {SUPPORTED}"
        )
    return items, skipped


def _existing_dir(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(
            f"{what}={str(path)!r}: no such folder (resolved to "
            f"{p.resolve()}); pass the folder that holds your images"
        )
    if not p.is_dir():
        raise NotADirectoryError(
            f"{what}={str(path)!r} is a file; pass the folder that holds "
            "it (a folder run reads every image in it)"
        )
    return p


def _find_images(root: Path, *, exclude: Path | None) -> tuple[list[_Entry], list[Skipped], int]:
    """Image entries under ``root``, skipped files, and how many sidecar files were ignored."""
    import os

    entries: list[_Entry] = []
    skipped: list[Skipped] = []
    ignored = 0
    skip_dir = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith(".") and (skip_dir is None or (here / d).resolve() != skip_dir)
        )
        dicom: list[Path] = []
        for name in sorted(filenames):
            f = here / name
            if name.startswith(".") or name.upper() == "DICOMDIR":
                ignored += 1
                continue
            fmt = image_format(f)
            if fmt == "nifti":
                entries.append(_Entry(f, "nifti", (f,), image_stem(f)))
            elif fmt == "dicom":
                dicom.append(f)
            elif _suffix(f) in SIDECAR_SUFFIXES:
                ignored += 1
            else:
                skipped.append(
                    Skipped(
                        str(f),
                        f"not NIfTI or DICOM (suffix "
                        f"{_suffix(f) or 'none'!r}); supported: "
                        f"{SUPPORTED}",
                    )
                )
        if dicom:
            e, s = _dicom_entries(here, dicom)
            entries += e
            skipped += s
    entries.sort(key=lambda e: str(e.path))
    return entries, skipped, ignored


def _dicom_entries(folder: Path, files: list[Path]) -> tuple[list[_Entry], list[Skipped]]:
    groups = _group_series(files)
    if len(groups) == 1 and len(files) > 1:
        return [_Entry(folder, "dicom_series", tuple(files), folder.name)], []
    if all(len(g) == 1 for g in groups.values()):
        return [_Entry(f, "dicom", (f,), image_stem(f)) for f in files], []
    sizes = sorted((len(g) for g in groups.values()), reverse=True)
    return [], [
        Skipped(
            str(folder),
            f"holds {len(groups)} DICOM series ({sizes} files); put each series in its own folder",
        )
    ]


def _split_same_folder(entries: list[_Entry]) -> tuple[list[_Entry], list[_Entry]]:
    """Images and label maps that share one folder: a label map is named after an image."""
    names = {e.name for e in entries}
    labels = [
        e for e in entries if any(e.name != n and label_name_matches(n, e.name) for n in names)
    ]
    label_paths = {e.path for e in labels}
    return [e for e in entries if e.path not in label_paths], labels


def _pair(
    images: list[_Entry], labels: list[_Entry]
) -> tuple[dict[Path, _Entry], list[_Entry], list[Skipped]]:
    by_image: dict[Path, _Entry] = {}
    ambiguous: list[Skipped] = []
    used: set[Path] = set()
    for img in images:
        found = [lab for lab in labels if label_name_matches(img.name, lab.name)]
        if len(found) > 1:
            exact = [lab for lab in found if lab.name == img.name]
            found = exact if len(exact) == 1 else found
        if len(found) > 1:
            ambiguous.append(
                Skipped(
                    str(img.path),
                    "several label maps match its name: "
                    + ", ".join(str(lab.path) for lab in found),
                )
            )
        elif found:
            by_image[img.path] = found[0]
            used.add(found[0].path)
    return by_image, [lab for lab in labels if lab.path not in used], ambiguous


def _read_item(
    entry: _Entry, label_entry: _Entry | None, spatial_dims: int, prepare: Prepare | None
) -> FolderItem:
    image, meta = read_image(
        entry.path, files=entry.files if entry.format == "dicom_series" else None
    )
    _check_dims(image, entry.path, spatial_dims, "image")
    label = None
    if label_entry is not None:
        label, _ = read_image(
            label_entry.path,
            files=label_entry.files if label_entry.format == "dicom_series" else None,
        )
        check_label(label, image, label_path=label_entry.path, image_path=entry.path)
    if prepare is not None:
        image, label = prepare(image, label, meta)
    return FolderItem(entry.path, image, meta, label_entry.path if label_entry else None, label)


def _check_dims(image: np.ndarray, path: Path, spatial_dims: int, field: str) -> None:
    if spatial_dims == 3:
        check_image(image, source=str(path), field=field, spatial_dims=3)
        if min(image.shape[1:]) == 1:
            raise ImageDataError(
                f"{path}: {field} has shape {tuple(image.shape)}, a volume of "
                "a single slice; a 3D dataset needs volumes (use medical.images "
                "for 2D images)"
            )
    elif image.ndim not in (3, 4):
        raise ImageDataError(
            f"{path}: {field} has shape {tuple(image.shape)} ({image.ndim} "
            "dimensions); expected [C, H, W] (2D) or [C, D, H, W] (a volume, "
            "used slice by slice)"
        )


def check_label(
    label: np.ndarray, image: np.ndarray, *, label_path: str | Path, image_path: str | Path
) -> None:
    """Reject a label map that is not one channel of non-negative integers in the image's shape."""
    if tuple(label.shape[1:]) != tuple(image.shape[1:]):
        raise ImageDataError(
            f"label map {label_path} has spatial shape {tuple(label.shape[1:])} but its image "
            f"{image_path} has {tuple(image.shape[1:])}; a label map must match its image voxel "
            "for voxel (resample it onto the image's grid)"
        )
    if label.shape[0] != 1:
        raise ImageDataError(
            f"label map {label_path} has {label.shape[0]} channels; expected "
            "one map of class indices"
        )
    check_image(label, source=str(label_path), field="label map", spatial_dims=label.ndim - 1)
    bad = (label != np.round(label)) | (label < 0)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ImageDataError(
            f"label map {label_path} has {int(bad.sum())} voxels that are not "
            f"non-negative integers (first at {first}: {label[first]!r}); label "
            "maps hold class indices 0, 1, ..."
        )


def _log_summary(
    root: Path, items: list[FolderItem], skipped: list[Skipped], ignored: int, unused: list[_Entry]
) -> None:
    n_labelled = sum(it.label_path is not None for it in items)
    parts = [f"medical folder {root}: read {len(items)} image(s)"]
    if any(it.label_path is not None for it in items) or unused:
        parts.append(f"{n_labelled} with a label map")
    if ignored:
        parts.append(f"ignored {ignored} sidecar/hidden file(s)")
    if unused:
        parts.append(
            f"{len(unused)} label map(s) match no image ("
            + ", ".join(e.path.name for e in unused[:3])
            + (", ..." if len(unused) > 3 else "")
            + ")"
        )
    if skipped:
        reasons = Counter(_reason_kind(s.reason) for s in skipped)
        shown = "; ".join(f"{Path(s.path).name}: {_reason_kind(s.reason)}" for s in skipped[:5])
        parts.append(
            f"skipped {len(skipped)} ({', '.join(f'{n} {k}' for k, n in reasons.items())}"
            f": {shown}{'; ...' if len(skipped) > 5 else ''})"
        )
        log.warning(", ".join(parts))
    else:
        log.info(", ".join(parts))


def _reason_kind(reason: str) -> str:
    for key, kind in (
        ("could not be read", "unreadable"),
        ("not NIfTI or DICOM", "unsupported"),
        ("NaN/Inf", "NaN/Inf"),
        ("spatial shape", "shape mismatch"),
        ("dimensions", "wrong dimensions"),
        ("single slice", "single slice"),
        ("zero extent", "empty"),
        ("series", "mixed series"),
        ("several label maps", "ambiguous label"),
        ("label map", "bad label map"),
    ):
        if key in reason:
            return kind
    return "invalid"


# -- fastMRI ---------------------------------------------------------------------------------
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
            f"{p}: not an HDF5 file ({_first_line(err)}); fastMRI files are "
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


__all__ = [
    "SUPPORTED",
    "FolderItem",
    "ImageReadError",
    "Skipped",
    "center_crop",
    "check_label",
    "fastmri_header",
    "image_format",
    "image_stem",
    "label_name_matches",
    "read_fastmri",
    "read_image",
    "scan_folder",
]
