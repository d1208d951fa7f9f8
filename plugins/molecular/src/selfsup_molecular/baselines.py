"""The field's fixed-feature baselines, registered with ``register_baselines``.

- ``molecular.morgan``: Morgan fingerprint bits (radius 2, 2048 bits) of each
  molecule, :class:`~selfsup_molecular.features.MorganFingerprint`;
- ``molecular.rdkit_descriptors``: RDKit's 2D descriptors z-scored on the
  dataset's training molecules, :class:`~selfsup_molecular.features.RDKitDescriptors`.

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

from selfsup.api import (
    BaselineContext,
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
