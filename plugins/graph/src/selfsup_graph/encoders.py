"""GNN encoders: GCN, GAT and GIN, for node-level and graph-level datasets.

- GCN: Kipf and Welling, "Semi-Supervised Classification with Graph
  Convolutional Networks", ICLR 2017 (``torch_geometric.nn.GCNConv``). Takes a
  scalar edge weight (a one-column ``edge_attr``) but no edge feature vectors.
- GAT: Veličković et al., "Graph Attention Networks", ICLR 2018 (``GATConv``,
  heads concatenated in hidden layers, averaged in the last). Edge features
  enter the attention scores (``edge_dim``).
- GIN: Xu et al., "How Powerful are Graph Neural Networks?", ICLR 2019
  (``GINConv`` with a two-layer MLP); with edge features, ``GINEConv`` (Hu et
  al., "Strategies for Pre-training Graph Neural Networks", ICLR 2020).

Defaults: 2 layers, hidden width 128, embedding width 64, ReLU between layers
(none after the last), dropout 0.0, ``add_self_loops`` as the layer's default.

Faces (``EncoderSpec(faces=("embedding", "tokens", "stages"))``):

- ``embed(data)`` (the ``embedding`` face, also ``forward``): on a ``graph.node``
  dataset one row per node ``[N, D]`` (the nodes are the samples); on a
  ``graph.graph`` dataset the last layer pooled per graph ``[G, D]``
  (``pooling``: mean, add or max; GIN's papers use add);
- ``tokens(data)`` (the ``tokens`` face): the node states of each graph as
  :class:`selfsup.api.Tokens`, ``torch_geometric.utils.to_dense_batch`` of the
  node rows by ``data.batch`` (``[G, N_max, D]`` and its mask; one graph without
  ``batch`` gives ``[1, N, D]``, every node real). ``tokens(data).flat()`` is the
  node rows ``[num_nodes, D]`` in the batch's node order, for pretexts that work
  on nodes, of one graph or of many;
- ``stages(data)`` (the ``stages`` face): each layer's output (after its ReLU; the
  last layer's is the embedding), as node rows ``[N, D_l]`` or pooled per graph
  ``[G, D_l]`` like ``embed``: what layer-wise comparison and stage-wise
  distillation (``core.lsskd``) read.

Before selfsup 0.2 pretexts called ``node_states(data)`` and ``pool(h, data)``
directly and read the ``level`` attribute; those are now the encoder's own
business behind the two faces.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from selfsup.api import GRAPH_GRAPH, GRAPH_NODE, SSLDataset, Tokens

CONVS = ("gcn", "gat", "gin")
POOLINGS = ("mean", "add", "max")


def node_tokens(h: torch.Tensor, data: Any) -> Tokens:
    """Node rows ``h [num_nodes, D]`` of ``data`` as :class:`Tokens`, graph by graph.

    ``torch_geometric.utils.to_dense_batch`` by ``data.batch``: ``[G, N_max, D]``
    states, padding masked out. A single graph (a ``Data`` without ``batch``) is
    ``[1, N, D]`` with every node real. ``.flat()`` gives ``h`` back, in order.
    """
    from torch_geometric.utils import to_dense_batch

    batch = getattr(data, "batch", None)  # a PyG Batch has it; a single Data does not
    if batch is None:
        return Tokens(h[None], torch.ones(1, h.shape[0], dtype=torch.bool, device=h.device))
    states, mask = to_dense_batch(h, batch, batch_size=int(data.num_graphs))
    return Tokens(states, mask)


class GNNEncoder(nn.Module):
    """A stack of message-passing layers; see the module docstring for defaults."""

    def __init__(
        self,
        in_dim: int,
        *,
        conv: str = "gcn",
        hidden_dim: int = 128,
        embed_dim: int = 64,
        n_layers: int = 2,
        heads: int = 4,
        dropout: float = 0.0,
        edge_dim: int | None = None,
        level: str = "node",
        pooling: str = "mean",
    ) -> None:
        super().__init__()
        if conv not in CONVS:
            raise ValueError(f"GNN encoder: conv={conv!r} is not one of {list(CONVS)}")
        if level not in ("node", "graph"):
            raise ValueError(f"GNN encoder: level must be 'node' or 'graph', got {level!r}")
        if pooling not in POOLINGS:
            raise ValueError(f"GNN encoder: pooling={pooling!r} is not one of {list(POOLINGS)}")
        if n_layers < 1 or hidden_dim < 1 or embed_dim < 1 or heads < 1:
            raise ValueError("GNN encoder: n_layers, hidden_dim, embed_dim and heads must be >= 1")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GNN encoder: dropout must be in [0, 1), got {dropout!r}")
        if conv == "gcn" and edge_dim not in (None, 1):
            raise ValueError(
                f"GNN encoder: GCN takes a scalar edge weight, but the edges have "
                f"{edge_dim} features; use conv='gat' or conv='gin' for edge "
                "feature vectors"
            )
        self.conv, self.level, self.pooling = conv, level, pooling
        self.in_dim, self.embed_dim, self.edge_dim = in_dim, embed_dim, edge_dim
        self.dropout = dropout
        widths = [in_dim] + [hidden_dim] * (n_layers - 1) + [embed_dim]
        self.layers = nn.ModuleList(
            _layer(conv, w_in, w_out, heads=heads, last=i == n_layers - 1, edge_dim=edge_dim)
            for i, (w_in, w_out) in enumerate(itertools.pairwise(widths))
        )
        self.act = nn.ReLU()

    def embed(self, data: Any) -> torch.Tensor:
        """The ``embedding`` face: node rows ``[N, D]`` (``level="node"``) or per-graph
        ``pooling`` of them ``[G, D]`` (``level="graph"``)."""
        h = self._node_states(data)
        return h if self.level == "node" else self._pool(h, data)

    def tokens(self, data: Any) -> Tokens:
        """The ``tokens`` face: each graph's node states ``[G, N_max, D]`` and mask."""
        return node_tokens(self._node_states(data), data)

    def stages(self, data: Any) -> list[torch.Tensor]:
        """The ``stages`` face: every layer's output, shallow to deep, as ``embed`` gives
        the last (node rows, or pooled per graph)."""
        states = self._layer_states(data)
        return states if self.level == "node" else [self._pool(h, data) for h in states]

    def forward(self, data: Any) -> torch.Tensor:
        return self.embed(data)

    def _node_states(self, data: Any) -> torch.Tensor:
        """Node rows ``[num_nodes, embed_dim]``."""
        return self._layer_states(data)[-1]

    def _layer_states(self, data: Any) -> list[torch.Tensor]:
        """Each layer's node rows ``[num_nodes, D_l]``, after its activation."""
        states: list[torch.Tensor] = []
        x, edge_index = data.x, data.edge_index
        edge_attr = getattr(data, "edge_attr", None) if self.edge_dim else None
        for i, layer in enumerate(self.layers):
            x = nn.functional.dropout(x, self.dropout, self.training)
            if edge_attr is None:
                x = layer(x, edge_index)
            elif self.conv == "gcn":
                x = layer(x, edge_index, edge_attr.view(-1))
            else:
                x = layer(x, edge_index, edge_attr=edge_attr)
            if i < len(self.layers) - 1:
                x = self.act(x)
            states.append(x)
        return states

    def _pool(self, h: torch.Tensor, data: Any) -> torch.Tensor:
        """Per-graph ``pooling`` of node rows ``h``."""
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        fn = {"mean": global_mean_pool, "add": global_add_pool, "max": global_max_pool}
        return fn[self.pooling](h, batch, size=getattr(data, "num_graphs", None))  # type: ignore[no-any-return]


