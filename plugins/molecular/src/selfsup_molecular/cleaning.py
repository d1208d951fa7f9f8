"""Checking and canonicalising molecule rows before they enter a dataset.

Bad input never stops a dataset from building: rows with an invalid SMILES
(unparseable, bad valence, empty), a molecule longer than ``max_length`` tokens,
or a missing label are skipped and recorded as :class:`Skipped` records;
:func:`summarize_skipped` says how many, which and why.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import chem
from .tokenizer import tokenize

if TYPE_CHECKING:
    from rdkit import Chem

DEFAULT_MAX_LENGTH = 128

#: skip reasons, in the order rows are checked
MISSING_LABEL = "missing label"
INVALID_LABEL = "invalid label"
EMPTY_SMILES = "empty SMILES"
INVALID_SMILES = "invalid SMILES (unparseable or bad valence)"
TOO_LONG = "too long"


@dataclass(frozen=True)
class Skipped:
    """A source row left out of a dataset.

    ``row``: where it came from (a 1-based data row or line number, or an id);
    ``smiles``: the SMILES as given; ``reason``: one of the reasons above;
    ``detail``: specifics (the token count, the bad label).
    """

    row: int | str
    smiles: str
    reason: str
    detail: str = ""


def summarize_skipped(skipped: Sequence[Skipped], source: str = "", *, show: int = 10) -> str:
    """How many rows were skipped, grouped by reason, with the first ``show`` rows of each."""
    where = f" of {source}" if source else ""
    if not skipped:
        return f"no rows{where} skipped"
    groups: dict[str, list[Skipped]] = defaultdict(list)
    for s in skipped:
        groups[s.reason].append(s)
    lines = [f"skipped {len(skipped)} row(s){where}:"]
    for reason, items in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        shown = ", ".join(
            f"{s.row} {_short(s.smiles)!r}" + (f" ({s.detail})" if s.detail else "")
            for s in items[:show]
        )
        more = f", ... and {len(items) - show} more" if len(items) > show else ""
        lines.append(f"  {reason}: {len(items)} (rows {shown}{more})")
    return "\n".join(lines)


def _short(smiles: str, width: int = 60) -> str:
    return smiles if len(smiles) <= width else smiles[: width - 3] + "..."


# -- cleaning ------------------------------------------------------------------------------
@dataclass
class CleanRows:
    """Rows that passed :func:`clean_rows`: source row ids, canonical SMILES, labels."""

    rows: list[int | str] = field(default_factory=list)
    smiles: list[str] = field(default_factory=list)
    labels: list[float] = field(default_factory=list)
    mols: list[Chem.Mol] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.smiles)


def n_tokens(smiles: str) -> int:
    """Sequence length of ``smiles`` as encoded: its tokens plus ``<bos>`` and ``<eos>``."""
    return len(tokenize(smiles)) + 2


def clean_rows(
    rows: Iterable[tuple[int | str, Any, Any]],
    *,
    max_length: int = DEFAULT_MAX_LENGTH,
    need_label: bool = False,
    classes: Sequence[float] | None = None,
) -> CleanRows:
    """Check and canonicalise ``(row, smiles, label)`` rows; skip and record bad ones.

    ``need_label``: a missing label (None, empty, NaN) skips the row; a label that is
    not a number, or not in ``classes`` when given, is an invalid label. Duplicates
    are kept (deduplicate pretraining sets yourself).
    """
    from rdkit import Chem

    out = CleanRows()
    with chem.quiet_rdkit():  # once for the loop: the context costs as much as a parse
        for row, raw_smiles, raw_label in rows:
            smiles = "" if raw_smiles is None else str(raw_smiles)
            label = _check_label(raw_label, classes) if need_label else math.nan
            if isinstance(label, tuple):
                out.skipped.append(Skipped(row, smiles, *label))
                continue
            if not smiles.strip():
                out.skipped.append(Skipped(row, smiles, EMPTY_SMILES))
                continue
            mol = chem.to_mol(smiles, quiet=False)
            if mol is None:
                out.skipped.append(Skipped(row, smiles, INVALID_SMILES))
                continue
            can = str(Chem.MolToSmiles(mol))
            try:
                length = n_tokens(can)
            except ValueError as exc:  # an atom RDKit accepts but the token pattern lacks
                out.skipped.append(Skipped(row, smiles, INVALID_SMILES, str(exc)))
                continue
            if length > max_length:
                detail = f"{length} tokens > max_length {max_length}"
                out.skipped.append(Skipped(row, smiles, TOO_LONG, detail))
                continue
            out.rows.append(row)
            out.smiles.append(can)
            out.labels.append(label)
            out.mols.append(mol)
    return out


def _check_label(raw: Any, classes: Sequence[float] | None) -> float | tuple[str, str]:
    """The label as a float, or ``(reason, detail)`` of why it is missing or invalid."""
    text = "" if raw is None else str(raw).strip()
    if not text or text.lower() in ("nan", "na", "n/a", "none", "null"):
        return (MISSING_LABEL, "")
    try:
        label = float(text)
    except ValueError:
        return (INVALID_LABEL, f"label {text!r} is not a number")
    if math.isnan(label):
        return (MISSING_LABEL, "")
    if not math.isfinite(label):
        return (INVALID_LABEL, f"label {text!r} is not finite")
    if classes is not None and label not in classes:
        return (INVALID_LABEL, f"label {text!r} is not one of {list(classes)}")
    return label

