"""GraphMAE: masked node-feature reconstruction with a re-masked GNN decoder.

Hou, Liu, Cen, Dong, Yang, Wang & Tang, "GraphMAE: Self-Supervised Masked Graph
Autoencoders", KDD 2022 (arXiv:2205.10803).

For node features ``X [N, F]`` (one graph, or every node of a batch of graphs):

1. a random ``mask_rate`` share of the nodes, ``M`` (``|M| = int(mask_rate * N)``,
   at least one), drawn with the trainer's generator, have their features
   replaced by a learnable ``[MASK]`` token ``x_M [F]`` (§3.2);
2. the encoder gives node states ``H [N, D]`` of the masked graph (its ``tokens``
   face, ``encoder.tokens(masked).flat()``, so graph-level encoders work too);
3. a linear map ``[D] -> [D]`` (no bias, as in the authors' code) gives the
   decoder input, whose rows of ``M`` are *re-masked* to zeros (the ``[DMASK]``
   token of §3.3), so that a masked node must be reconstructed from its
   neighbours' codes;
4. a single-layer GNN decoder (``decoder``: a one-head GAT as in the paper, or a
   GCN) maps the codes back to ``Z [N, F]`` on the same edges;
5. the loss is the scaled cosine error of Eq. 2 on the masked nodes only::

       L = 1/|M| sum_{i in M} (1 - x_i^T z_i / (||x_i|| ||z_i||)) ^ alpha,  alpha >= 1

   ``alpha > 1`` down-weights nodes already reconstructed well (cosine near 1).

The exported encoder output is the encoder's output on the masked graph: node
rows ``H`` on a ``graph.node`` dataset, ``H`` pooled per graph on a
``graph.graph`` one. The task trains the ``tokens`` face; the pooled rows it logs
on a ``graph.graph`` dataset (collapse diagnostics only, detached) are the
encoder's ``embedding`` face of the masked graph, ``encoder.embed(masked)`` run a
second time without gradients: before selfsup 0.2 it pooled ``H`` with the
encoder's ``pool(h, data)``, which is no longer part of the encoder's contract.
The values are the same; the extra forward costs a little time, and with encoder
dropout > 0 it draws other dropout masks (the loss is unaffected by them, but the
global random stream moves on). The authors' random-substitution variant (``replace_rate``,
replacing a few masked nodes by other nodes' features) is not implemented.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_GRAPH,
    GRAPH_NODE,
    PretextTask,
    SSLDataset,
    encoder_dim,
    one_of,
    open_unit,
    option,
    parse_options,
)

NAME = "graph.graphmae"
DECODERS: tuple[str, ...] = ("gat", "gcn")


def _at_least_one(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1
    return None if ok else "be a number >= 1 (1 is the plain cosine error)"


@dataclass(frozen=True)
class GraphMAEConfig:
    """Options of :func:`build` (``graph.graphmae``)."""

    mask_rate: float = option(
        0.5, open_unit, "share of the nodes masked per step; the paper tunes it, 0.5 is common"
    )
    alpha: float = option(
        2.0, _at_least_one,
        "exponent gamma of the scaled cosine error; the paper tunes it between 1 and 3",
    )
    decoder: Literal["gat", "gcn"] = option(
        "gat", one_of(*DECODERS), "the single decoder layer: 'gat' (the paper's, one head) or 'gcn'"
    )


def sce_loss(recon: torch.Tensor, target: torch.Tensor, alpha: float) -> torch.Tensor:
    """Scaled cosine error (Eq. 2): mean over rows of ``(1 - cos(recon_i, target_i))^alpha``.

    ``recon`` and ``target`` are ``[M, F]``; returns a scalar. A zero row has cosine
    0 with anything (``F.normalize`` leaves it zero), so it costs exactly 1.
    """
    recon = F.normalize(recon.float(), dim=-1)
    target = F.normalize(target.float(), dim=-1)
    # clamp: rounding can make 1 - cos slightly negative, and a fractional power of
    # a negative number is NaN
    return (1.0 - (recon * target).sum(dim=-1)).clamp_min(0.0).pow(alpha).mean()


def mask_nodes(
    num_nodes: int, mask_rate: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Boolean mask ``[num_nodes]`` of ``max(1, int(mask_rate * num_nodes))`` random nodes."""
    n_mask = min(num_nodes, max(1, int(mask_rate * num_nodes)))
    perm = torch.randperm(num_nodes, generator=generator, device=generator.device)
    mask = torch.zeros(num_nodes, dtype=torch.bool, device=device)
    mask[perm[:n_mask].to(device)] = True
    return mask


