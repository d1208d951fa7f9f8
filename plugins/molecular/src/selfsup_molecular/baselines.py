"""The field's fixed-feature baselines, registered with ``register_baselines``.

- ``molecular.morgan``: Morgan fingerprint bits (radius 2, 2048 bits) of each
  molecule, :class:`~selfsup_molecular.features.MorganFingerprint`;
- ``molecular.rdkit_descriptors``: RDKit's 2D descriptors z-scored on the
  dataset's training molecules, :class:`~selfsup_molecular.features.RDKitDescriptors`;
- ``molecular.freesolv_calc``: FreeSolv's physics-based calculated hydration free
  energy as a one-number feature, :class:`CalculatedFreeEnergy` (with
  ``core.linear_probe``, a linear recalibration of it fitted on train);
- ``molecular.pretrained``: the MOSES-pretrained encoder of a budget, loaded
  without retraining (:func:`selfsup_molecular.pretrained.build_baseline`).

Each factory is ``(dataset, context, **options) -> nn.Module`` offering the
``embedding`` face, so ``selfsup bench`` measures it with the benchmark's own
evaluators: with ``molecular.random_forest`` the Morgan row is the classic
"fingerprints + random forest" model of cheminformatics, with ``core.linear_probe``
a ridge model on the same bits, with ``core.finetune`` a trained linear head.
Neither uses ``context`` (no encoder is built and nothing is trained here), so the
numbers are those of the 0.1 ``encoder:molecular.morgan`` and
``encoder:molecular.rdkit_descriptors`` rows, which these keys replace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    BaselineContext,
    NotApplicable,
    SSLDataset,
    non_negative_int,
    option,
    parse_options,
    positive,
    positive_int,
)

from .features import (
    MorganFingerprint,
    RDKitDescriptors,
    compute_descriptors,
    fit_descriptor_scaling,
    fit_smiles,
)


@dataclass(frozen=True)
class MorganOptions:
    """Options of ``molecular.morgan``."""

    radius: int = option(2, non_negative_int, "Morgan radius (2: ECFP4-like)")
    n_bits: int = option(2048, positive_int, "fingerprint length in bits")


@dataclass(frozen=True)
class DescriptorOptions:
    """Options of ``molecular.rdkit_descriptors``."""

    clip: float = option(10.0, positive, "z-scores are clipped to [-clip, clip]")


def build_morgan(dataset: SSLDataset, context: BaselineContext,
                 **options: Any) -> MorganFingerprint:
    """``molecular.morgan``: fingerprint bits need no fitting, so ``dataset`` is unused."""
    config = parse_options(MorganOptions, options, "molecular.morgan")
    return MorganFingerprint(radius=config.radius, n_bits=config.n_bits)


def build_descriptors(dataset: SSLDataset, context: BaselineContext,
                      **options: Any) -> RDKitDescriptors:
    """``molecular.rdkit_descriptors``: z-scored on the dataset's training molecules
    (the pretraining set when it has no ``train`` split)."""
    config = parse_options(DescriptorOptions, options, "molecular.rdkit_descriptors")
    raw = compute_descriptors(fit_smiles(dataset))
    return RDKitDescriptors(fit_descriptor_scaling(raw, drop_nonfinite=False, clip=config.clip))


class CalculatedFreeEnergy(nn.Module):
    """FreeSolv's calculated hydration free energy of each molecule, ``[B, 1]``."""

    embed_dim = 1

    def embed(self, batch: Any) -> torch.Tensor:
        from .freesolv import calc_for

        values = calc_for(list(batch["smiles"]))
        return torch.from_numpy(values.astype(np.float32))[:, None].to(
            batch["input_ids"].device)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


def build_freesolv_calc(dataset: SSLDataset, context: BaselineContext) -> CalculatedFreeEnergy:
    """``molecular.freesolv_calc``: applies to datasets whose molecules are FreeSolv's."""
    from .freesolv import calculated

    table = calculated()
    for split in ("train", "test"):
        ds = dataset.labelled_split(split)
        smiles = list(getattr(ds, "smiles", []))
        if not smiles or any(s not in table for s in smiles):
            raise NotApplicable(f"{dataset.name}'s {split} molecules are not FreeSolv's; "
                                "the calculated free energy exists only for FreeSolv")
    return CalculatedFreeEnergy()