def _layer(
    conv: str, w_in: int, w_out: int, *, heads: int, last: bool, edge_dim: int | None
) -> nn.Module:
    from torch_geometric import nn as gnn

    if conv == "gcn":
        return gnn.GCNConv(w_in, w_out)
    if conv == "gat":
        if last:
            return gnn.GATConv(w_in, w_out, heads=heads, concat=False, edge_dim=edge_dim)
        if w_out % heads:
            raise ValueError(
                f"GNN encoder: GAT hidden_dim {w_out} must be divisible by heads {heads}"
            )
        return gnn.GATConv(w_in, w_out // heads, heads=heads, edge_dim=edge_dim)
    mlp = nn.Sequential(nn.Linear(w_in, w_out), nn.ReLU(), nn.Linear(w_out, w_out))
    if edge_dim:
        return gnn.GINEConv(mlp, edge_dim=edge_dim)
    return gnn.GINConv(mlp)


def build(
    dataset: SSLDataset,
    *,
    conv: str = "gcn",
    hidden_dim: int = 128,
    embed_dim: int = 64,
    n_layers: int = 2,
    heads: int = 4,
    dropout: float = 0.0,
    pooling: str = "mean",
    use_edge_attr: bool = True,
) -> GNNEncoder:
    """Encoder factory: input width, edge features and level come from the dataset."""
    if dataset.modality not in (GRAPH_NODE, GRAPH_GRAPH):
        raise ValueError(
            f"GNN encoders need a graph dataset; {dataset.name!r} has modality {dataset.modality!r}"
        )
    edge_dim = getattr(dataset, "edge_dim", None) if use_edge_attr else None
    return GNNEncoder(
        int(dataset.num_features),  # type: ignore[attr-defined]
        conv=conv,
        hidden_dim=hidden_dim,
        embed_dim=embed_dim,
        n_layers=n_layers,
        heads=heads,
        dropout=dropout,
        edge_dim=edge_dim,
        pooling=pooling,
        level="node" if dataset.modality == GRAPH_NODE else "graph",
    )


def build_gcn(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gcn", **options)


def build_gat(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gat", **options)


def build_gin(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gin", **options)


def build_edge_gat(dataset: SSLDataset, **options: Any) -> nn.Module:
    """``graph.edge_gat``: the GAT of self-supervised edge features, which lives with its
    pretext in :mod:`selfsup_graph.pretexts.edge_features` (one file per paper)."""
    from .pretexts.edge_features import build_encoder

    return build_encoder(dataset, **options)
