"""selfsup-molecular: self-supervised learning on molecules given as SMILES.

Datasets (RDKit-shipped pretraining corpus, the ChEMBL2321810 activity set, a
MoleculeNet-layout CSV reader), a SMILES tokenizer, an encoder, pretext tasks,
an evaluator and fingerprint and descriptor baselines, registered with selfsup
through the ``selfsup`` entry point (:mod:`selfsup_molecular.plugin`). Importing
this package imports neither torch nor RDKit.
"""

__version__ = "0.1.0"
