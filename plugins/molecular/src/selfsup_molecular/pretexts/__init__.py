"""Molecular pretext tasks, one file each.

- :mod:`.mlm`: masked language modelling on SMILES tokens (MoLFormer, Ross et al. 2022);
- :mod:`.mtr`: multi-task regression on RDKit 2D descriptors (ChemBERTa-2, Ahmad et al. 2022).

Contrastive learning between randomized SMILES of one molecule needs no file here:
core's joint-embedding objectives (``core.simclr``, ``core.barlow_twins``, ...)
draw their two views from the dataset's ``augment``.
"""
