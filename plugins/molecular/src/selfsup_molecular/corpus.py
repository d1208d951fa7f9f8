"""The pretraining corpus shipped inside the RDKit wheel (``molecular.corpus``).

Two real molecule sets that RDKit installs, so nothing is downloaded:

- ``Data/NCI/first_5K.smi``: the first 5,000 lines of the NCI open database
  (SMILES and NSC number, tab-separated);
- ``Data/Pains/test_data/wehi_mols.csv``: 10,000 screening compounds of the WEHI
  library, RDKit's test set for the PAINS filters (Baell & Holloway, J. Med. Chem.
  2010) (quoted ``"SMILES","id"``, no header).

Molecules are canonicalised with RDKit and deduplicated by canonical SMILES, first
occurrence kept, NCI first; :class:`CorpusReport` counts what was read, invalid,
too long, duplicated and kept. The dataset built from it has no labels.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .smiles import DEFAULT_MAX_LENGTH, Skipped, SmilesDataset, clean_rows, summarize_skipped

log = logging.getLogger(__name__)

NCI_FILE = ("Data", "NCI", "first_5K.smi")
WEHI_FILE = ("Data", "Pains", "test_data", "wehi_mols.csv")


def rdkit_file(*parts: str) -> Path:
    """A file shipped inside the installed ``rdkit`` package; FileNotFoundError if absent."""
    import rdkit

    path = Path(rdkit.__file__).parent.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: this RDKit installation does not ship {'/'.join(parts)}. "
            "Install the PyPI wheel (`pip install rdkit`), which includes it."
        )
    return path


def _read_nci(path: Path) -> Iterator[tuple[str, str, None]]:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if line.strip():
                yield f"{path.name}:{lineno}", line.split()[0] if line.split() else "", None


def _read_wehi(path: Path) -> Iterator[tuple[str, str, None]]:
    with path.open(encoding="utf-8", newline="") as f:
        for lineno, rec in enumerate(csv.reader(f), start=1):
            if rec:
                yield f"{path.name}:{lineno}", rec[0], None


@dataclass(frozen=True)
class CorpusReport:
    """The corpus and how it was made.

    ``read``: rows read; ``invalid``: unparseable, bad valence or empty;
    ``too_long``: over ``max_length`` tokens; ``duplicates``: repeats of an earlier
    canonical SMILES; ``kept``: unique molecules (before any ``max_molecules`` cut);
    ``smiles``: the corpus, canonical, in file order (subsampled if asked).
    """

    smiles: tuple[str, ...]
    read: int
    invalid: int
    too_long: int
    duplicates: int
    kept: int
    per_source: dict[str, int] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def __len__(self) -> int:
        return len(self.smiles)

    def summary(self) -> str:
        sources = ", ".join(f"{k} {v}" for k, v in self.per_source.items())
        used = f", using {len(self.smiles)}" if len(self.smiles) != self.kept else ""
        return (
            f"RDKit corpus ({sources} rows): read {self.read}, invalid {self.invalid}, "
            f"too long {self.too_long}, duplicates {self.duplicates}, kept {self.kept}{used}"
        )


@functools.lru_cache(maxsize=4)
def _full_corpus(max_length: int) -> CorpusReport:
    sources = {"NCI first_5K": (rdkit_file(*NCI_FILE), _read_nci),
               "WEHI PAINS test set": (rdkit_file(*WEHI_FILE), _read_wehi)}
    cache = _cache_file(max_length, [path for path, _ in sources.values()])
    if cache is not None:
        cached = _read_cache(cache)
        if cached is not None:
            return cached
    report = _parse_corpus(sources, max_length)
    if cache is not None:
        _write_cache(cache, report)
    return report


def _parse_corpus(sources: dict[str, tuple[Path, Any]], max_length: int) -> CorpusReport:
    smiles: list[str] = []
    seen: set[str] = set()
    skipped: list[Skipped] = []
    per_source: dict[str, int] = {}
    read = too_long = duplicates = 0
    for label, (path, reader) in sources.items():
        rows = list(reader(path))
        per_source[label] = len(rows)
        read += len(rows)
        clean = clean_rows(rows, max_length=max_length)
        skipped += clean.skipped
        too_long += sum(s.reason.startswith("too long") for s in clean.skipped)
        for s in clean.smiles:
            if s in seen:
                duplicates += 1
            else:
                seen.add(s)
                smiles.append(s)
    return CorpusReport(
        smiles=tuple(smiles),
        read=read,
        invalid=len(skipped) - too_long,
        too_long=too_long,
        duplicates=duplicates,
        kept=len(smiles),
        per_source=per_source,
        skipped=tuple(skipped),
    )


# Canonicalising 15,000 molecules takes seconds; every benchmark run needs the same
# result, so it is kept on disk, keyed by the RDKit version and the files it came from.
_CACHE_FORMAT = 1


def cache_folder() -> Path | None:
    """The plugin's disk cache folder, or None when ``SELFSUP_MOLECULAR_CACHE`` is off."""
    env = os.environ.get("SELFSUP_MOLECULAR_CACHE")
    if env is not None and env.strip().lower() in ("", "0", "off", "no", "false"):
        return None
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "selfsup-molecular"


