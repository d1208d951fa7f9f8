"""Malformed graphs fail early with the dataset, the field and the value; views are seeded."""

from __future__ import annotations

import pytest
import torch

from selfsup.api import TaskSpec
from selfsup_graph.data import (
    GraphDataError,
    GraphLevelDataset,
    NodeGraphDataset,
    check_graph,
    stratified_masks,
)
from selfsup_graph.views import GraphViews, random_walk_nodes


def _graph(**fields: object):
    """A 4-node ring; ``fields`` replace or add attributes."""
    from torch_geometric.data import Data

    src = torch.arange(4)
    ring = torch.stack([torch.cat([src, (src + 1) % 4]), torch.cat([(src + 1) % 4, src])])
    base = {"x": torch.ones(4, 3), "edge_index": ring}
    return Data(**{**base, **fields})


def test_a_valid_graph_passes() -> None:
    check_graph(_graph(), "test.ok")
    check_graph(_graph(edge_index=torch.zeros(2, 0, dtype=torch.long)), "test.no_edges")


def test_edge_index_out_of_range_names_dataset_field_and_value() -> None:
    bad = torch.tensor([[0, 1, 2], [1, 2, 7]])
    with pytest.raises(GraphDataError) as err:
        check_graph(_graph(edge_index=bad), "test.range")
    msg = str(err.value)
    assert "'test.range'" in msg and "edge_index" in msg and "= 7" in msg and "4 nodes" in msg
    with pytest.raises(GraphDataError, match="= -1"):
        check_graph(_graph(edge_index=torch.tensor([[0, -1], [1, 0]])), "test.negative")


def test_edge_list_of_shape_e_by_2_is_refused() -> None:
    with pytest.raises(GraphDataError, match=r"\[2, num_edges\].*\(3, 2\).*transpose"):
        check_graph(_graph(edge_index=torch.tensor([[0, 1], [1, 2], [2, 3]])), "test.shape")


def test_float_or_bool_edge_index_is_refused() -> None:
    with pytest.raises(GraphDataError, match=r"integers.*float32"):
        check_graph(_graph(edge_index=torch.tensor([[0.0, 1.0], [1.0, 0.0]])), "test.float")
    with pytest.raises(GraphDataError, match=r"integers.*bool"):
        check_graph(_graph(edge_index=torch.ones(2, 2, dtype=torch.bool)), "test.bool")


def test_nan_features_name_node_and_feature() -> None:
    x = torch.ones(4, 3)
    x[2, 1] = float("nan")
    with pytest.raises(GraphDataError) as err:
        check_graph(_graph(x=x), "test.nan")
    msg = str(err.value)
    assert "'test.nan'" in msg and "node 2, feature 1" in msg and "nan" in msg


def test_missing_or_malformed_x() -> None:
    with pytest.raises(GraphDataError, match="'x' are missing"):
        check_graph(_graph(x=None), "test.no_x")
    with pytest.raises(GraphDataError, match=r"\[num_nodes, num_features\]"):
        check_graph(_graph(x=torch.ones(4)), "test.flat_x")
    with pytest.raises(GraphDataError, match="floating point"):
        check_graph(_graph(x=torch.ones(4, 2, dtype=torch.long)), "test.int_x")
    with pytest.raises(GraphDataError, match="'edge_index' is missing"):
        check_graph(_graph(edge_index=None), "test.no_edges")


def test_edge_attr_and_y_must_line_up() -> None:
    with pytest.raises(GraphDataError, match="'edge_attr' has 3 rows but there are 8 edges"):
        check_graph(_graph(edge_attr=torch.ones(3, 2)), "test.edge_attr")
    with pytest.raises(GraphDataError, match="'y' has 3 entries"):
        check_graph(_graph(y=torch.tensor([0, 1, 0])), "test.y")
    with pytest.raises(GraphDataError, match="graph 5"):
        check_graph(_graph(edge_attr=torch.ones(3)), "test.edge_attr", graph="graph 5")


def test_classification_needs_labels() -> None:
    with pytest.raises(GraphDataError, match=r"'test.unlabelled'.*one label per node"):
        NodeGraphDataset("test.unlabelled", _graph(), task=TaskSpec("classification", 2))
    ds = NodeGraphDataset("test.none", _graph(), task=TaskSpec("none"))
    assert ds.splits == () and ds.labelled_split("train") is None


def test_node_dataset_refuses_a_bad_graph_at_build_time() -> None:
    with pytest.raises(GraphDataError, match=r"'test.built'"):
        NodeGraphDataset(
            "test.built", _graph(edge_index=torch.tensor([[0], [9]])), task=TaskSpec("none")
        )


