"""Views of whole batches, label-free pretraining batches, masks, the bench baselines."""

from __future__ import annotations

import pytest
import torch

from selfsup.api import (
    BaselineContext,
    Constant,
    EvalContext,
    InputFeatures,
    NotApplicable,
    Registry,
    TaskSpec,
)
from selfsup_graph.data import GraphDataError, GraphLevelDataset, NodeGraphDataset
from selfsup_graph.views import GraphViews


def test_batch_view_drops_nodes_per_graph_and_keeps_every_graph(
    graph_dataset: GraphLevelDataset,
) -> None:
    batch = graph_dataset.collate(graph_dataset.pretrain_set())
    view = GraphViews(drop_edge=0.0, mask_feature=0.0, drop_node=0.9).batch_view(
        batch, torch.Generator().manual_seed(0)
    )
    counts = torch.bincount(view.batch, minlength=batch.num_graphs)
    assert view.num_graphs == batch.num_graphs and bool((counts >= 1).all())
    assert int(view.ptr[-1]) == view.x.shape[0] < batch.x.shape[0]
    # edges stay inside their graph and index the kept nodes
    assert bool((view.batch[view.edge_index[0]] == view.batch[view.edge_index[1]]).all())
    assert int(view.edge_index.max()) < view.x.shape[0]


@pytest.mark.parametrize(
    "views",
    [
        GraphViews(drop_edge=0.3, mask_feature=0.0),
        GraphViews(drop_edge=0.2, mask_feature=0.2, drop_node=0.5),
        GraphViews(drop_edge=0.0, mask_feature=0.0, drop_node=0.5, keep_marked=True),
    ],
    ids=["drop_edge", "drop_node", "keep_marked"],
)
def test_batch_view_splits_back_into_consistent_graphs(views: GraphViews) -> None:
    # regression: the view kept the original batch's slices, so to_data_list() read
    # past the ends of the kept nodes and edges (RuntimeError)
    from torch_geometric.data import Batch

    from selfsup_graph.datasets import motifs

    graphs = motifs.build(n_graphs=40, mark_motif=True).graphs[:8]
    batch = Batch.from_data_list(graphs)
    view = views.batch_view(batch, torch.Generator().manual_seed(0))
    parts = view.to_data_list()
    assert len(parts) == len(graphs)
    counts = torch.bincount(view.batch, minlength=len(graphs))
    for i, (part, whole) in enumerate(zip(parts, graphs, strict=True)):
        assert part.num_nodes == int(counts[i]) == part.x.shape[0] == part.marked.shape[0]
        assert 1 <= part.num_nodes <= whole.num_nodes
        assert part.edge_index.numel() == 0 or (
            int(part.edge_index.min()) >= 0 and int(part.edge_index.max()) < part.num_nodes
        )
        assert int(part.y) == int(whole.y)
        if views.keep_marked:  # the whole motif survives, nodes and edges
            assert int(part.marked.sum()) == int(whole.marked.sum())
        assert view[i].num_nodes == part.num_nodes  # indexing reads the same slices
    rebuilt = Batch.from_data_list(parts)
    assert torch.equal(rebuilt.x, view.x) and torch.equal(rebuilt.edge_index, view.edge_index)
    assert torch.equal(rebuilt.ptr, view.ptr)


def test_batch_view_is_reproducible_and_stochastic(graph_dataset: GraphLevelDataset) -> None:
    batch = graph_dataset.collate(graph_dataset.pretrain_set())
    a, b, c = (graph_dataset.augment(batch, torch.Generator().manual_seed(s)) for s in (1, 1, 2))
    assert torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)
    assert not (a.x.shape == c.x.shape and torch.equal(a.x, c.x))


def test_subgraph_views_keep_node_rows_aligned(node_dataset: NodeGraphDataset) -> None:
    data = node_dataset.pretrain_set()[0]
    view = GraphViews(subgraph=0.5).node_view(data, torch.Generator().manual_seed(0))
    kept = view.x.abs().sum(1) > 0
    assert view.x.shape == data.x.shape
    assert 0.3 * data.num_nodes <= int(kept.sum()) <= 0.5 * data.num_nodes + 1
    assert bool(kept[view.edge_index].all())  # no edge touches a node outside the subgraph


def test_pretraining_batches_carry_no_labels(node_dataset: NodeGraphDataset) -> None:
    data = node_dataset.pretrain_set()[0]
    assert not any(k in data for k in ("y", "train_mask", "val_mask", "test_mask"))
    assert "y" in node_dataset.data


def test_given_masks_must_cover_every_split(node_dataset: NodeGraphDataset) -> None:
    data = node_dataset.data.clone()
    del data["val_mask"]
    with pytest.raises(GraphDataError, match="'val_mask' must be a bool tensor"):
        NodeGraphDataset("test.masks", data, task=TaskSpec("classification", 3))
    data = node_dataset.data.clone()
    data.val_mask = data.val_mask.nonzero().view(-1)  # indices, not a mask
    with pytest.raises(GraphDataError, match="one entry per node"):
        NodeGraphDataset("test.masks", data, task=TaskSpec("classification", 3))


def test_mean_and_input_baselines_give_one_row_per_node(node_dataset: NodeGraphDataset) -> None:
    batch, _, rows = next(node_dataset.labelled_batches("test", batch_size=10))
    assert Constant(node_dataset)(batch).shape == (node_dataset.num_nodes, 1)
    assert InputFeatures(node_dataset)(batch)[rows].shape == (10, node_dataset.num_features)


def test_graph_level_input_features_are_one_row_per_graph(graph_dataset: GraphLevelDataset) -> None:
    batch = graph_dataset.collate(graph_dataset.pretrain_set()[:5])
    assert Constant(graph_dataset)(batch).shape == (5, 1)
    assert graph_dataset.input_features(batch).shape == (5, graph_dataset.num_features + 2)


def test_pca_baseline_serves_the_stored_pca_and_skips_other_graphs(
    node_dataset: NodeGraphDataset,
) -> None:
    spec = Registry(plugins=["graph"], strict=True).load().get("baseline", "graph.pca")
    assert spec.faces == ("embedding",) and spec.modalities == ("graph.node",)
    data = node_dataset.data.clone()
    data.pca = torch.randn(node_dataset.num_nodes, 5, generator=torch.Generator().manual_seed(0))
    cells = NodeGraphDataset("test.cells", data, task=TaskSpec("classification", 3))
    context = BaselineContext(encoder_factory=torch.nn.Identity, eval=EvalContext())
    model = spec.build(cells, context)
    batch, _, _ = next(cells.labelled_batches("test", batch_size=10))
    assert model.embed_dim == 5 and list(model.parameters()) == []
    assert torch.equal(model.embed(batch), data.pca) and torch.equal(model(batch), data.pca)
    with pytest.raises(NotApplicable, match=r"graph\.pbmc68k"):
        spec.build(node_dataset, context)