def _cache_file(max_length: int, paths: list[Path]) -> Path | None:
    """Where the parsed corpus is cached, or None when caching is off.

    ``SELFSUP_MOLECULAR_CACHE``: the cache folder, or ``off`` to parse every time;
    default ``$XDG_CACHE_HOME/selfsup-molecular`` (``~/.cache/selfsup-molecular``).
    """
    import rdkit

    from .tokenizer import SMILES_PATTERN

    folder = cache_folder()
    if folder is None:
        return None
    key = hashlib.sha256(
        f"{_CACHE_FORMAT}|{rdkit.__version__}|{SMILES_PATTERN}|{max_length}".encode()
    )
    for path in paths:
        st = path.stat()
        key.update(f"|{path}|{st.st_size}|{st.st_mtime_ns}".encode())
    return folder / f"corpus-{key.hexdigest()[:16]}.json"


def _read_cache(path: Path) -> CorpusReport | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return CorpusReport(
            smiles=tuple(data["smiles"]),
            read=int(data["read"]),
            invalid=int(data["invalid"]),
            too_long=int(data["too_long"]),
            duplicates=int(data["duplicates"]),
            kept=int(data["kept"]),
            per_source={str(k): int(v) for k, v in data["per_source"].items()},
            skipped=tuple(Skipped(*s) for s in data["skipped"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.debug("ignoring unreadable corpus cache %s: %s", path, exc)
        return None


def _write_cache(path: Path, report: CorpusReport) -> None:
    data = dataclasses.asdict(report)
    data["skipped"] = [[s.row, s.smiles, s.reason, s.detail] for s in report.skipped]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new
    except OSError as exc:
        log.debug("could not cache the corpus at %s: %s", path, exc)


def load_corpus(
    max_molecules: int | None = None, seed: int = 0, *, max_length: int = DEFAULT_MAX_LENGTH
) -> CorpusReport:
    """The deduplicated RDKit corpus; ``max_molecules`` keeps a seeded random subset
    (in file order). Parsed once per process per ``max_length``."""
    full = _full_corpus(max_length)
    if max_molecules is None or max_molecules >= full.kept:
        return full
    if max_molecules < 1:
        raise ValueError(f"max_molecules={max_molecules!r} must be a positive int or None")
    keep = np.sort(np.random.default_rng(seed).choice(full.kept, max_molecules, replace=False))
    return CorpusReport(
        smiles=tuple(full.smiles[i] for i in keep),
        read=full.read,
        invalid=full.invalid,
        too_long=full.too_long,
        duplicates=full.duplicates,
        kept=full.kept,
        per_source=full.per_source,
        skipped=full.skipped,
    )


def build_corpus(
    *,
    corpus_size: int | None = None,
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.corpus",
    **unknown: Any,
) -> SmilesDataset:
    """``molecular.corpus``: the RDKit corpus as an unlabelled pretraining dataset.

    ``views``: options of :class:`~selfsup_molecular.views.SmilesViews`.
    """
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {sorted(unknown)}; "
            "options are corpus_size, seed, max_length, views"
        )
    report = load_corpus(corpus_size, seed, max_length=max_length)
    return SmilesDataset(
        report.smiles,
        max_length=max_length,
        views=views,
        name=name,
        skipped=report.skipped,
        notes=[report.summary()],
        source="the RDKit corpus",
        warn_skipped=False,  # the same few known bad rows every time; see describe()
    )


build = build_corpus

__all__ = ["CorpusReport", "build_corpus", "load_corpus", "rdkit_file", "summarize_skipped"]
