"""Train/val/test splits of a molecule set: scaffold, group and random.

:func:`scaffold_split` is the deterministic Bemis-Murcko scaffold split of
MoleculeNet and chemprop (Wu et al., "MoleculeNet: a benchmark for molecular
machine learning", Chem. Sci. 2018; Yang et al., "Analyzing Learned Molecular
Representations for Property Prediction", J. Chem. Inf. Model. 2019): no scaffold
is in two splits, so the test set holds chemotypes the model never saw.
:func:`group_split` is the same greedy assignment for any group key, and
:func:`random_split` a seeded random split. Each returns sorted indices per split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import chem

if TYPE_CHECKING:
    from rdkit import Chem

SPLITS: tuple[str, str, str] = ("train", "val", "test")


def _check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    """``(train, val, test)`` shares: three non-negative numbers that sum to 1."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(
            f"split fractions {tuple(fractions)} must be three non-negative numbers "
            "(train, val, test) that sum to 1, e.g. (0.8, 0.1, 0.1)"
        )
    return float(fractions[0]), float(fractions[1]), float(fractions[2])


def scaffold_split(
    smiles: Sequence[str | Chem.Mol], fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, np.ndarray]:
    """Deterministic Bemis-Murcko scaffold split (MoleculeNet, chemprop).

    Molecules are grouped by scaffold; groups are sorted by size, largest first (ties:
    first appearance), and each group goes whole to train while it fits
    ``fractions[0] * n``, else to val while that fits ``fractions[1] * n``, else to
    test. No scaffold is in two splits. Returns sorted indices per split.
    """
    return group_split([chem.murcko_scaffold(s) for s in smiles], fractions)


def group_split(
    keys: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)
) -> dict[str, np.ndarray]:
    """:func:`scaffold_split` with the scaffold (or any group key) of each item given."""
    f_train, f_val, _ = _check_fractions(fractions)
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    n = len(keys)
    train_cap, val_cap = f_train * n, f_val * n
    out: dict[str, list[int]] = {s: [] for s in SPLITS}
    for members in sorted(groups.values(), key=lambda g: (-len(g), g[0])):
        if len(out["train"]) + len(members) <= train_cap:
            out["train"] += members
        elif len(out["val"]) + len(members) <= val_cap:
            out["val"] += members
        else:
            out["test"] += members
    return {s: np.asarray(sorted(idx), dtype=np.int64) for s, idx in out.items()}


def random_split(
    n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0
) -> dict[str, np.ndarray]:
    """A seeded random split of ``range(n)``; sorted indices per split."""
    f_train, f_val, _ = _check_fractions(fractions)
    perm = np.random.default_rng(seed).permutation(n)
    n_train, n_val = round(f_train * n), round(f_val * n)
    parts = (perm[:n_train], perm[n_train : n_train + n_val], perm[n_train + n_val :])
    return {s: np.sort(p).astype(np.int64) for s, p in zip(SPLITS, parts)}


def split_indices(
    smiles: Sequence[str | Chem.Mol],
    method: str = "scaffold",
    *,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
) -> dict[str, np.ndarray]:
    """``scaffold_split`` or ``random_split`` by name."""
    if method == "scaffold":
        return scaffold_split(smiles, fractions)
    if method == "random":
        return random_split(len(smiles), fractions, seed)
    raise ValueError(f"split={method!r} is unknown; use 'scaffold' or 'random'")
