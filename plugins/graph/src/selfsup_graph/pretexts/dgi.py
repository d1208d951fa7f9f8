"""DGI: Deep Graph Infomax, node states against a summary of the whole graph.

Veličković, Fedus, Hamilton, Liò, Bengio & Hjelm, "Deep Graph Infomax", ICLR 2019
(arXiv:1809.10341).

For a graph with node features ``X [N, F]`` and edges ``A``:

1. corruption ``C``: ``X~ = X[perm]``, the rows of ``X`` shuffled over the nodes
   while the edges stay (the paper's transductive corruption, §3.4);
   ``perm`` is drawn with the trainer's generator, so a run is reproducible;
2. the encoder gives node states ``H = E(X, A)`` and ``H~ = E(X~, A)``, both
   ``[N, D]``;
3. readout ``s = sigmoid(mean_i h_i)`` ``[D]`` (§3.4);
4. a bilinear discriminator scores ``D(h, s) = sigmoid(h^T W s)`` with
   ``W [D, D]`` (no bias, as in the paper; Xavier-initialised as in the
   authors' code);
5. the loss is the binary cross entropy of Eq. 1 with ``N`` positives
   ``(h_i, s)`` and ``N`` negatives ``(h~_j, s)``, averaged over the ``2N`` pairs.

The exported encoder output is ``H`` of the clean graph. The paper's encoder is
one GCN layer with a PReLU; here it is whatever node encoder is given. DGI is
node-level: one graph, one summary (a batch is the whole graph). It trains the
encoder's ``tokens`` face: ``H = encoder.tokens(graph).flat()`` (selfsup 0.1 called
``encoder.node_states``; the values are the same).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import GRAPH_NODE, PretextTask, SSLDataset, encoder_dim, parse_options

NAME = "graph.dgi"


@dataclass(frozen=True)
class DGIConfig:
    """Options of :func:`build` (``graph.dgi``): DGI has none.

    The corruption, readout and discriminator are fixed by the paper; the class
    exists so that an unknown option is refused with the list of valid ones.
    """


def corrupt_features(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DGI's corruption: the rows of ``x [N, F]`` in a random order drawn with ``generator``."""
    perm = torch.randperm(x.shape[0], generator=generator, device=generator.device)
    return x[perm.to(x.device)]


def dgi_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Eq. 1: BCE of discriminator logits ``positive [N]`` (label 1) and ``negative [M]``
    (label 0), averaged over the ``N + M`` pairs; a scalar."""
    logits = torch.cat([positive, negative]).float()
    labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)]).float()
    return F.binary_cross_entropy_with_logits(logits, labels)


def _check_inputs(dataset: SSLDataset) -> None:
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{NAME} discriminates the nodes of one graph against its summary: it needs a "
            f"'graph.node' dataset, but {dataset.name!r} has modality {dataset.modality!r}; "
            "for a set of graphs use graph.graphcl or graph.graphmae"
        )


class DeepGraphInfomax(nn.Module, PretextTask):
    """The DGI pretext task; see the module docstring.

    ``forward(data, generator)`` returns ``{"loss", "embedding"}``: the BCE of
    Eq. 1 (a scalar) and the clean node states ``[N, D]``, detached.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: DGIConfig) -> None:
        super().__init__()
        _check_inputs(dataset)
        self.encoder = encoder
        self.config = config
        dim = encoder_dim(encoder, NAME)
        self.weight = nn.Parameter(torch.empty(dim, dim))
        nn.init.xavier_uniform_(self.weight)

    def node_states(self, data: Any) -> torch.Tensor:
        """The encoder's node states ``[num_nodes, D]``: its ``tokens`` face, flattened."""
        return self.encoder.tokens(data).flat()  # type: ignore[no-any-return]

    def readout(self, h: torch.Tensor) -> torch.Tensor:
        """The summary ``s = sigmoid(mean of the rows of h [N, D])`` ``[D]``."""
        return torch.sigmoid(h.mean(dim=0))

    def discriminate(self, h: torch.Tensor, summary: torch.Tensor) -> torch.Tensor:
        """Logits ``h_i^T W s`` ``[N]`` of node states ``h [N, D]`` against ``s [D]``."""
        return h @ (self.weight @ summary)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        corrupted = copy.copy(batch)  # shallow: shares the edges, gets its own x
        corrupted.x = corrupt_features(batch.x, generator)
        h = self.node_states(batch)
        h_corrupt = self.node_states(corrupted)
        summary = self.readout(h)
        loss = dgi_loss(self.discriminate(h, summary), self.discriminate(h_corrupt, summary))
        return {"loss": loss, "embedding": h.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> DeepGraphInfomax:
    """``graph.dgi`` factory; DGI takes no options (see :class:`DGIConfig`)."""
    return DeepGraphInfomax(encoder, dataset, parse_options(DGIConfig, options, NAME))
