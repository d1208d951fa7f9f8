"""Labelled molecule sets: split cleaned rows and pair them with a pretraining set.

:func:`labelled_dataset` splits rows that passed
:func:`~selfsup_molecular.cleaning.clean_rows` into train/val/test
(:mod:`selfsup_molecular.splits`) and removes every labelled molecule from the
pretraining set by canonical SMILES, counting the removals.
:func:`build_benchmark_dataset` is what the FreeSolv and solubility datasets share:
reading, the split (``"scaffold"``, ``"random"`` or a shipped one) and the choice of
pretraining corpus (``pretrain_on``: the MOSES token cache, the RDKit corpus or the
train split itself).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from selfsup.api import TaskSpec

from . import chem
from .cleaning import DEFAULT_MAX_LENGTH, CleanRows, clean_rows, summarize_skipped
from .smiles import SmilesDataset
from .splits import SPLITS, group_split, split_indices
from .tokenizer import SmilesTokenizer

PRETRAIN_ON = ("moses", "corpus", "self")


def labelled_dataset(
    clean: CleanRows,
    *,
    name: str,
    task: TaskSpec,
    pretrain_smiles: Sequence[str] | None,
    split: str = "scaffold",
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    tokenizer: SmilesTokenizer | None = None,
    pretrain_source: str = "",
    notes: Sequence[str] = (),
    source: str = "",
    indices: Mapping[str, np.ndarray] | None = None,
    cache: Any = None,
    cache_indices: np.ndarray | None = None,
) -> SmilesDataset:
    """A labelled :class:`SmilesDataset` from cleaned rows.

    ``indices``: a split already made (``{"train": ..., "val": ..., "test": ...}``
    into ``clean``), used instead of ``split``'s. ``cache``: a
    :class:`~selfsup_molecular.token_cache.TokenCache` (with ``cache_indices``, a
    subset) to pretrain on instead of ``pretrain_smiles``; its build already left
    out the benchmark molecules and counted them (``overlap_removed``).

    Splits ``clean`` by ``split`` (``"scaffold"`` or ``"random"`` with ``seed``) and
    drops every labelled molecule (by canonical SMILES) from ``pretrain_smiles``, so
    no evaluation molecule is seen in pretraining; the count is ``overlap_removed``.
    ``pretrain_smiles=None`` pretrains on the train split's molecules (labels hidden),
    less any that are also in val or test.
    """
    if len(clean) < 3:
        raise ValueError(
            f"{name}: only {len(clean)} usable labelled molecule(s) in {source or 'the data'}, "
            f"too few for train/val/test splits; {summarize_skipped(clean.skipped)}"
        )
    scaffolds: list[str] = []
    if indices is not None:
        idx = {s: np.asarray(indices[s], dtype=np.int64) for s in SPLITS}
    elif split == "scaffold":
        scaffolds = [chem.murcko_scaffold(m) for m in clean.mols]
        idx = group_split(scaffolds, fractions)
    else:
        idx = split_indices(clean.mols, split, seed=seed, fractions=fractions)
    empty = [s for s in SPLITS if len(idx[s]) == 0]
    if empty:
        raise ValueError(
            f"{name}: the {split} split of {len(clean)} molecules leaves {empty} empty; "
            "use more molecules or split='random'"
        )
    if pretrain_smiles is None:  # the train split's molecules, labels hidden
        pretrain_smiles = [clean.smiles[i] for i in idx["train"]]
        held_out = {clean.smiles[i] for s in ("val", "test") for i in idx[s]}
        pretrain_source = pretrain_source or "the train split's molecules"
    else:
        held_out = set(clean.smiles)
    unique = list(dict.fromkeys(pretrain_smiles))
    pretrain = [s for s in unique if s not in held_out]
    overlap = len(unique) - len(pretrain)
    sizes = ", ".join(f"{s} {len(idx[s])}" for s in SPLITS)
    if split == "scaffold" and scaffolds:
        n_scaffolds = {s: len({scaffolds[i] for i in idx[s]}) for s in SPLITS}
        scaf = " (" + ", ".join(f"{n_scaffolds[s]}" for s in SPLITS) + " scaffolds)"
    elif split == "random":
        scaf = f" (seed {seed})"
    else:
        scaf = ""
    frac = "" if indices is not None else " " + "/".join(f"{round(100 * f)}" for f in fractions)
    if cache is not None:
        pretrain, overlap = [], int(cache.report.excluded)
        pretrain_source = pretrain_source or f"token cache {cache.fingerprint}"
    lines = [
        *notes,
        f"split: {split}{frac}: {sizes}{scaf}",
        f"pretraining set: {pretrain_source or 'given molecules'}"
        + ("" if cache is not None else f", {len(pretrain)} molecules")
        + f" after removing {overlap} that are benchmark molecules",
    ]
    labels = np.asarray(clean.labels, dtype=np.float64)
    kwargs: dict[str, Any] = dict(
        labelled={s: ([clean.smiles[i] for i in idx[s]], labels[idx[s]]) for s in SPLITS},
        task=task,
        tokenizer=tokenizer,
        max_length=max_length,
        views=views,
        name=name,
        skipped=clean.skipped,
        notes=lines,
        source=source,
    )
    if cache is not None:
        from .moses import CachedSmilesDataset

        ds: SmilesDataset = CachedSmilesDataset(cache, cache_indices, **kwargs)
    else:
        ds = SmilesDataset(pretrain, **kwargs)
    ds.overlap_removed = overlap
    ds.split_method = split
    ds.split_rows = {s: [clean.rows[i] for i in idx[s]] for s in SPLITS}
    return ds


def build_benchmark_dataset(
    rows: Iterable[tuple[Any, str, Any]] | None,
    *,
    name: str,
    task: TaskSpec,
    split: str,
    seed: int,
    pretrain_on: str,
    corpus_size: int | None,
    max_length: int,
    corpus_rows: int | None = None,
    views: Mapping[str, Any] | None,
    unknown: Mapping[str, Any],
    source: str,
    title: str,
    given: Mapping[str, list[tuple[Any, str, Any]]] | None = None,
) -> SmilesDataset:
    """A benchmark set over one of three pretraining corpora.

    ``rows`` are split by ``split`` (``"scaffold"`` or ``"random"`` with ``seed``);
    with ``split="given"``, ``given`` maps ``"train"``/``"test"`` to rows and val is
    the scaffold split's 10% of train (train keeps the other 90%).
    ``pretrain_on="moses"``: the MOSES token cache (benchmark molecules already
    excluded; :mod:`selfsup_molecular.moses`), its vocabulary used for the labels'
    SMILES too (``corpus_rows``: a cache of the MOSES file's first rows only);
    ``"corpus"``: the RDKit corpus; ``"self"``: the train split.
    """
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {sorted(unknown)}; options are split, seed, "
            "pretrain_on, corpus_rows, corpus_size, max_length, views"
        )
    if pretrain_on not in PRETRAIN_ON:
        raise ValueError(
            f"{name}: pretrain_on={pretrain_on!r} is unknown; use one of {list(PRETRAIN_ON)}"
        )
    if split == "given":
        if given is None:
            raise ValueError(f"{name}: split='given' needs the shipped parts")
        parts = {p: clean_rows(r, max_length=max_length, need_label=True)
                 for p, r in given.items()}
        train_part = parts["train"]
        inner = group_split([chem.murcko_scaffold(m) for m in train_part.mols], (0.9, 0.1, 0.0))
        clean = CleanRows()
        order = {"train": (train_part, inner["train"]), "val": (train_part, inner["val"]),
                 "test": (parts["test"], np.arange(len(parts["test"])))}
        idx: dict[str, np.ndarray] = {}
        for s in SPLITS:
            part, members = order[s]
            start = len(clean)
            for i in members:
                clean.rows.append(part.rows[i])
                clean.smiles.append(part.smiles[i])
                clean.labels.append(part.labels[i])
                clean.mols.append(part.mols[i])
            idx[s] = np.arange(start, len(clean), dtype=np.int64)
        clean.skipped = [*parts["train"].skipped, *parts["test"].skipped]
    else:
        if rows is None:
            raise ValueError(f"{name}: no rows to split")
        clean = clean_rows(rows, max_length=max_length, need_label=True)
        idx = {}
    notes = [f"{title}: {len(clean)} molecules"]
    if pretrain_on == "moses":
        from .moses import MOSES_TRAIN_SIZE, corpus_cache, subset

        cache = corpus_cache(max_length=max_length, limit=corpus_rows)
        keep = subset(len(cache), corpus_size, seed)
        rows_read = (f"first {corpus_rows} of {MOSES_TRAIN_SIZE}" if corpus_rows
                     else str(MOSES_TRAIN_SIZE))
        notes.append(f"MOSES training set ({rows_read} rows): {cache.report.summary()}")
        return labelled_dataset(
            clean, name=name, task=task, pretrain_smiles=(), split=split, seed=seed,
            max_length=max_length, views=views, tokenizer=cache.tokenizer,
            pretrain_source=f"MOSES token cache ({len(keep)} molecules)", notes=notes,
            source=source, indices=idx or None, cache=cache, cache_indices=keep,
        )
    pretrain: Sequence[str] | None = None
    pretrain_source = ""
    if pretrain_on == "corpus":
        from .corpus import load_corpus

        corpus = load_corpus(corpus_size, seed, max_length=max_length)
        pretrain, pretrain_source = corpus.smiles, "RDKit corpus"
        notes.append(corpus.summary())
    return labelled_dataset(
        clean, name=name, task=task, pretrain_smiles=pretrain, split=split, seed=seed,
        max_length=max_length, views=views, pretrain_source=pretrain_source, notes=notes,
        source=source, indices=idx or None,
    )
