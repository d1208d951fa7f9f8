"""Two-factor node labels: one factor in the features, the other in the edges.

A sanity setting for multi-task pretraining (ParetoGNN, ``graph.paretognn``):
each node has two independent binary factors, ``a`` and ``b``, and its label is
``2 * b + a`` (four balanced classes).

- ``b`` lives in the edges only: a two-block stochastic block model (Holland,
  Laskey and Leinhardt, Social Networks 1983), an edge joining two nodes of the
  same ``b`` with probability ``p_in`` and of different ``b`` with ``p_out``.
- ``a`` lives in the features only: ``n_features`` Gaussian dimensions,
  ``feature_signal * (2a - 1) * mu + noise`` with one fixed unit direction ``mu``
  drawn from the seed and unit noise; ``a`` is independent of the blocks, so
  averaging over neighbours (about half of them of the other ``a``) dilutes it.

So a pretext that learns only the structure (``graph.pairwise_distance``, shortest
path classes) can find ``b`` but not ``a``, and one that learns only the features
(``graph.node_clustering``, k-means pseudo-labels of ``x``) ``a`` but not ``b``; a
combination of both should beat either one. Everything is drawn from ``seed``;
nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from selfsup.api import TaskSpec

from ..data import NodeGraphDataset
from ..views import graph_views


def two_factor_graph(
    n_nodes: int, p_in: float, p_out: float, n_features: int, feature_signal: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x [N, F] float32, edge_index [2, E] undirected, y [N] = 2b + a)``."""
    if n_nodes < 8:
        raise ValueError(f"graph.two_factor: need at least 8 nodes, got n_nodes={n_nodes}")
    for name, p in (("p_in", p_in), ("p_out", p_out)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"graph.two_factor: {name} must be a probability in [0, 1], got {p}")
    rng = np.random.default_rng(seed)
    y = np.arange(n_nodes) % 4
    rng.shuffle(y)
    a, b = y % 2, y // 2
    iu, ju = np.triu_indices(n_nodes, k=1)
    edge = rng.random(len(iu)) < np.where(b[iu] == b[ju], p_in, p_out)
    src, dst = iu[edge], ju[edge]
    edge_index = torch.from_numpy(
        np.stack([np.concatenate([src, dst]), np.concatenate([dst, src])])
    ).long()
    mu = rng.standard_normal(n_features)
    mu /= np.linalg.norm(mu)
    x = feature_signal * (2 * a[:, None] - 1) * mu + rng.standard_normal((n_nodes, n_features))
    return torch.from_numpy(x.astype(np.float32)), edge_index, torch.from_numpy(y).long()


def build(
    *,
    n_nodes: int = 600,
    p_in: float = 0.02,
    p_out: float = 0.002,
    n_features: int = 64,
    feature_signal: float = 3.0,
    seed: int = 0,
    holdout_edges: float = 0.0,
    views: Mapping[str, Any] | None = None,
) -> NodeGraphDataset:
    from torch_geometric.data import Data

    x, edge_index, y = two_factor_graph(n_nodes, p_in, p_out, n_features, feature_signal, seed)
    return NodeGraphDataset(
        "graph.two_factor",
        Data(x=x, edge_index=edge_index, y=y),
        task=TaskSpec("classification", 4),
        views=graph_views(views),
        source=f"two-factor graph ({n_nodes} nodes, label 2b + a; b: blocks p_in={p_in}, "
        f"p_out={p_out}; a: features, signal {feature_signal}; seed={seed})",
        seed=seed,
        holdout_edges=holdout_edges,
    )
