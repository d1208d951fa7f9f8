"""``medical.fastmri``: your fastMRI-style single-coil HDF5 files, undersampled on the fly.

fastMRI (Zbontar et al., "fastMRI: An Open Dataset and Benchmarks for
Accelerated MRI", arXiv:1811.08839) stores a single-coil scan as HDF5 with
``"kspace"`` complex ``[slices, H, W]`` (e.g. 640 x 368: the readout, H, is
oversampled twice) and references ``"reconstruction_esc"`` / ``"reconstruction_rss"``
``[slices, 320, 320]``, centre crops of the image. Every slice of every ``.h5``
file under ``root`` (read by :func:`selfsup_medical.io.read_fastmri`) becomes one
scan of a :class:`~selfsup_medical.kspace.KSpaceDataset` (batch layout there):

1. *alignment*: the slice's complex image ``ifft2c(kspace)`` is centre-cropped
   (fastMRI's ``center_crop``) to one shape shared by the whole dataset: the
   smallest reference shape over the files (the k-space shape for a file without
   a reference), each side rounded down to a multiple of 16 (the U-Nets halve it
   four times); 320 x 320 for fastMRI's files. The crop drops the readout
   oversampling. The target is the magnitude of this cropped image, which for
   fastMRI's single-coil files equals ``reconstruction_esc``; the file's own
   reference only sets the crop and is compared with the target
   (``files[i]["reference_nrmse"]``, a warning above 0.1: a
   ``reconstruction_rss`` of a multi-coil acquisition is not the single-coil
   image, so it is never used as the target);
2. *undersampling*: the k-space of the cropped image, ``fft2c``, is undersampled
   by :func:`~selfsup_medical.kspace.simulate_scan` (``mask``, ``acceleration``,
   ``center_fraction``, optional noise at ``snr_db``) with a seed drawn from
   ``seed``, the file's name and the slice index, so a slice keeps its mask when
   files are added or removed;
3. *normalisation*: k-space and target are divided by the 99.9th percentile of
   the magnitude of the slice's *zero-filled* image, a scale a real accelerated
   scan has too (no reference needed at inference); targets are then about
   ``[0, 1]``.

Files are split 60/20/20 into train/val/test by file (volume), seeded by
``seed``, so the slices of one volume never cross splits
(:func:`~selfsup_medical.datasets.folder.split_groups`; fewer than 3 files are
all train). The pretraining scans are the train files' slices; ``n_supervised``
of them, a seeded choice, keep their reference (``has_target`` True, semi-
supervised training as in Noise2Recon), the rest carry zeros and ``has_target``
False. Every split's labelled items are ``(scan, target [1, h, w])``.

Already undersampled files (fastMRI's test and challenge files carry a
``"mask"`` with unsampled columns and no reference) are skipped with that
reason: this dataset simulates undersampling from fully-sampled k-space and
needs the fully-sampled image as its target. A ``"mask"`` of all ones is
ignored. Zero columns at the edges of fully-sampled fastMRI k-space (phase
encoding padding) are part of the data and kept. Unreadable or invalid files
are skipped too; the dataset keeps ``skipped`` ((path, reason) records) and
``files`` (per file: path, split, slices, reference field, reference NRMSE).
All scans are held in memory: about 1.2 MB per 320 x 320 slice (k-space and
target), some 40 MB per fastMRI knee volume.
"""

from __future__ import annotations

import logging
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..images import ImageDataError
from ..io import ImageReadError, Skipped, center_crop, fastmri_header, read_fastmri
from ..kspace import MASKS, KSpaceDataset, ifft2c, simulate_scan, undersampling_mask
from .folder import split_groups

log = logging.getLogger(__name__)

NAME = "medical.fastmri"
#: a reference that differs more than this (NRMSE after a least-squares scale) is reported
REFERENCE_MISMATCH = 0.1