def test_graph_level_dataset_checks_every_graph() -> None:
    good = _graph(y=torch.tensor([0]))
    with pytest.raises(GraphDataError, match="no graphs"):
        GraphLevelDataset("test.empty", [], {}, task=TaskSpec("classification", 2))
    with pytest.raises(GraphDataError, match="graph 1"):
        GraphLevelDataset(
            "test.bad", [good, _graph(x=None)], {"train": [0]}, task=TaskSpec("classification", 2)
        )
    with pytest.raises(GraphDataError, match="graph 1: a classification task needs one label"):
        GraphLevelDataset(
            "test.labels", [good, _graph()], {"train": [0]}, task=TaskSpec("classification", 2)
        )
    with pytest.raises(GraphDataError, match=r"feature widths \[2, 3\]"):
        GraphLevelDataset(
            "test.widths",
            [good, _graph(x=torch.ones(4, 2), y=torch.tensor([1]))],
            {"train": [0]},
            task=TaskSpec("classification", 2),
        )


def test_stratified_masks_partition_each_class() -> None:
    y = torch.tensor([0] * 10 + [1] * 5)
    masks = stratified_masks(y, seed=0)
    assert torch.equal(sum(m.long() for m in masks.values()), torch.ones(15, dtype=torch.long))
    assert int(masks["train"][y == 1].sum()) == 3 and int(masks["train"][y == 0].sum()) == 6
    assert all(torch.equal(masks[s], stratified_masks(y, seed=0)[s]) for s in masks)


# -- views ------------------------------------------------------------------------------------
def test_views_reject_bad_strengths() -> None:
    with pytest.raises(ValueError, match="drop_edge"):
        GraphViews(drop_edge=1.0)
    with pytest.raises(ValueError, match="subgraph"):
        GraphViews(subgraph=1.5)


def _same(a, b) -> bool:
    return torch.equal(a.x, b.x) and torch.equal(a.edge_index, b.edge_index)


def test_node_view_is_seeded_and_keeps_every_node(node_dataset: NodeGraphDataset) -> None:
    data = node_dataset.data
    views = GraphViews(drop_edge=0.3, mask_feature=0.3, drop_node=0.1, subgraph=0.8)
    a = views.node_view(data, torch.Generator().manual_seed(0))
    b = views.node_view(data, torch.Generator().manual_seed(0))
    c = views.node_view(data, torch.Generator().manual_seed(1))
    assert _same(a, b) and not _same(a, c)
    for v in (a, c):
        assert v.num_nodes == data.num_nodes and v.x.shape == data.x.shape
        assert v.edge_index.shape[1] < data.edge_index.shape[1]
        assert torch.equal(v.y, data.y)  # row i is still node i
    assert torch.equal(data.x, node_dataset.data.x)  # the original is untouched


def test_dataset_augment_uses_the_generator(node_dataset: NodeGraphDataset) -> None:
    batch = node_dataset.collate(node_dataset.pretrain_set())
    a = node_dataset.augment(batch, torch.Generator().manual_seed(5))
    b = node_dataset.augment(batch, torch.Generator().manual_seed(5))
    assert _same(a, b) and a.num_nodes == batch.num_nodes


def test_graph_view_removes_nodes_but_never_all(graph_dataset: GraphLevelDataset) -> None:
    g = graph_dataset.graphs[0]
    dropped = GraphViews(drop_edge=0.0, mask_feature=0.0, drop_node=0.5)
    views = [dropped.graph_view(g, torch.Generator().manual_seed(s)) for s in range(20)]
    assert any(v.num_nodes < g.num_nodes for v in views)
    for v in views:
        assert 1 <= v.num_nodes <= g.num_nodes
        check_graph(v, "test.view")  # relabelled edges stay in range
    again = dropped.graph_view(g, torch.Generator().manual_seed(3))
    assert _same(again, views[3])
    empty = GraphViews(drop_node=0.99).graph_view(g, torch.Generator().manual_seed(0))
    assert empty.num_nodes >= 1


def test_random_walk_covers_the_fraction(node_dataset: NodeGraphDataset) -> None:
    data = node_dataset.data
    seen = random_walk_nodes(data.edge_index, data.num_nodes, 0.5, torch.Generator().manual_seed(0))
    assert int(seen.sum()) == round(0.5 * data.num_nodes)
    no_edges = torch.zeros(2, 0, dtype=torch.long)
    assert int(random_walk_nodes(no_edges, 10, 0.3, torch.Generator()).sum()) == 3
