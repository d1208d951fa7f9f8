"""SimCLR: the NT-Xent contrastive loss on two views.

Chen, Kornblith, Norouzi & Hinton, "A Simple Framework for Contrastive Learning of
Visual Representations", ICML 2020 (arXiv:2002.05709). Each of the ``2N`` projected
views is pulled towards the other view of its sample and pushed from the other
``2N - 2`` views of the batch; the loss is averaged over all ``2N`` anchors, so it
is symmetric in the two views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import PretextTask, SSLDataset
from selfsup.distributed import gather_with_grad
from selfsup.objectives.projection import (
    NORMS,
    Norm,
    check_embeddings,
    encoder_dim,
    mlp_head,
    two_views,
)
from selfsup.options import (
    check_value,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross entropy (SimCLR, Eq. 1), a.k.a. InfoNCE.

    ``forward(z1, z2)`` takes the two views' projections ``[N, D]`` (row ``i`` of
    each is the same sample) and returns a scalar: the mean over the ``2N``
    anchors of ``-log(exp(s_pos / t) / sum_{k != anchor} exp(s_k / t))`` where
    ``s`` is cosine similarity and the denominator runs over the positive and the
    ``2N - 2`` negatives.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        check_value("NTXentLoss", "temperature", temperature, positive)
        self.temperature = float(temperature)

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        # N >= 2: with one sample there are no negatives and the loss is 0.
        check_embeddings("NTXentLoss", z1, z2, min_batch=2)
        n = z1.shape[0]
        z = F.normalize(torch.cat([z1, z2], dim=0), dim=1)
        logits = z @ z.T / self.temperature
        # A view is not its own negative: drop the diagonal from every softmax.
        self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
        logits = logits.masked_fill(self_mask, float("-inf"))
        idx = torch.arange(n, device=z.device)
        positives = torch.cat([idx + n, idx])
        return F.cross_entropy(logits, positives)


@dataclass(frozen=True)
class SimCLRConfig:
    """SimCLR options; ``build(..., **options)`` accepts these field names.

    ``temperature``: 0.1, the best value of the paper's ImageNet study (Table 5).
    Its CIFAR-10 runs (Appendix B.9) preferred 0.5, and a higher temperature is
    the safer choice for the small batches of a CPU run: pass ``temperature=0.5``.
    The projector is the paper's ImageNet one: one hidden layer (§2.1) of 2048
    units and 128 outputs, with BatchNorm as in the official code.
    """

    temperature: float = option(0.1, positive, "softmax temperature of the contrastive loss")
    proj_hidden_dim: int = option(2048, positive_int, "hidden width of the projector")
    proj_out_dim: int = option(128, positive_int, "output width of the projector")
    proj_layers: int = option(2, positive_int, "linear layers of the projector")
    proj_norm: Norm = option(
        "batch", one_of(*NORMS), "normalisation in the heads: batch, layer or none")



def simclr_projector(in_dim: int, config: SimCLRConfig) -> nn.Sequential:
    """The projection head ``g``: ``[B, in_dim] -> [B, proj_out_dim]``."""
    return mlp_head(
        in_dim, config.proj_hidden_dim, config.proj_out_dim, config.proj_layers, config.proj_norm
    )


class SimCLR(nn.Module, PretextTask):
    """The SimCLR pretext task: encoder ``f``, projector ``g``, NT-Xent on two views.

    ``forward(batch, generator)`` returns ``{"loss", "embedding"}``; ``embedding``
    is ``f(view 1)`` ``[B, embed_dim]``, detached. Under DDP the projections are
    gathered so the negatives come from the global batch.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: SimCLRConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = simclr_projector(encoder_dim(encoder, "simclr"), config)
        self.criterion = NTXentLoss(config.temperature)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.encoder.embed(v1)
        z1 = gather_with_grad(self.projector(h1))
        z2 = gather_with_grad(self.projector(self.encoder.embed(v2)))
        return {"loss": self.criterion(z1, z2), "embedding": h1.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> SimCLR:
    """``core.simclr`` factory; ``options`` are :class:`SimCLRConfig` fields."""
    return SimCLR(encoder, dataset, parse_options(SimCLRConfig, options, "core.simclr"))