def build(
    *,
    root: str | Path | None = None,
    acceleration: int = 4,
    mask: str = "random",
    center_fraction: float = 0.08,
    snr_db: float | None = None,
    n_supervised: int = 0,
    seed: int = 0,
) -> KSpaceDataset:
    """Read every ``.h5`` file under ``root`` (a folder, or one file); see the module doc."""
    if root is None:
        raise ValueError(
            f"{NAME} needs your fastMRI-style .h5 files: pass root=... (a folder "
            "or one file, e.g. --set dataset.root=/data/knee_singlecoil_val)"
        )
    _check_options(acceleration, mask, center_fraction, snr_db, n_supervised, seed)
    base = Path(root).expanduser()
    if not base.exists():
        raise FileNotFoundError(
            f"{NAME}: root={str(root)!r}: no such file or folder (resolved "
            f"to {base.resolve()}); pass the folder of your .h5 files"
        )
    paths = [base] if base.is_file() else sorted(p for p in base.rglob("*.h5") if p.is_file())
    if not paths:
        raise FileNotFoundError(
            f"{NAME}: no .h5 files under {base}; fastMRI files are HDF5 named *.h5"
        )
    headers, skipped = _headers(paths)
    if not headers:
        raise ImageDataError(
            f"{NAME}: no usable file under {base}: "
            + "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        )
    crop = _crop_shape(headers)
    # the mask settings must fit the crop's width: fail once here, not once per slice
    undersampling_mask(
        crop[1],
        kind=mask,
        acceleration=acceleration,
        center_fraction=center_fraction,
        rng=np.random.default_rng(0),
    )
    volumes: list[tuple[dict[str, Any], list[dict[str, torch.Tensor]]]] = []
    for header in headers:
        try:
            volumes.append(
                _scans(
                    header["path"], base, crop, acceleration, mask, center_fraction, snr_db, seed
                )
            )
        except ImageDataError as err:
            skipped.append(Skipped(str(header["path"]), str(err)))
    if not volumes:
        raise ImageDataError(
            f"{NAME}: no usable file under {base}: "
            + "; ".join(f"{s.path}: {s.reason}" for s in skipped[:5])
        )
    groups = split_groups(len(volumes), seed)
    if not groups["val"]:
        warnings.warn(
            f"{NAME}: only {len(volumes)} file(s) under {base}: all are in the train "
            "split and there is no val/test split to evaluate on",
            stacklevel=2,
        )
    files: list[dict[str, Any]] = []
    for split, idx in groups.items():
        for i in idx:
            files.append({**volumes[i][0], "split": split})
    labelled: dict[str, Sequence[tuple[dict[str, torch.Tensor], torch.Tensor]]] = {
        split: [(scan, scan["target"]) for i in idx for scan in volumes[i][1]]
        for split, idx in groups.items()
    }
    pretrain = _pretrain([scan for scan, _ in labelled["train"]], n_supervised, seed)
    ds = KSpaceDataset(NAME, pretrain=pretrain, labelled=labelled, source=f"fastMRI files {base}")
    ds.skipped = sorted(skipped)  # type: ignore[attr-defined]
    ds.files = sorted(files, key=lambda f: str(f["path"]))  # type: ignore[attr-defined]
    ds.crop_shape = crop  # type: ignore[attr-defined]
    _log_summary(base, files, ds.skipped, crop)  # type: ignore[attr-defined]
    return ds


def _check_options(
    acceleration: Any, mask: Any, center_fraction: Any, snr_db: Any, n_supervised: Any, seed: Any
) -> None:
    if isinstance(acceleration, bool) or not isinstance(acceleration, int) or acceleration < 1:
        raise ValueError(
            f"{NAME}: acceleration={acceleration!r} must be an integer >= 1 (4 or 8 in fastMRI)"
        )
    if mask not in MASKS:
        raise ValueError(f"{NAME}: mask={mask!r} is not one of {list(MASKS)}")
    if (
        isinstance(center_fraction, bool)
        or not isinstance(center_fraction, (int, float))
        or not (0.0 < center_fraction <= 1.0)
    ):
        raise ValueError(
            f"{NAME}: center_fraction={center_fraction!r} must be in (0, 1] "
            "(0.08 at 4x, 0.04 at 8x in fastMRI)"
        )
    if snr_db is not None and (
        isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or not np.isfinite(snr_db)
    ):
        raise ValueError(
            f"{NAME}: snr_db={snr_db!r} must be a finite number of dB or None (no added noise)"
        )
    if isinstance(n_supervised, bool) or not isinstance(n_supervised, int) or n_supervised < 0:
        raise ValueError(f"{NAME}: n_supervised={n_supervised!r} must be an integer >= 0")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"{NAME}: seed={seed!r} must be an integer")


def _headers(paths: list[Path]) -> tuple[list[dict[str, Any]], list[Skipped]]:
    headers, skipped = [], []
    for p in paths:
        try:
            header = fastmri_header(p)
        except ImageReadError as err:
            skipped.append(Skipped(str(p), str(err)))
            continue
        m = header["mask"]
        if m is not None and not (m > 0).all():
            reason = (
                f"already undersampled: its 'mask' samples {int((m > 0).sum())} of {m.size} "
                "columns (a fastMRI test/challenge file); this dataset undersamples "
                "fully-sampled k-space and needs its image as the target"
            )
            skipped.append(Skipped(str(p), reason))
            continue
        headers.append(header)
    return headers, skipped


