"""``vision3d.folder``: your point clouds and meshes, one sub-folder per class.

Layouts that work as they are:

- ``<root>/<class>/<file>``: any folder-per-class tree;
- ModelNet10/40 (``<root>/<class>/train/*.off`` and ``<root>/<class>/test/*.off``): a
  ``train``/``test`` folder under a class gives the split; val is a seeded 20% of
  train;
- ScanObjectNN's ``object_dataset`` (``<root>/<class>/*.bin``); its h5 main splits need
  h5py and are not read.

Files are read by :mod:`selfsup_vision3d.io` (PLY, PCD, OFF, OBJ, STL, XYZ/TXT,
NPY, BIN); meshes are sampled area-weighted with a generator seeded by ``seed`` and
the file's position, so a folder always gives the same clouds. Files that cannot be
used (unreadable, empty, NaN-only, degenerate meshes) are skipped and listed with
their reasons in :attr:`PointFolder.skipped` and one warning. Without a layout
split, classes are split 60/20/20 stratified. Nothing is downloaded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfsup.api import non_negative_int, option, parse_options, positive_int

from ..io import SUFFIXES, BadFile, read_cloud
from .base import PointCloudDataset
from .shapes import stratified_splits
from .views import PointViews

NAME = "vision3d.folder"


def _path(x: Any) -> str | None:
    return None if isinstance(x, str) and Path(x).is_dir() else "be an existing folder"


@dataclass(frozen=True)
class FolderConfig:
    """Options of ``vision3d.folder``."""

    path: str = option("", _path, "root folder: one sub-folder per class")
    n_points: int = option(1024, positive_int, "points per cloud")
    seed: int = option(0, non_negative_int, "surface sampling and splits")


def discover(root: Path) -> list[tuple[Path, str, str | None]]:
    """``(file, class, split or None)`` under ``root``, sorted."""
    out = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls.rglob("*")):
            if not f.is_file() or f.suffix.lower() not in SUFFIXES:
                continue
            parts = f.relative_to(cls).parts
            split = parts[0] if len(parts) > 1 and parts[0] in ("train", "test") else None
            out.append((f, cls.name, split))
    return out


def read_entries(entries: list[tuple[Path, str, str | None]], n_points: int, seed: int,
                 name: str = NAME) -> tuple[list[np.ndarray], list[str], list[str | None],
                                            list[tuple[str, str]]]:
    """Clouds, classes and splits of the usable files of ``entries``, and the skipped
    ``(file, reason)`` (one warning lists them)."""
    skipped: list[tuple[str, str]] = []
    clouds, names, folds = [], [], []
    for i, (f, cls, split) in enumerate(entries):
        rng = np.random.default_rng([seed, i])
        try:
            clouds.append(read_cloud(f, n_points, rng))
        except BadFile as why:
            skipped.append((str(f), str(why)))
            continue
        names.append(cls)
        folds.append(split)
    if skipped:
        listing = "; ".join(f"{p}: {why}" for p, why in skipped[:20])
        more = f" (and {len(skipped) - 20} more)" if len(skipped) > 20 else ""
        warnings.warn(f"{name}: skipped {len(skipped)} of {len(entries)} file(s): "
                      f"{listing}{more}", stacklevel=3)
    return clouds, names, folds, skipped


class PointFolder(PointCloudDataset):
    """The clouds of a folder (see the module)."""

    def __init__(self, config: FolderConfig, views: PointViews) -> None:
        root = Path(config.path)
        entries = discover(root)
        clouds, names, folds, self.skipped = read_entries(entries, config.n_points,
                                                          config.seed)
        classes = sorted(set(names))
        if len(classes) < 2:
            raise ValueError(f"{NAME}: {root} gives {len(classes)} class(es) with usable files "
                             f"({len(self.skipped)} skipped); it needs one sub-folder per "
                             f"class, at least two, with {', '.join(SUFFIXES)} files")
        labels = np.asarray([classes.index(c) for c in names])
        if all(s is not None for s in folds):  # ModelNet: train/ and test/ under each class
            train = np.flatnonzero(np.asarray(folds) == "train")
            test = np.flatnonzero(np.asarray(folds) == "test")
            rng = np.random.default_rng(config.seed)
            val = np.sort(rng.choice(train, max(1, len(train) // 5), replace=False))
            splits = {"train": np.setdiff1d(train, val), "val": val, "test": test}
        else:
            splits = stratified_splits(labels, config.seed)
        super().__init__(np.stack(clouds), labels, splits, classes, views)


def build(views: dict[str, Any] | None = None, **options: Any) -> PointFolder:
    """``vision3d.folder`` factory; ``options`` are :class:`FolderConfig` fields."""
    config = parse_options(FolderConfig, options, NAME)
    return PointFolder(config, parse_options(PointViews, views or {}, f"{NAME} views"))
