"""Zachary's karate club (Zachary, J. Anthropol. Res. 1977), as shipped in PyG.

34 members, 78 friendships (156 directed edges), 4 communities found by
modularity clustering as labels (PyG's ``KarateClub``), one-hot identity
features. The graph is built into torch-geometric: nothing is downloaded.
PyG marks one training node per community; selfsup uses a seeded stratified
60/20/20 split instead, so that probes have more than four labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selfsup.api import TaskSpec

from ..data import NodeGraphDataset
from ..views import graph_views


def build(
    *,
    seed: int = 0,
    holdout_edges: float = 0.0,
    views: Mapping[str, Any] | None = None,
) -> NodeGraphDataset:
    from torch_geometric.data import Data
    from torch_geometric.datasets import KarateClub

    g = KarateClub()[0]
    data = Data(x=g.x, edge_index=g.edge_index, y=g.y)
    return NodeGraphDataset(
        "graph.karate",
        data,
        task=TaskSpec("classification", int(g.y.max()) + 1),
        views=graph_views(views),
        source="Zachary's karate club (torch_geometric.datasets.KarateClub)",
        seed=seed,
        holdout_edges=holdout_edges,
    )
