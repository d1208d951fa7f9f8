"""``molecular.chembl2321810``: the plugin's default benchmark dataset.

1,017 compounds of ChEMBL document CHEMBL2321810 with a measured activity (a
pIC50-like value between about 4.3 and 9.2; a regression task), shipped in the
RDKit wheel as the Free-Wilson example (``Contrib/FreeWilson/data/``):
``CHEMBL2321810.smi`` (``SMILES id`` per line) joined by compound id with
``CHEMBL2321810_act.csv`` (columns ``Name``, ``Act``).

Pretraining set: the RDKit corpus (:mod:`selfsup_molecular.corpus`, optionally a
``corpus_size`` subset) less every molecule of this set, by canonical SMILES
(``overlap_removed``; 0 with RDKit 2026.9's files). Labelled splits: the
deterministic Bemis-Murcko scaffold split 80/10/10, or ``split="random"`` with
``seed``. The compounds share a few sulfonamide scaffolds, so a scaffold split
is a hard extrapolation test.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Mapping
from typing import Any

from selfsup.api import TaskSpec

from .cleaning import DEFAULT_MAX_LENGTH, clean_rows
from .corpus import load_corpus, rdkit_file
from .labelled import labelled_dataset
from .smiles import SmilesDataset

DATA_DIR = ("Contrib", "FreeWilson", "data")
SMILES_FILE = "CHEMBL2321810.smi"
ACTIVITY_FILE = "CHEMBL2321810_act.csv"


def read_rows() -> Iterator[tuple[str, str, str | None]]:
    """``(compound id, SMILES, activity)`` for every line of the ``.smi`` file; the
    activity is None where ``_act.csv`` has none for the id."""
    smi_path = rdkit_file(*DATA_DIR, SMILES_FILE)
    act_path = rdkit_file(*DATA_DIR, ACTIVITY_FILE)
    with act_path.open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or not {"Name", "Act"} <= set(reader.fieldnames):
            raise ValueError(
                f"{act_path}: expected columns 'Name' and 'Act', found {reader.fieldnames}"
            )
        activity = {row["Name"].strip(): row["Act"] for row in reader}
    with smi_path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            compound = parts[1] if len(parts) > 1 else f"{SMILES_FILE}:{lineno}"
            yield compound, parts[0], activity.get(compound)


def build(
    *,
    corpus_size: int | None = None,
    split: str = "scaffold",
    seed: int = 0,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.chembl2321810",
    **unknown: Any,
) -> SmilesDataset:
    """The ChEMBL2321810 activity set with the RDKit corpus for pretraining.

    ``corpus_size``: a seeded random subset of the corpus (for speed); default all.
    ``split``: ``"scaffold"`` (deterministic) or ``"random"`` (with ``seed``).
    ``views``: options of :class:`~selfsup_molecular.views.SmilesViews`, as the
    :class:`~selfsup.api.DatasetSpec` declares them (``[dataset.views]``).
    """
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {sorted(unknown)}; "
            "options are corpus_size, split, seed, max_length, views"
        )
    clean = clean_rows(read_rows(), max_length=max_length, need_label=True)
    corpus = load_corpus(corpus_size, seed, max_length=max_length)
    return labelled_dataset(
        clean,
        name=name,
        task=TaskSpec("regression"),
        pretrain_smiles=corpus.smiles,
        split=split,
        seed=seed,
        max_length=max_length,
        views=views,
        pretrain_source="RDKit corpus" + (f" subset ({len(corpus)})" if corpus_size else ""),
        notes=[f"ChEMBL2321810 activity (regression): {len(clean)} compounds", corpus.summary()],
        source=f"{SMILES_FILE} + {ACTIVITY_FILE}",
    )
