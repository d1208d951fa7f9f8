"""``molecular.csv``: your own molecules in the MoleculeNet CSV layout.

One row per molecule, a header row, a SMILES column and a label column, as in the
MoleculeNet files (Wu et al., "MoleculeNet: a benchmark for molecular machine
learning", Chem. Sci. 2018), e.g. ESOL's ``smiles,measured log solubility``::

    smiles,logS
    CCO,0.12
    c1ccccc1O,-0.04

``task="classification"`` takes labels 0/1; ``"regression"`` any finite number.
Rows with an invalid SMILES, a molecule longer than ``max_length`` tokens or a
missing or bad label are skipped; ``dataset.skipped`` lists them by file line
(the header is line 1) and the summary is logged once as a warning.

Pretraining set (``pretrain_on``): ``"self"``, the train split's molecules (labels
hidden); or ``"corpus"``, the RDKit corpus less every molecule of the file.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from selfsup.api import TaskSpec

from .cleaning import DEFAULT_MAX_LENGTH, clean_rows
from .labelled import labelled_dataset
from .smiles import SmilesDataset

TASKS = ("regression", "classification")
PRETRAIN_ON = ("self", "corpus")


def _read(path: Path, smiles_column: str, label_column: str | None) -> tuple[
    str, list[tuple[int, str, str | None]]
]:
    """The label column used and ``(line, smiles, label)`` rows."""
    with path.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = [c for c in (reader.fieldnames or []) if c is not None]
        if not columns:
            raise ValueError(f"{path}: no header row; the first line must name the columns")
        if label_column is None:
            others = [c for c in columns if c != smiles_column]
            if len(others) != 1:
                raise ValueError(
                    f"{path}: say which column holds the labels with label_column=...; "
                    f"the file has columns {columns}"
                )
            label_column = others[0]
        missing = [c for c in (smiles_column, label_column) if c not in columns]
        if missing:
            raise ValueError(
                f"{path}: no column(s) {missing}; the file has columns {columns}. "
                "Pass smiles_column=... and label_column=... naming them."
            )
        rows: list[tuple[int, str, str | None]] = []
        for rec in reader:
            rows.append((reader.line_num, rec.get(smiles_column) or "", rec.get(label_column)))
    return label_column, rows


def build(
    path: str | Path | None = None,
    *,
    smiles_column: str = "smiles",
    label_column: str | None = None,
    task: str = "regression",
    split: str = "scaffold",
    seed: int = 0,
    pretrain_on: str = "self",
    corpus_size: int | None = None,
    max_length: int = DEFAULT_MAX_LENGTH,
    views: Mapping[str, Any] | None = None,
    name: str = "molecular.csv",
    **unknown: Any,
) -> SmilesDataset:
    """Read a MoleculeNet-layout CSV into a labelled :class:`SmilesDataset`.

    ``label_column``: may be left out when the file has one column besides the
    SMILES. ``split``: ``"scaffold"`` (deterministic Bemis-Murcko, 80/10/10) or
    ``"random"`` (with ``seed``). ``corpus_size``: subset of the corpus when
    ``pretrain_on="corpus"``. ``views``: options of
    :class:`~selfsup_molecular.views.SmilesViews`.
    """
    if unknown:
        raise TypeError(
            f"{name}: unknown option(s) {sorted(unknown)}; options are path, smiles_column, "
            "label_column, task, split, seed, pretrain_on, corpus_size, max_length, views"
        )
    if path is None:
        raise ValueError(f"{name}: give path=... the CSV file to read (MoleculeNet layout)")
    if task not in TASKS:
        raise ValueError(f"{name}: task={task!r} is unknown; use one of {list(TASKS)}")
    if pretrain_on not in PRETRAIN_ON:
        raise ValueError(
            f"{name}: pretrain_on={pretrain_on!r} is unknown; use one of {list(PRETRAIN_ON)}"
        )
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no CSV file at {path}")
    label_column, rows = _read(path, smiles_column, label_column)
    classes = (0.0, 1.0) if task == "classification" else None
    clean = clean_rows(rows, max_length=max_length, need_label=True, classes=classes)
    pretrain: tuple[str, ...] | None = None
    pretrain_source = ""
    notes = [f"{path.name}: {len(rows)} rows, {len(clean)} usable ({task}, "
             f"SMILES {smiles_column!r}, label {label_column!r})"]
    if pretrain_on == "corpus":
        from .corpus import load_corpus

        corpus = load_corpus(corpus_size, seed, max_length=max_length)
        pretrain, pretrain_source = corpus.smiles, "RDKit corpus"
        notes.append(corpus.summary())
    return labelled_dataset(
        clean,
        name=name,
        task=TaskSpec("classification", 2) if classes else TaskSpec("regression"),
        pretrain_smiles=pretrain,
        split=split,
        seed=seed,
        max_length=max_length,
        views=views,
        pretrain_source=pretrain_source,
        notes=notes,
        source=str(path),
    )
