"""GraphCL: graph-level contrastive learning between two augmented views of each graph.

You, Chen, Sui, Chen, Wang & Shen, "Graph Contrastive Learning with
Augmentations", NeurIPS 2020 (arXiv:2010.13902).

For a batch of ``N`` graphs, two views of every graph are drawn with
``dataset.augment`` (the dataset's graph views: node dropping, edge
perturbation, feature masking, subgraphs). The encoder pools each view to
``h [N, D]``; a projection head ``g`` (``Linear(D, proj_dim) -> ReLU ->
Linear(proj_dim, proj_dim)``, the paper's two-layer MLP) gives
``z1, z2 [N, proj_dim]``. With ``sim`` the cosine similarity and ``tau`` the
temperature, the paper's loss (Eq. 3) for graph ``n`` is::

    l_n = -log  exp(sim(z1_n, z2_n) / tau) / sum_{n' != n} exp(sim(z1_n, z2_n') / tau)

averaged over the ``N`` graphs. This follows the paper and the authors' code,
which differ from SimCLR's NT-Xent in two ways: the negatives are only the
*other view's* other graphs (no intra-view negatives), and the positive is not
in the denominator; the anchors are the first view's graphs. Because the
positive is left out of the denominator the loss is not bounded below by 0 (it
can be negative once positives beat every negative). The exported encoder output
is ``h`` of view 1 (before the head). Under DDP the projections are gathered, so
the negatives come from the global batch. The task trains the encoder's
``embedding`` face, ``encoder.embed(view)``: one pooled row per graph.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_GRAPH,
    PretextTask,
    SSLDataset,
    check_embeddings,
    encoder_dim,
    gather_with_grad,
    mlp_head,
    option,
    parse_options,
    positive,
    positive_int,
    two_views,
)

NAME = "graph.graphcl"


@dataclass(frozen=True)
class GraphCLConfig:
    """Options of :func:`build` (``graph.graphcl``)."""

    proj_dim: int = option(64, positive_int, "hidden and output width of the projection head")
    temperature: float = option(
        0.2, positive, "tau; 0.2 is the value of the authors' unsupervised TU code"
    )


def graphcl_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """GraphCL's loss (Eq. 3) of projections ``z1, z2 [N, D]``; a scalar.

    Row ``n`` of ``z1`` is the anchor, row ``n`` of ``z2`` its positive, the other
    rows of ``z2`` its negatives; the positive is not in the denominator.
    """
    check_embeddings(NAME, z1, z2, min_batch=2)  # one graph has no negative
    # float32 with autocast off: under bf16 autocast the matmul would round the logits
    # (up to 1/tau in size) to about three significant digits before the log-sum-exp
    with torch.autocast(device_type=z1.device.type, enabled=False):
        z1 = F.normalize(z1.float(), dim=1)
        z2 = F.normalize(z2.float(), dim=1)
        logits = z1 @ z2.T / temperature  # [N, N]: logits[n, n'] = sim(z1_n, z2_n') / tau
        positive = logits.diagonal()
        eye = torch.eye(logits.shape[0], dtype=torch.bool, device=logits.device)
        negatives = logits.masked_fill(eye, float("-inf")).logsumexp(dim=1)
    return (negatives - positive).mean()


def _check_inputs(dataset: SSLDataset) -> None:
    if dataset.modality != GRAPH_GRAPH:
        raise ValueError(
            f"{NAME} contrasts whole graphs: it needs a 'graph.graph' dataset, but "
            f"{dataset.name!r} has modality {dataset.modality!r}; for the nodes of one "
            "graph use graph.grace"
        )


class GraphCL(nn.Module, PretextTask):
    """The GraphCL pretext task; see the module docstring.

    ``forward(batch, generator)`` takes a ``Batch`` of ``N >= 2`` graphs and returns
    ``{"loss", "embedding"}``: the loss (a scalar) and the pooled encoder output
    of view 1 ``[N, D]``, detached.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GraphCLConfig) -> None:
        super().__init__()
        _check_inputs(dataset)
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        dim = encoder_dim(encoder, NAME)
        self.projector = mlp_head(dim, config.proj_dim, config.proj_dim, n_layers=2, norm="none")

    def _embed(self, view: Any) -> torch.Tensor:
        h: torch.Tensor = self.encoder.embed(view)
        graphs = getattr(view, "num_graphs", 1)
        if h.ndim != 2 or h.shape[0] != graphs:
            raise ValueError(
                f"{NAME}: the encoder's embedding face returned {tuple(h.shape)} for a batch "
                f"of {graphs} graphs; it must pool to one row per graph ([num_graphs, D]); "
                "build the encoder for the graph.graph dataset"
            )
        return h

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self._embed(v1)
        z1 = gather_with_grad(self.projector(h1))
        z2 = gather_with_grad(self.projector(self._embed(v2)))
        loss = graphcl_loss(z1, z2, self.config.temperature)
        return {"loss": loss, "embedding": h1.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GraphCL:
    """``graph.graphcl`` factory; ``options`` are :class:`GraphCLConfig` fields."""
    return GraphCL(encoder, dataset, parse_options(GraphCLConfig, options, NAME))