def _crop_shape(headers: list[dict[str, Any]]) -> tuple[int, int]:
    shapes = [h["reference_shape"][1:] if h["reference_shape"] else h["shape"][1:] for h in headers]
    h, w = (min(s[0] for s in shapes), min(s[1] for s in shapes))
    if h < 16 or w < 16:
        path, shape = next((hd["path"], s) for hd, s in zip(headers, shapes) if min(s) < 16)
        raise ImageDataError(
            f"{NAME}: {path} has images of {tuple(shape)}, smaller than "
            "16 x 16 (after its reference's crop); the U-Nets need at least 16 "
            "per side"
        )
    return (h // 16 * 16, w // 16 * 16)


def slice_seed(seed: int, name: str, index: int) -> int:
    """The per-slice seed of the undersampling mask and noise (stable under file additions)."""
    state = np.random.SeedSequence([seed, zlib.crc32(name.encode()), index]).generate_state(1)
    return int(state[0])


def _scans(
    path: Path,
    base: Path,
    crop: tuple[int, int],
    acceleration: int,
    mask: str,
    center_fraction: float,
    snr_db: float | None,
    seed: int,
) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]]]:
    data = read_fastmri(path)
    image = center_crop(ifft2c(torch.from_numpy(data["kspace"])), crop)  # [S, h, w] complex
    name = path.name if path == base else str(path.relative_to(base))
    scans = []
    for k in range(image.shape[0]):
        scan = simulate_scan(
            image[k][None],
            kind=mask,
            acceleration=acceleration,
            center_fraction=center_fraction,
            snr_db=snr_db,
            seed=slice_seed(seed, name, k),
        )
        zero_filled = ifft2c(scan["kspace"]).abs()
        scale = torch.quantile(zero_filled.flatten(), 0.999).clamp_min(1e-12)
        scans.append(
            {
                "kspace": (scan["kspace"] / scale).to(torch.complex64),
                "mask": scan["mask"],
                "target": (scan["target"] / scale).float(),
                "has_target": torch.tensor(True),
            }
        )
    info: dict[str, Any] = {
        "path": path,
        "slices": len(scans),
        "reference": data["reference_field"],
        "reference_nrmse": None,
    }
    if data["reference"] is not None:
        ref = center_crop(torch.from_numpy(data["reference"]), crop).double()
        mag = image.abs().double()
        a = (ref * mag).sum() / (mag * mag).sum().clamp_min(1e-30)  # least-squares scale
        info["reference_nrmse"] = float((ref - a * mag).norm() / ref.norm().clamp_min(1e-30))
        if info["reference_nrmse"] > REFERENCE_MISMATCH:
            warnings.warn(
                f"{NAME}: {path}: its {data['reference_field']!r} differs from the magnitude "
                f"of the centre-cropped ifft2c('kspace') (NRMSE {info['reference_nrmse']:.3f} "
                "after scaling); targets are computed from the k-space (e.g. a "
                "reconstruction_rss of multi-coil data is not the single-coil image)",
                stacklevel=3,
            )
    return info, scans


def _pretrain(
    scans: list[dict[str, torch.Tensor]], n_supervised: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    if n_supervised > len(scans):
        raise ValueError(
            f"{NAME}: n_supervised={n_supervised} but the train split has only "
            f"{len(scans)} scans (slices); lower it"
        )
    chosen = set(np.random.default_rng([seed, 1]).permutation(len(scans))[:n_supervised].tolist())
    if not scans:
        return []
    zeros = torch.zeros_like(scans[0]["target"])  # shared: collate copies, nothing writes it
    return [
        s if i in chosen else {**s, "target": zeros, "has_target": torch.tensor(False)}
        for i, s in enumerate(scans)
    ]


def _log_summary(
    base: Path, files: list[dict[str, Any]], skipped: list[Skipped], crop: tuple[int, int]
) -> None:
    counts = {s: sum(f["split"] == s for f in files) for s in ("train", "val", "test")}
    line = (
        f"{NAME} {base}: {len(files)} file(s) ({counts['train']}/{counts['val']}/"
        f"{counts['test']} train/val/test), {sum(f['slices'] for f in files)} slices, "
        f"images cropped to {crop[0]} x {crop[1]}"
    )
    if skipped:
        shown = "; ".join(f"{Path(s.path).name}: {s.reason[:120]}" for s in skipped[:5])
        more = "; ..." if len(skipped) > 5 else ""
        log.warning(f"{line}; skipped {len(skipped)} ({shown}{more})")
    else:
        log.info(line)


__all__ = ["NAME", "build", "slice_seed"]
