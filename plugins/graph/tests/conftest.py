"""Small graphs shared by the tests: fast to build, real code paths."""

from __future__ import annotations

import pytest
import torch

from selfsup.api import TaskSpec
from selfsup_graph.data import GraphLevelDataset, NodeGraphDataset
from selfsup_graph.datasets import sbm
from selfsup_graph.views import GraphViews

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def node_dataset() -> NodeGraphDataset:
    """A 120-node, 3-block SBM with class-informative features."""
    return sbm.build(
        n_nodes=120, n_blocks=3, p_in=0.15, p_out=0.02, n_features=8, feature_signal=1.0, seed=0
    )


@pytest.fixture(scope="session")
def graph_dataset() -> GraphLevelDataset:
    """40 small graphs, two classes: rings versus stars, with noisy features."""
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(0)
    graphs = []
    for i in range(40):
        n = 6 + i % 5
        if i % 2:  # star
            src = torch.zeros(n - 1, dtype=torch.long)
            dst = torch.arange(1, n)
        else:  # ring
            src = torch.arange(n)
            dst = (src + 1) % n
        ei = torch.stack([torch.cat([src, dst]), torch.cat([dst, src])])
        graphs.append(
            Data(x=torch.randn(n, 4, generator=g), edge_index=ei, y=torch.tensor([i % 2]))
        )
    return GraphLevelDataset(
        "test.rings_and_stars",
        graphs,
        {"train": range(0, 24), "val": range(24, 32), "test": range(32, 40)},
        task=TaskSpec("classification", 2),
        views=GraphViews(drop_node=0.1),
    )
