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
On a ``graph.node`` dataset ``forward(data)`` returns one row per node; on a
``graph.graph`` dataset it pools the last layer per graph (``pooling``: mean,
add or max; GIN's papers use add). :meth:`GNNEncoder.node_states` always gives
node rows, for pretexts that work on nodes of many graphs.
"""

from __future__ import annotations

import itertools
from typing import Any

import torch
from torch import nn

from selfsup.components import SSLDataset

CONVS = ("gcn", "gat", "gin")
POOLINGS = ("mean", "add", "max")


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

    def node_states(self, data: Any) -> torch.Tensor:
        """Node embeddings ``[num_nodes, embed_dim]``."""
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
        return x

    def pool(self, h: torch.Tensor, data: Any) -> torch.Tensor:
        """Per-graph ``pooling`` of node states ``h``."""
        from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

        batch = getattr(data, "batch", None)
        if batch is None:
            batch = torch.zeros(h.shape[0], dtype=torch.long, device=h.device)
        fn = {"mean": global_mean_pool, "add": global_add_pool, "max": global_max_pool}
        return fn[self.pooling](h, batch, size=getattr(data, "num_graphs", None))  # type: ignore[no-any-return]

    def forward(self, data: Any) -> torch.Tensor:
        h = self.node_states(data)
        return h if self.level == "node" else self.pool(h, data)


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
    if dataset.modality not in ("graph.node", "graph.graph"):
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
        level="node" if dataset.modality == "graph.node" else "graph",
    )


def build_gcn(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gcn", **options)


def build_gat(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gat", **options)


def build_gin(dataset: SSLDataset, **options: Any) -> GNNEncoder:
    return build(dataset, conv="gin", **options)


class NodeAttribute(nn.Module):
    """A fixed 'encoder' returning a stored node matrix (e.g. the expression PCA), for baselines.

    It has no parameters: pretexts cannot train it; benchmarks use it as
    ``encoder:graph.pca``, the logistic regression on the PCA of expression.
    """

    def __init__(self, attribute: str, width: int) -> None:
        super().__init__()
        self.attribute, self.embed_dim = attribute, width

    def forward(self, data: Any) -> torch.Tensor:
        return getattr(data, self.attribute).float()  # type: ignore[no-any-return]


def build_pca(dataset: SSLDataset) -> NodeAttribute:
    """``graph.pca``: the PCA of expression that single-cell datasets store as ``data.pca``."""
    data = getattr(dataset, "data", None)
    pca = getattr(data, "pca", None)
    if pca is None:
        raise ValueError(
            f"encoder graph.pca needs a single-cell graph dataset that stores the "
            f"expression PCA (graph.pbmc68k, graph.h5ad); {dataset.name!r} has none"
        )
    return NodeAttribute("pca", int(pca.shape[1]))
