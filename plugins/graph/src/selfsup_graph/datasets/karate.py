"""Zachary's karate club (Zachary, J. Anthropol. Res. 1977), as shipped in PyG.

34 members, 78 friendships (156 directed edges), 4 communities found by
modularity clustering as labels (PyG's ``KarateClub``), one-hot identity
features. The graph is built into torch-geometric: nothing is downloaded.
PyG marks one training node per community; selfsup uses a seeded stratified
60/20/20 split instead, so that probes have more than four labels.
"""

from __future__ import annotations

from selfsup.components import TaskSpec

from ..data import NodeGraphDataset
from ..views import GraphViews


def build(
    *,
    seed: int = 0,
    holdout_edges: float = 0.0,
    drop_edge: float = 0.2,
    mask_feature: float = 0.2,
    drop_node: float = 0.0,
    subgraph: float = 0.0,
) -> NodeGraphDataset:
    from torch_geometric.data import Data
    from torch_geometric.datasets import KarateClub

    g = KarateClub()[0]
    data = Data(x=g.x, edge_index=g.edge_index, y=g.y)
    return NodeGraphDataset(
        "graph.karate",
        data,
        task=TaskSpec("classification", int(g.y.max()) + 1),
        views=GraphViews(drop_edge, mask_feature, drop_node, subgraph),
        source="Zachary's karate club (torch_geometric.datasets.KarateClub)",
        seed=seed,
        holdout_edges=holdout_edges,
    )
