"""A memory-mapped, sharded cache of tokenised molecules.

Parsing and canonicalising a SMILES with RDKit costs about 0.17 ms; an epoch over
the 1.58 million MOSES molecules would spend 4-5 minutes of one core doing it
again. :func:`open_or_build` does it once: every molecule is canonicalised,
deduplicated, checked against an exclusion set (the benchmark molecules),
tokenised and written as token ids into shards on disk::

    tokens-<fingerprint>/
      manifest.json          format, fingerprint, vocabulary, shard sizes, counts
      tokens-00000.npy       uint16 token ids of the shard's molecules, end to end
      offsets-00000.npy      int64 [n + 1]: molecule i is tokens[offsets[i]:offsets[i+1]]
      ...

Shards are opened with ``numpy.load(mmap_mode="r")``: a process (or DataLoader
worker) reads only the pages it touches and the OS page cache shares them.

The folder name is a *fingerprint* of everything the ids depend on: the
tokenisation pattern, the vocabulary (given, or derived from the corpus), the
corpus bytes (the caller's ``source_id``, e.g. the file's SHA-256), the exclusion
set, ``max_length``, ``limit``, the shard size, the RDKit version (canonical SMILES
change between versions) and this module's format version. Change any of them and
a new cache is built beside the old one; the old one is never read by mistake.
Shards are written to a temporary folder and renamed into place, so an
interrupted build leaves nothing that looks complete.

``<bos>``/``<eos>`` are not stored; :meth:`TokenCache.ids` adds them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from array import array
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import chem
from .tokenizer import BASE_TOKENS, SMILES_PATTERN, SPECIAL_TOKENS, SmilesTokenizer, tokenize

log = logging.getLogger(__name__)

FORMAT = "selfsup-molecular/token-cache"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def fingerprint(
    *,
    source_id: str,
    exclude: Collection[str],
    tokenizer: SmilesTokenizer | None,
    max_length: int,
    shard_size: int,
    limit: int | None,
) -> str:
    """The cache key: a hash of everything the cached ids depend on."""
    import rdkit

    h = hashlib.sha256()
    for part in (FORMAT, str(FORMAT_VERSION), SMILES_PATTERN, rdkit.__version__, source_id,
                 str(max_length), str(shard_size), str(limit)):
        h.update(part.encode())
        h.update(b"\0")
    h.update(("\n".join(tokenizer.tokens) if tokenizer is not None else "<derived>").encode())
    h.update(b"\0")
    h.update("\n".join(sorted(exclude)).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class CacheReport:
    """What a build read and kept: ``read`` rows; ``invalid`` (unparseable, bad valence,
    empty, or a token the pattern lacks); ``too_long`` (over ``max_length`` tokens with
    ``<bos>``/``<eos>``); ``duplicates`` (an earlier row had the same canonical SMILES);
    ``excluded`` (in the exclusion set: benchmark molecules); ``kept``; ``seconds``
    the build took."""

    read: int
    invalid: int
    too_long: int
    duplicates: int
    excluded: int
    kept: int
    seconds: float

    def summary(self) -> str:
        rate = self.read / self.seconds if self.seconds > 0 else float("nan")
        return (f"read {self.read}, invalid {self.invalid}, too long {self.too_long}, "
                f"duplicates {self.duplicates}, benchmark molecules removed {self.excluded}, "
                f"kept {self.kept} (built in {self.seconds:.0f} s, {rate:.0f} molecules/s)")


class TokenCache:
    """An opened cache: ``len(cache)`` molecules, ``cache.ids(i)`` their token ids."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        manifest = json.loads((self.folder / MANIFEST).read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT or manifest.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.folder} is not a token cache of format {FORMAT} v{FORMAT_VERSION} "
                f"(found {manifest.get('format')} v{manifest.get('version')}); delete it"
            )
        self.manifest: dict[str, Any] = manifest
        self.fingerprint: str = manifest["fingerprint"]
        self.tokenizer = SmilesTokenizer.from_dict(manifest["tokenizer"])
        self.report = CacheReport(**manifest["report"])
        self._tokens: list[np.ndarray] = []
        self._offsets: list[np.ndarray] = []
        for shard in manifest["shards"]:
            self._tokens.append(np.load(self.folder / shard["tokens"], mmap_mode="r"))
            self._offsets.append(np.load(self.folder / shard["offsets"], mmap_mode="r"))
        sizes = [len(o) - 1 for o in self._offsets]
        self._starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._lengths: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def n_shards(self) -> int:
        return len(self._tokens)

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"molecule {i} is out of range for a cache of {len(self)}")
        shard = int(np.searchsorted(self._starts, i, side="right")) - 1
        return shard, i - int(self._starts[shard])

    def raw(self, i: int) -> np.ndarray:
        """Token ids of molecule ``i`` as stored (no ``<bos>``/``<eos>``), uint16."""
        shard, j = self._locate(i)
        off = self._offsets[shard]
        return np.asarray(self._tokens[shard][int(off[j]) : int(off[j + 1])])

    def ids(self, i: int) -> np.ndarray:
        """``<bos>`` ids ``<eos>`` of molecule ``i``, int64."""
        t = self.tokenizer
        return np.concatenate([[t.bos_id], self.raw(i).astype(np.int64), [t.eos_id]])

    def smiles(self, i: int) -> str:
        """Molecule ``i``'s canonical SMILES (the tokens joined)."""
        return self.tokenizer.decode(self.raw(i).tolist())

    def lengths(self) -> np.ndarray:
        """Sequence lengths with ``<bos>``/``<eos>``, int64 [N] (one pass over offsets)."""
        if self._lengths is None:
            self._lengths = np.concatenate([np.diff(o) + 2 for o in self._offsets]).astype(
                np.int64)
        return self._lengths

    def __repr__(self) -> str:
        return (f"TokenCache({self.folder.name}: {len(self)} molecules in {self.n_shards} "
                f"shard(s), vocabulary {self.tokenizer.vocab_size})")


