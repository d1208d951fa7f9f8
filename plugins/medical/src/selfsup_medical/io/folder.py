"""Every image of a folder, label maps paired by name: :func:`scan_folder`.

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
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..images import ImageDataError
from .checks import check_dims, check_label
from .nifti_dicom import (
    DICOM_SUFFIXES,
    NIFTI_SUFFIXES,
    SUPPORTED,
    group_series,
    image_format,
    read_image,
    suffix_of,
)

#: the plugin's reader log (one summary line per folder run)
log = logging.getLogger("selfsup_medical.io")

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
            elif suffix_of(f) in SIDECAR_SUFFIXES:
                ignored += 1
            else:
                skipped.append(
                    Skipped(
                        str(f),
                        f"not NIfTI or DICOM (suffix "
                        f"{suffix_of(f) or 'none'!r}); supported: "
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
    groups = group_series(files)
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
    check_dims(image, entry.path, spatial_dims, "image")
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
