"""GRACE: node-level contrastive learning between two augmented views of one graph.

Zhu, Xu, Yu, Liu, Wu & Wang, "Deep Graph Contrastive Representation Learning",
ICML Workshop on Graph Representation Learning and Beyond (GRL+) 2020
(arXiv:2006.04131).

Two views ``G1, G2`` of the graph are drawn with ``dataset.augment`` (GRACE's edge
removal and feature masking; node-level views keep every node, so row ``i`` of
both views is node ``i``). A shared GNN encoder gives node states
``H1, H2 [N, D]``; a shared two-layer projection head ``g`` with an ELU
(``Linear(D, proj_dim) -> ELU -> Linear(proj_dim, proj_dim)``, as in the authors'
code) gives ``U = g(H1), V = g(H2) [N, proj_dim]``. With ``theta`` the cosine
similarity and ``tau`` the temperature, the loss of anchor ``u_i`` is (Eq. 1)::

    l(u_i, v_i) = -log  e^{theta(u_i, v_i)/tau}
                        / ( e^{theta(u_i, v_i)/tau}                 # the positive
                            + sum_{k != i} e^{theta(u_i, v_k)/tau}  # inter-view negatives
                            + sum_{k != i} e^{theta(u_i, u_k)/tau}) # intra-view negatives

and the objective is symmetric over the views (Eq. 2)::

    J = 1/(2N) sum_i [ l(u_i, v_i) + l(v_i, u_i) ]

That is exactly SimCLR's NT-Xent on the ``2N`` projected rows (every row but the
anchor itself is in the denominator), so core's ``selfsup.api.NTXentLoss``
computes it. The exported encoder output is ``H1`` (before the head).

The task trains the encoder's ``tokens`` face (``PretextSpec(face="tokens")``): the
node states are ``encoder.tokens(graph).flat()``, the same values and gradients as
the ``encoder.node_states(graph)`` that selfsup 0.1 called.

The loss costs ``O(N^2)`` memory; ``max_nodes`` (default: every node) computes it
on a random subset of that many nodes per step, drawn with the trainer's
generator, for graphs too large for a full ``2N x 2N`` similarity matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    NTXentLoss,
    PretextTask,
    SSLDataset,
    encoder_dim,
    option,
    optional,
    parse_options,
    positive,
    positive_int,
    two_views,
)

NAME = "graph.grace"


def _at_least_two(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 2
    return None if ok else "be an int >= 2 (a node needs at least one negative)"


@dataclass(frozen=True)
class GRACEConfig:
    """Options of :func:`build` (``graph.grace``).

    ``temperature``: the paper tunes it per dataset (the authors' configs range
    from 0.4 for Cora to 0.9 for CiteSeer); 0.5 is a middle value.
    """

    proj_dim: int = option(64, positive_int, "hidden and output width of the projection head")
    temperature: float = option(0.5, positive, "tau of the loss")
    max_nodes: int | None = option(
        None, optional(_at_least_two),
        "compute the loss on at most this many random nodes per step (both views, the "
        "same nodes); None: every node",
    )


def grace_projector(in_dim: int, proj_dim: int) -> nn.Sequential:
    """GRACE's head ``g``: ``[N, in_dim] -> [N, proj_dim]``, two linear layers and an ELU."""
    return nn.Sequential(nn.Linear(in_dim, proj_dim), nn.ELU(), nn.Linear(proj_dim, proj_dim))


def _check_inputs(dataset: SSLDataset) -> None:
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{NAME} contrasts the nodes of one graph: it needs a 'graph.node' dataset, but "
            f"{dataset.name!r} has modality {dataset.modality!r}; for a set of graphs use "
            "graph.graphcl or graph.graphmae"
        )


class GRACE(nn.Module, PretextTask):
    """The GRACE pretext task; see the module docstring.

    ``forward(data, generator)`` returns ``{"loss", "embedding"}``: the symmetric
    loss ``J`` (a scalar) and the node states of view 1 ``[N, D]``, detached.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GRACEConfig) -> None:
        super().__init__()
        _check_inputs(dataset)
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        self.projector = grace_projector(encoder_dim(encoder, NAME), config.proj_dim)
        self.criterion = NTXentLoss(config.temperature)

    def node_states(self, data: Any) -> torch.Tensor:
        """The encoder's node states ``[num_nodes, D]``: its ``tokens`` face, flattened."""
        return self.encoder.tokens(data).flat()  # type: ignore[no-any-return]

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        v1, v2 = two_views(self.dataset, batch, generator)
        h1 = self.node_states(v1)
        h2 = self.node_states(v2)
        if h1.shape != h2.shape:
            raise ValueError(
                f"{NAME}: the two views gave node states {tuple(h1.shape)} and "
                f"{tuple(h2.shape)}; node-level views must keep every node in place"
            )
        u, v = h1, h2
        n = h1.shape[0]
        if self.config.max_nodes is not None and n > self.config.max_nodes:
            # Subsample after encoding: message passing still sees the whole graph;
            # only the O(N^2) loss is restricted. The draw uses the trainer's generator.
            rows = torch.randperm(n, generator=generator, device=generator.device)
            rows = rows[: self.config.max_nodes].to(h1.device)
            u, v = h1[rows], h2[rows]
        loss = self.criterion(self.projector(u), self.projector(v))
        return {"loss": loss, "embedding": h1.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GRACE:
    """``graph.grace`` factory; ``options`` are :class:`GRACEConfig` fields."""
    return GRACE(encoder, dataset, parse_options(GRACEConfig, options, NAME))