def open_or_build(
    rows: Iterable[tuple[Any, str]] | None,
    folder: str | Path,
    *,
    source_id: str,
    exclude: Collection[str] = (),
    tokenizer: SmilesTokenizer | None = None,
    max_length: int = 128,
    shard_size: int = 200_000,
    limit: int | None = None,
    rows_factory: Any = None,
) -> TokenCache:
    """The cache of ``rows`` (``(row id, SMILES)`` pairs) under ``folder``, built if
    no cache with the same fingerprint is there.

    ``exclude``: canonical SMILES to leave out (counted as ``excluded``).
    ``tokenizer``: a fixed vocabulary (tokens outside it become ``<unk>``); default:
    derived from the corpus, special and base tokens first, then new tokens in order
    of first appearance. ``limit``: stop after this many rows read. ``rows_factory``:
    a zero-argument callable returning the rows, called only when a build is needed
    (so an existing cache never opens the corpus file); give it or ``rows``.
    """
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be a positive int")
    fp = fingerprint(source_id=source_id, exclude=exclude, tokenizer=tokenizer,
                     max_length=max_length, shard_size=shard_size, limit=limit)
    root = Path(folder)
    target = root / f"tokens-{fp}"
    if (target / MANIFEST).is_file():
        return TokenCache(target)
    if rows is None:
        if rows_factory is None:
            raise ValueError("give rows or rows_factory to build a token cache")
        rows = rows_factory()
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tokens-{fp}-"))
    try:
        manifest = _build(rows, tmp, fp=fp, exclude=frozenset(exclude), tokenizer=tokenizer,
                          max_length=max_length, shard_size=shard_size, limit=limit,
                          source_id=source_id)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
        try:
            os.replace(tmp, target)
        except OSError:  # another process finished the same cache first
            if not (target / MANIFEST).is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    cache = TokenCache(target)
    log.info("token cache %s: %s", target, cache.report.summary())
    return cache


def _build(
    rows: Iterable[tuple[Any, str]],
    out: Path,
    *,
    fp: str,
    exclude: frozenset[str],
    tokenizer: SmilesTokenizer | None,
    max_length: int,
    shard_size: int,
    limit: int | None,
    source_id: str,
) -> dict[str, Any]:
    from rdkit import Chem

    vocab: dict[str, int] = (
        {tok: i for i, tok in enumerate(tokenizer.tokens)} if tokenizer is not None
        else {tok: i for i, tok in enumerate(SPECIAL_TOKENS + BASE_TOKENS)}
    )
    fixed = tokenizer is not None
    unk = vocab["<unk>"]
    seen: set[str] = set()
    shards: list[dict[str, Any]] = []
    tokens, offsets = array("H"), array("q", [0])
    read = invalid = too_long = duplicates = excluded = kept = 0
    t0 = time.perf_counter()

    def flush() -> None:
        k = len(shards)
        names = {"tokens": f"tokens-{k:05d}.npy", "offsets": f"offsets-{k:05d}.npy"}
        np.save(out / names["tokens"], np.frombuffer(tokens, dtype=np.uint16))
        np.save(out / names["offsets"], np.frombuffer(offsets, dtype=np.int64))
        shards.append({**names, "n": len(offsets) - 1, "n_tokens": len(tokens)})

    with chem.quiet_rdkit():
        for _row, smiles in rows:
            if limit is not None and read >= limit:
                break
            read += 1
            mol = chem.to_mol(smiles, quiet=False) if smiles and smiles.strip() else None
            if mol is None:
                invalid += 1
                continue
            can = str(Chem.MolToSmiles(mol))
            if can in seen:
                duplicates += 1
                continue
            seen.add(can)
            if can in exclude:
                excluded += 1
                continue
            try:
                toks = tokenize(can)
            except ValueError:
                invalid += 1
                continue
            if len(toks) + 2 > max_length:
                too_long += 1
                continue
            for tok in toks:
                idx = vocab.get(tok)
                if idx is None:
                    if fixed:
                        idx = unk
                    else:
                        idx = vocab[tok] = len(vocab)
                tokens.append(idx)
            offsets.append(len(tokens))
            kept += 1
            if len(offsets) - 1 >= shard_size:
                flush()
                tokens, offsets = array("H"), array("q", [0])
    if len(offsets) > 1 or not shards:
        flush()
    report = CacheReport(read=read, invalid=invalid, too_long=too_long, duplicates=duplicates,
                         excluded=excluded, kept=kept, seconds=time.perf_counter() - t0)
    final = tokenizer if tokenizer is not None else SmilesTokenizer(list(vocab))
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "fingerprint": fp,
        "source_id": source_id,
        "max_length": max_length,
        "shard_size": shard_size,
        "limit": limit,
        "n_excluded_set": len(exclude),
        "tokenizer": final.to_dict(),
        "report": report.__dict__,
        "shards": shards,
    }
