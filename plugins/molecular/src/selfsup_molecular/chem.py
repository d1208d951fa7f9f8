"""RDKit helpers: parsing, canonical and randomized SMILES, Bemis-Murcko scaffolds.

RDKit is imported inside the functions, so importing this module costs nothing.
RDKit logs every SMILES it fails to parse to stderr; parsing here runs inside
:func:`quiet_rdkit`, and callers report bad rows themselves.

Randomized SMILES (Bjerrum, "SMILES Enumeration as Data Augmentation for Neural
Network Modeling of Molecules", 2017; Arús-Pous et al., J. Cheminform. 2019)
write the same molecule from a random starting atom and traversal order.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from rdkit import Chem


@contextmanager
def quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's log (``rdApp.*``) inside the block, then restore each level."""
    from rdkit import rdBase

    enabled = [
        line.split(":")[0]
        for line in rdBase.LogStatus().splitlines()
        if line.strip().endswith(":enabled")
    ]
    rdBase.DisableLog("rdApp.*")  # what RDLogger.DisableLog calls
    try:
        yield
    finally:
        for level in enabled:
            rdBase.EnableLog(level)


def to_mol(smiles: str, *, quiet: bool = True) -> Chem.Mol | None:
    """The sanitized molecule of ``smiles``, or None (unparseable, bad valence, empty).

    ``quiet=False`` leaves RDKit's log alone (for loops already inside
    :func:`quiet_rdkit`).
    """
    from rdkit import Chem

    if not isinstance(smiles, str) or not smiles.strip():
        return None
    if quiet:
        with quiet_rdkit():
            mol = Chem.MolFromSmiles(smiles.strip())
    else:
        mol = Chem.MolFromSmiles(smiles.strip())
    if mol is None or mol.GetNumAtoms() == 0:
        return None
    return mol


def canonical(smiles: str) -> str | None:
    """RDKit's canonical isomeric SMILES of ``smiles``, or None if it is not a molecule."""
    from rdkit import Chem

    mol = to_mol(smiles)
    return None if mol is None else Chem.MolToSmiles(mol)


def randomized(smiles: str | Chem.Mol, rng: random.Random) -> str:
    """A random, generally non-canonical SMILES of the same molecule.

    The atoms are renumbered by a permutation drawn from ``rng`` and written in that
    order (``canonical=False``), so the string is a pure function of ``rng``'s state
    (RDKit's own ``doRandom`` draws from a global RNG). ValueError on an invalid SMILES.
    """
    from rdkit import Chem

    mol = to_mol(smiles) if isinstance(smiles, str) else smiles
    if mol is None:
        raise ValueError(f"cannot randomize {smiles!r}: not a valid SMILES")
    order = list(range(mol.GetNumAtoms()))
    rng.shuffle(order)
    return str(Chem.MolToSmiles(Chem.RenumberAtoms(mol, order), canonical=False))


def murcko_scaffold(smiles: str | Chem.Mol) -> str:
    """The Bemis-Murcko scaffold SMILES (without chirality); ``""`` for acyclic molecules.

    Bemis & Murcko, "The Properties of Known Drugs. 1. Molecular Frameworks",
    J. Med. Chem. 1996.
    """
    from rdkit.Chem.Scaffolds import MurckoScaffold

    mol = to_mol(smiles) if isinstance(smiles, str) else smiles
    if mol is None:
        raise ValueError(f"no scaffold for {smiles!r}: not a valid SMILES")
    return str(MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False))


def morgan_fingerprints(
    smiles: Sequence[str], *, radius: int = 2, n_bits: int = 2048
) -> np.ndarray:
    """Morgan (ECFP-like) bit vectors ``[N, n_bits]`` as float32; zeros for invalid SMILES.

    Rogers & Hahn, "Extended-Connectivity Fingerprints", J. Chem. Inf. Model. 2010.
    """
    import numpy as np
    from rdkit.Chem import rdFingerprintGenerator

    gen: Any = rdFingerprintGenerator.GetMorganGenerator(radius=radius, fpSize=n_bits)
    out = np.zeros((len(smiles), n_bits), dtype=np.float32)
    for i, s in enumerate(smiles):
        mol = to_mol(s)
        if mol is not None:
            out[i] = gen.GetFingerprintAsNumPy(mol)
    return out
