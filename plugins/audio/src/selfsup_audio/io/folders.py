"""Your folder of labelled clips: which files, which labels, which folds.

Layouts recognised as they are (``layout="auto"`` picks the first that fits):

- ``esc50``: ESC-50 (Piczak 2015): ``meta/esc50.csv`` (``filename``, ``fold``,
  ``category``) and the clips in ``audio/``;
- ``urbansound8k``: UrbanSound8K (Salamon et al. 2014): ``metadata/UrbanSound8K.csv``
  (``slice_file_name``, ``fold``, ``class``) and ``audio/fold<k>/``;
- ``csv``: any CSV (``csv=``) with a file column and a label column (``file_column``,
  ``label_column``; an optional ``fold_column``), files relative to the CSV's folder
  or found by name under the root;
- ``folders``: one sub-folder per label (Speech Commands: ``<word>/<clip>.wav``;
  folders starting with ``_``, such as ``_background_noise_``, are not labels);
  Speech Commands' ``validation_list.txt`` and ``testing_list.txt`` give its splits.

Nothing is downloaded. Files whose suffix is not .wav/.flac/.ogg are ignored.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from .audio import AUDIO_SUFFIXES

LAYOUTS = ("auto", "folders", "csv", "esc50", "urbansound8k")


@dataclass(frozen=True)
class Entry:
    """One clip: its path, label name and, where the layout gives one, its split or fold."""

    path: Path
    label: str
    fold: str | None = None  # "train"/"val"/"test" or a fold number as text


def _audio_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _from_csv(table: Path, base: Path, file_col: str, label_col: str,
              fold_col: str | None, root: Path) -> list[Entry]:
    with open(table, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise ValueError(f"{table}: the CSV has no rows")
    missing = [c for c in (file_col, label_col, fold_col) if c and c not in rows[0]]
    if missing:
        raise ValueError(f"{table}: no column(s) {missing}; it has {list(rows[0])}")
    by_name: dict[str, Path] | None = None
    out = []
    for row in rows:
        path = base / row[file_col]
        if not path.is_file():
            if by_name is None:
                by_name = {p.name: p for p in _audio_files(root)}
            path = by_name.get(Path(row[file_col]).name, path)
        out.append(Entry(path, row[label_col].strip(), row[fold_col].strip() if fold_col else None))
    return out


def _from_folders(root: Path) -> list[Entry]:
    lists = {}
    for name, split in (("validation_list.txt", "val"), ("testing_list.txt", "test")):
        f = root / name
        if f.is_file():
            for line in f.read_text(encoding="utf-8").split():
                lists[line.strip()] = split
    out = []
    for path in _audio_files(root):
        rel = path.relative_to(root)
        if len(rel.parts) < 2 or rel.parts[0].startswith("_"):
            continue
        fold = lists.get(rel.as_posix(), "train") if lists else None
        out.append(Entry(path, rel.parts[0], fold))
    return out


def discover(root: str | Path, layout: str = "auto", csv_path: str | None = None,
             file_column: str = "filename", label_column: str = "label",
             fold_column: str | None = None) -> tuple[str, list[Entry]]:
    """The layout found and the entries of ``root`` (see the module)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"audio folder {str(root)!r} does not exist")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if layout == "auto":
        if csv_path:
            layout = "csv"
        elif (root / "meta" / "esc50.csv").is_file():
            layout = "esc50"
        elif (root / "metadata" / "UrbanSound8K.csv").is_file():
            layout = "urbansound8k"
        else:
            layout = "folders"
    if layout == "esc50":
        return layout, _from_csv(root / "meta" / "esc50.csv", root / "audio", "filename",
                                 "category", "fold", root)
    if layout == "urbansound8k":
        entries = _from_csv(root / "metadata" / "UrbanSound8K.csv", root / "audio",
                            "slice_file_name", "class", "fold", root)
        return layout, [Entry(e.path if e.path.is_file() else root / "audio" / f"fold{e.fold}"
                              / e.path.name, e.label, e.fold) for e in entries]
    if layout == "csv":
        if not csv_path:
            raise ValueError("layout='csv' needs csv= (the table of files and labels)")
        table = Path(csv_path) if Path(csv_path).is_absolute() else root / csv_path
        return layout, _from_csv(table, table.parent, file_column, label_column, fold_column,
                                 root)
    return layout, _from_folders(root)
