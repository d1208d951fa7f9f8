"""Real medical images that ship inside installed wheels, for offline datasets.

Nothing here downloads anything: every image is a file inside the installed
``pydicom`` and ``nibabel`` wheels (their test data), ``nilearn`` (the MNI152
template) or ``scikit-image``. The table (:data:`SOURCES`) names each file;
measured on pydicom 3.0.2, nibabel 5.4.2, nilearn 0.14.1, scikit-image 0.26.0:

=========================================  ========  =====================  ====================
file (package)                             modality  stored shape           used slices
=========================================  ========  =====================  ====================
datasets/data/mni_icbm152_t1_tal_nlin_     MR (T1)   197x233x189, 1 mm,     35 axial (every 4th)
sym_09a_converted.nii.gz (nilearn)                   uint8
tests/data/example4d.nii.gz (nibabel)      MR (EPI)  128x96x24x2, 2.0x2.0x  24 axial (frame 0)
                                                     2.2 mm, int16
tests/data/anatomical.nii (nibabel)        MR (T1)   33x41x25, 2 mm, int16  25 axial
test_files/MR_small.dcm (pydicom)          MR        64x64                  1
test_files/examples_overlay.dcm (pydicom)  MR        300x484 (abdomen)      1
test_files/CT_small.dcm (pydicom)          CT        128x128 (spine)        1
test_files/J2K_pixelrep_mismatch.dcm       CT        512x512 (head), JPEG   1
(pydicom)                                            2000 lossless
test_files/693_J2KI.dcm (pydicom)          CT        512x512 (head), lossy  1
                                                     JPEG 2000 (3.6 kB:
                                                     compression blur)
skimage.data.shepp_logan_phantom()         phantom   400x400                1 (never tested on)
=========================================  ========  =====================  ====================

That is 35 + 49 + 5 = 89 real slices from 8 source volumes (three multi-slice
MR volumes, five single slices), plus the phantom. The JPEG 2000 files decode with
Pillow (a dependency of scikit-image), no extra codec package needed.
Provenance: ``CT_small``/``MR_small`` are NEMA WG04 sample images downsized by
pydicom; ``examples_overlay`` is a cropped Siemens abdominal MR example; the
512x512 CT heads are regression files from pydicom issues #693 and #1149
(pydicom's README); nibabel's README gives no origin for ``example4d`` and
``anatomical``. pydicom and nibabel are MIT-licensed and ship these as test
data; nothing states a separate licence for the images. The MNI152 ICBM 2009a
nonlinear symmetric T1 template (Fonov et al., NeuroImage 2011; an average of
152 registered adult brains with the head, copyright McConnell Brain Imaging
Centre, free to use with its notice) ships in the BSD-3 ``nilearn`` wheel as
nilearn's default template; being an average, it is smoother than a single
scan, and its slices are taken 4 mm apart so neighbours are not near copies.

Not usable offline: the other pydicom MR/CT files are re-encodings of
``MR_small`` (RLE, JPEG-LS, big endian, ...) or 16x16 thumbnails
(``dicomdirtests``); nibabel's other volumes are phantoms, 4 mm functional
images, or copies of ``anatomical``; ``skimage.data.brain()`` needs ``pooch``
and a download (the file is not in the wheel).

Each slice becomes ``[1, size, size]`` float32: negative MR values (ringing)
are clipped to 0, CT is mapped linearly from Hounsfield units
(:func:`hu_to_unit`), a non-square slice is padded to a square with the
background (0) and resized with anti-aliasing (bilinear), and MR slices are
divided by their 99.9th percentile (:func:`selfsup_medical.images.scale_unit`).

Near-empty slices are skipped: a slice is kept when at least
:data:`MIN_FOREGROUND` (5 %) of its pixels exceed 10 % of its volume's 99.9th
percentile (all 49 slices of nibabel's two volumes pass; of the template's 48
every-4th axial slices, the 13 at the bottom and top of the volume, mostly air,
fail).

Splits (:func:`split_by_volume`) keep all slices of one source volume in one
split.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .images import SPLITS, scale_unit

#: fraction of a slice's pixels that must exceed 10 % of the volume's 99.9th percentile
MIN_FOREGROUND = 0.05
#: the label of the phantom's pseudo-volume (kept out of validation and test splits)
PHANTOM = "skimage:shepp_logan_phantom"


@dataclass(frozen=True)
class SourceFile:
    """One image file inside an installed package."""

    key: str  # "package:file", also the volume id of its slices
    package: str
    path: str  # relative to the package directory
    modality: str  # "MR" or "CT"
    description: str
    stride: int = 1  # keep every stride-th axial slice


SOURCES: tuple[SourceFile, ...] = (
    SourceFile(
        "nilearn:mni152_t1.nii.gz",
        "nilearn",
        "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
        "MR",
        "MNI152 2009a symmetric T1 template with head, 197x233x189 at 1 mm, every 4th slice",
        stride=4,
    ),
    SourceFile(
        "nibabel:example4d.nii.gz",
        "nibabel",
        "tests/data/example4d.nii.gz",
        "MR",
        "brain EPI, 128x96x24 x 2 frames, first frame",
    ),
    SourceFile(
        "nibabel:anatomical.nii",
        "nibabel",
        "tests/data/anatomical.nii",
        "MR",
        "brain T1, 33x41x25 at 2 mm",
    ),
    SourceFile(
        "pydicom:MR_small.dcm",
        "pydicom",
        "data/test_files/MR_small.dcm",
        "MR",
        "MR slice 64x64 (NEMA WG04 MR1, downsized)",
    ),
    SourceFile(
        "pydicom:examples_overlay.dcm",
        "pydicom",
        "data/test_files/examples_overlay.dcm",
        "MR",
        "abdominal MR slice 300x484 (Siemens example, cropped)",
    ),
    SourceFile(
        "pydicom:CT_small.dcm",
        "pydicom",
        "data/test_files/CT_small.dcm",
        "CT",
        "CT slice 128x128 through the spine (NEMA WG04 CT1, downsized)",
    ),
    SourceFile(
        "pydicom:J2K_pixelrep_mismatch.dcm",
        "pydicom",
        "data/test_files/J2K_pixelrep_mismatch.dcm",
        "CT",
        "head CT 512x512, JPEG 2000 lossless",
    ),
    SourceFile(
        "pydicom:693_J2KI.dcm",
        "pydicom",
        "data/test_files/693_J2KI.dcm",
        "CT",
        "head CT 512x512, lossy JPEG 2000",
    ),
)


@dataclass(frozen=True)
class Slice:
    """One 2D slice ``image [1, size, size]`` of source volume ``volume``."""

    image: torch.Tensor
    volume: str
    index: int
    modality: str


def package_file(package: str, path: str) -> Path:
    """The path of ``path`` inside the installed ``package`` (found without importing it);
    FileNotFoundError names both."""
    import importlib.metadata
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"sample image {path!r} ships with the package {package!r}, which is not "
            f"installed; install it (pip install {package})"
        )
    file = Path(next(iter(spec.submodule_search_locations))) / path
    if not file.is_file():
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            version = "(unknown version)"
        raise FileNotFoundError(
            f"sample image {file} is missing from the installed {package!r} "
            f"{version}: this version does not ship it; install the version named in "
            "selfsup_medical.sources"
        )
    return file


def hu_to_unit(hu: np.ndarray) -> np.ndarray:
    """Hounsfield units to about ``[0, 1]``: ``(HU + 1000) / 2000``, air 0, water 0.5.

    Linear in the attenuation coefficient (``mu = mu_water (1 + HU/1000)``), so the
    image is ``mu / (2 mu_water)``; values below air (outside the scanner's field
    of view, stored as -2000 or -3000 HU) are clipped to 0, dense bone is about 1.
    """
    return np.clip((hu.astype(np.float64) + 1000.0) / 2000.0, 0.0, None)


def read_dicom(file: Path) -> np.ndarray:
    """The pixel data of one single-frame DICOM file in modality units (HU for CT)."""
    import pydicom
    from pydicom.pixels import apply_rescale

    with warnings.catch_warnings():
        # the pixel-representation mismatch of one file is reported and corrected by pydicom
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(file)
        pixels = apply_rescale(ds.pixel_array, ds)
    return np.asarray(pixels, dtype=np.float64)


def read_volume(source: SourceFile) -> np.ndarray:
    """Slices ``[n, H, W]`` of one source in its own units (HU for CT), axial slices first."""
    file = package_file(source.package, source.path)
    if file.suffix == ".dcm":
        return read_dicom(file)[None]
    import nibabel

    data = np.asarray(
        nibabel.load(file).dataobj, dtype=np.float64  # type: ignore[attr-defined]
    )
    if data.ndim == 4:
        data = data[..., 0]  # the second frame repeats the anatomy; it would duplicate slices
    # nibabel arrays are (x, y, z): axial slices along z, rotated so anterior is up
    return np.stack([np.rot90(data[:, :, z]) for z in range(data.shape[2])])


def to_square(image: np.ndarray, size: int) -> np.ndarray:
    """Pad ``[H, W]`` to a square with zeros (centred), then resize to ``[size, size]``."""
    from skimage.transform import resize

    h, w = image.shape
    side = max(h, w)
    padded = np.zeros((side, side), dtype=np.float64)
    top, left = (side - h) // 2, (side - w) // 2
    padded[top : top + h, left : left + w] = image
    if side == size:
        return padded
    return resize(padded, (size, size), order=1, anti_aliasing=side > size, mode="edge")


def foreground_fraction(image: np.ndarray, reference: float) -> float:
    """The fraction of pixels above 10 % of ``reference`` (a volume's 99.9th percentile)."""
    return float((image > 0.1 * reference).mean())


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 8:
        raise ValueError(f"image size must be an integer >= 8 pixels, got {size!r}")


@functools.lru_cache(maxsize=8)
def _records(size: int, modality: str) -> tuple[Slice, ...]:
    out: list[Slice] = []
    for source in SOURCES:
        if source.modality != modality:
            continue
        volume = read_volume(source)
        if modality == "CT":
            volume = hu_to_unit(volume)
        volume = np.clip(volume, 0.0, None)  # MR magnitudes are >= 0; negatives are ringing
        reference = float(np.percentile(volume, 99.9))
        for index, plane in enumerate(volume):
            if index % source.stride or foreground_fraction(plane, reference) < MIN_FOREGROUND:
                continue
            image = torch.from_numpy(to_square(plane, size)).float()[None]
            if modality == "MR":
                image = scale_unit(image)  # MR has arbitrary units; CT keeps its HU mapping
            out.append(Slice(image, source.key, index, modality))
    return tuple(out)


def _copy(records: Sequence[Slice]) -> list[Slice]:
    # the cache holds the tensors; callers get their own copies to modify
    return [Slice(r.image.clone(), r.volume, r.index, r.modality) for r in records]


def mr_records(size: int = 128) -> list[Slice]:
    """The MR slices of :data:`SOURCES` (86 at any size), each ``[1, size, size]``."""
    _check_size(size)
    return _copy(_records(size, "MR"))


def ct_records(size: int = 128) -> list[Slice]:
    """The CT slices of :data:`SOURCES` (3), each ``[1, size, size]`` in ``hu_to_unit`` units."""
    _check_size(size)
    return _copy(_records(size, "CT"))


def anatomical_records(size: int = 128) -> list[Slice]:
    """All real slices, MR then CT (89), with their source volume."""
    return mr_records(size) + ct_records(size)


def anatomical_slices(size: int = 128) -> list[torch.Tensor]:
    """All real MR and CT slices (89) as ``[1, size, size]`` tensors in about ``[0, 1]``."""
    return [r.image for r in anatomical_records(size)]


def mr_slices(size: int = 128) -> list[torch.Tensor]:
    """The real MR slices (86) as ``[1, size, size]`` tensors in about ``[0, 1]``."""
    return [r.image for r in mr_records(size)]


def ct_slices(size: int = 128) -> list[torch.Tensor]:
    """The real CT slices (3) as ``[1, size, size]`` tensors, ``(HU + 1000) / 2000``."""
    return [r.image for r in ct_records(size)]


def shepp_logan(size: int = 128) -> torch.Tensor:
    """scikit-image's modified Shepp-Logan phantom, ``[1, size, size]`` in ``[0, 1]``."""
    _check_size(size)
    from skimage.data import shepp_logan_phantom

    return torch.from_numpy(to_square(shepp_logan_phantom(), size)).float()[None]


def phantom_record(size: int = 128) -> Slice:
    """The phantom as a :class:`Slice` of its own pseudo-volume :data:`PHANTOM`."""
    return Slice(shepp_logan(size), PHANTOM, 0, "phantom")


def split_by_volume(
    records: Sequence[Slice],
    fractions: Sequence[float] = (0.6, 0.2, 0.2),
) -> dict[str, list[Slice]]:
    """Assign whole source volumes to train/val/test, close to ``fractions`` of the slices.

    Deterministic (no seed): volumes in order of decreasing slice count (ties by
    name) each go to the split furthest below its target slice count, ties
    broken test, then val, then train, so that the test split gets a whole
    volume rather than left-overs. The phantom always goes to train. With the
    sources of this module (volumes of 35, 25 and 24 slices, five single slices)
    the real slices split 60 / 5 / 24: train holds the MNI152 template and
    ``anatomical``, val the five single slices, test ``example4d``; exact
    60/20/20 is impossible without splitting a volume.
    """
    if len(fractions) != len(SPLITS) or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(
            f"split fractions must be {len(SPLITS)} numbers >= 0 for {SPLITS}, "
            f"got {list(fractions)}"
        )
    volumes: dict[str, list[Slice]] = {}
    for record in records:
        volumes.setdefault(record.volume, []).append(record)
    out: dict[str, list[Slice]] = {s: [] for s in SPLITS}
    out["train"] += volumes.pop(PHANTOM, [])
    total = sum(len(v) for v in volumes.values())
    target = {s: f / sum(fractions) * total for s, f in zip(SPLITS, fractions)}
    filled = dict.fromkeys(SPLITS, 0)
    for name in sorted(volumes, key=lambda v: (-len(volumes[v]), v)):
        split = max(reversed(SPLITS), key=lambda s: target[s] - filled[s])
        out[split] += volumes[name]
        filled[split] += len(volumes[name])
    return out
