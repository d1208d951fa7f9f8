"""The stochastic views of every SMILES dataset, declared once (``[dataset.views]``).

A view of a molecule (:meth:`selfsup_molecular.smiles.SmilesDataset.augment`) is

1. a randomized SMILES: the same molecule written from a random starting atom in a
   random traversal order (Bjerrum, "SMILES Enumeration as Data Augmentation for
   Neural Network Modeling of Molecules", 2017; Arús-Pous et al., "Randomized SMILES
   strings improve the quality of molecular generative models", J. Cheminform.
   2019), re-tokenized (the canonical SMILES when the randomized one is longer than
   ``max_length`` tokens);
2. token masking: each ordinary token (not padding, ``<bos>``, ``<eos>``, ``<unk>``
   or ``<mask>``) becomes ``<mask>`` with probability ``mask_prob``, as in BERT's
   masked language model (Devlin et al., NAACL 2019) and ChemBERTa (Chithrananda
   et al., 2020).

Both draw from the trainer's generator, so a view is reproducible. Two views of a
batch are what core's joint-embedding objectives (``core.simclr``,
``core.barlow_twins``, ...) contrast.

Changed in 0.2: ``mask_prob`` was a keyword of every dataset factory; it is now a
view option of the :class:`~selfsup.api.DatasetSpec` (``views={...}``), and
``randomize`` (always on before) can turn step 1 off.
"""

from __future__ import annotations

from dataclasses import dataclass

from selfsup.api import boolean, fraction, option

#: the defaults every molecular DatasetSpec declares as its ``views``
DEFAULT_VIEWS = {"randomize": True, "mask_prob": 0.15}


@dataclass(frozen=True)
class SmilesViews:
    """Options of the SMILES views, parsed from a dataset's ``views`` table."""

    randomize: bool = option(True, boolean, "rewrite each molecule as a randomized SMILES")
    mask_prob: float = option(0.15, fraction, "probability of masking each ordinary token")