def _decoder(kind: str, in_dim: int, out_dim: int) -> nn.Module:
    from torch_geometric.nn import GATConv, GCNConv

    if kind == "gat":
        return GATConv(in_dim, out_dim, heads=1, concat=False)
    return GCNConv(in_dim, out_dim)


def _feature_width(dataset: SSLDataset) -> int:
    """The node feature width ``F`` of the dataset's graphs (after checking the modality)."""
    if dataset.modality not in (GRAPH_NODE, GRAPH_GRAPH):
        raise ValueError(
            f"{NAME} reconstructs node features of graphs: it needs a 'graph.node' or "
            f"'graph.graph' dataset, but {dataset.name!r} has modality {dataset.modality!r}"
        )
    return int(dataset.pretrain_set()[0].x.shape[1])  # type: ignore[index]


class GraphMAE(nn.Module, PretextTask):
    """The GraphMAE pretext task; see the module docstring.

    ``forward(batch, generator)`` returns ``{"loss", "embedding"}``: the scaled
    cosine error on the masked nodes (a scalar) and the encoder output of the
    masked graph (``[N, D]`` node rows, or ``[G, D]`` for a batch of graphs),
    detached.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: GraphMAEConfig) -> None:
        super().__init__()
        self.in_dim = _feature_width(dataset)
        self.encoder = encoder
        self.config = config
        self.node_level = dataset.modality == GRAPH_NODE
        dim = encoder_dim(encoder, NAME)
        # zeros, as in the authors' code: masking starts as feature dropout
        self.mask_token = nn.Parameter(torch.zeros(1, self.in_dim))
        self.encoder_to_decoder = nn.Linear(dim, dim, bias=False)
        self.decoder = _decoder(config.decoder, dim, self.in_dim)

    def node_states(self, data: Any) -> torch.Tensor:
        """The encoder's node states ``[num_nodes, D]``: its ``tokens`` face, flattened."""
        return self.encoder.tokens(data).flat()  # type: ignore[no-any-return]

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        x = batch.x
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"{NAME}: node features have shape {tuple(x.shape)}, but the task was built "
                f"for {self.in_dim} features per node"
            )
        mask = mask_nodes(x.shape[0], self.config.mask_rate, generator, x.device)
        masked = copy.copy(batch)  # shallow: shares the edges, gets its own x
        masked.x = torch.where(mask[:, None], self.mask_token.to(x.dtype), x)
        h = self.node_states(masked)
        # re-mask: the decoder must rebuild a masked node from its neighbours' codes (its
        # self loop carries a zero code)
        code = self.encoder_to_decoder(h).masked_fill(mask[:, None], 0.0)
        recon = self.decoder(code, batch.edge_index)
        loss = sce_loss(recon[mask], x[mask], self.config.alpha)
        if self.node_level:
            embedding = h.detach()
        else:  # the per-graph rows, for the collapse diagnostics only (see the module doc)
            with torch.no_grad():
                embedding = self.encoder.embed(masked)
        return {"loss": loss, "embedding": embedding}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> GraphMAE:
    """``graph.graphmae`` factory; ``options`` are :class:`GraphMAEConfig` fields."""
    return GraphMAE(encoder, dataset, parse_options(GraphMAEConfig, options, NAME))
