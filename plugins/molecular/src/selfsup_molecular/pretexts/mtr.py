"""Multi-task regression on RDKit 2D descriptors, ChemBERTa-2's pretraining task.

Ahmad, Simon, Chithrananda, Grand & Ramsundar, "ChemBERTa-2: Towards Chemical
Foundation Models", arXiv:2209.01712 (2022), §3.2: for every molecule of the
pretraining corpus, about 200 RDKit descriptors are computed and normalised, and
the model regresses all of them at once from its molecule embedding with a
mean-squared-error loss. The task trains the ``embedding`` face
(``encoder.embed(batch)``). The paper found MTR pretraining to transfer better than
masked language modelling on most MoleculeNet tasks at equal compute.

Here the descriptors are RDKit's ``Descriptors.descList`` (the list the
``molecular.rdkit_descriptors`` baseline uses), computed once for the whole
pretraining corpus when the task is built. A descriptor with a non-finite value
on any corpus molecule, or with zero variance over the corpus, is dropped; the
rest are z-scored with the corpus mean and standard deviation and clipped to
``[-clip, clip]``, so that a few heavy-tailed descriptors (``Ipc``, charges of
odd molecules) do not dominate the loss. The head is one linear layer on the
pooled embedding, so whatever the targets need must be in the embedding itself.

Targets are looked up by the batch's ``"smiles"``: first as given, then by
canonical SMILES; a molecule outside the corpus is computed on the fly and
normalised with the corpus statistics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import PretextTask, SSLDataset, encoder_dim, option, parse_options, positive
from selfsup_molecular.features import (
    DescriptorScaling,
    compute_descriptors,
    fit_descriptor_scaling,
)

NAME = "molecular.mtr"


@dataclass(frozen=True)
class MTRConfig:
    """Options of :func:`build` (``molecular.mtr``)."""

    clip: float = option(6.0, positive, "z-scores are clipped to [-clip, clip] (in stds)")


class DescriptorTargets:
    """Normalised descriptor targets of a SMILES corpus, looked up by SMILES.

    ``lookup(smiles)`` returns ``[B, n_targets]`` float32; molecules outside the
    corpus are computed on the fly (and remembered).
    """

    def __init__(self, corpus: list[str], clip: float) -> None:
        if not corpus:
            raise ValueError(f"{NAME}: the pretraining corpus is empty")
        raw = compute_descriptors(corpus)
        self.scaling: DescriptorScaling = fit_descriptor_scaling(
            raw, drop_nonfinite=True, clip=clip
        )
        self.values = torch.from_numpy(self.scaling.transform(raw).astype(np.float32))
        self.index: dict[str, int] = {}
        for i, s in enumerate(corpus):
            self.index.setdefault(s, i)
        self._extra: dict[str, torch.Tensor] = {}

    @property
    def n_targets(self) -> int:
        return int(self.values.shape[1])

    @property
    def names(self) -> tuple[str, ...]:
        return self.scaling.names

    def lookup(self, smiles: list[str]) -> torch.Tensor:
        rows = []
        for s in smiles:
            i = self.index.get(s)
            rows.append(self.values[i] if i is not None else self._unseen(s))
        return torch.stack(rows)

    def _unseen(self, smiles: str) -> torch.Tensor:
        cached = self._extra.get(smiles)
        if cached is not None:
            return cached
        from selfsup_molecular.chem import canonical

        can = canonical(smiles)
        i = self.index.get(can) if can is not None else None
        if i is not None:
            row = self.values[i]
        else:
            raw = compute_descriptors([can or smiles])
            row = torch.from_numpy(self.scaling.transform(raw)[0].astype(np.float32))
        if len(self._extra) < 100_000:
            self._extra[smiles] = row
        return row


class MultiTaskRegression(nn.Module, PretextTask):
    """MTR pretext: a linear head regresses normalised descriptors from the embedding.

    ``forward(batch, generator)`` returns ``{"loss", "embedding"}``: the mean
    squared error over molecules and descriptors (in standard deviations) and the
    encoder's ``[B, D]`` output (detached). The generator is unused: the task is
    deterministic.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: MTRConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = config
        # every pretraining molecule's descriptors are computed once (~6 ms each): on
        # molecular.moses pick a corpus_size (the full corpus would take hours)
        first = getattr(dataset, "first_pretrain_smiles", None)
        if first is not None:  # a token cache's items are ids: let the dataset decode them
            corpus = list(first(None))
        else:
            pre = dataset.pretrain_set()
            corpus = [str(pre[i]) for i in range(len(pre))]  # type: ignore[arg-type]
        self.targets = DescriptorTargets(corpus, config.clip)
        self.head = nn.Linear(encoder_dim(encoder, NAME), self.targets.n_targets)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, dict) or "smiles" not in batch:
            raise TypeError(
                f"{NAME} looks descriptor targets up by SMILES: the batch must be a dict "
                f"with a 'smiles' list (a molecular dataset's collate), got {type(batch).__name__}"
            )
        z = self.encoder.embed(batch)
        pred = self.head(z)
        target = self.targets.lookup(list(batch["smiles"])).to(pred.device, pred.dtype)
        return {"loss": F.mse_loss(pred, target), "embedding": z.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> MultiTaskRegression:
    """``molecular.mtr`` factory; ``options`` are :class:`MTRConfig` fields."""
    return MultiTaskRegression(encoder, dataset, parse_options(MTRConfig, options, NAME))
