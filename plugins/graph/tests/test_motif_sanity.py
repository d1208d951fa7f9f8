"""graph.motifs' sanity options (issue 16): degree features and label-preserving views."""

from __future__ import annotations

import pytest
import torch

from selfsup_graph.datasets import motifs
from selfsup_graph.views import GraphViews


def _motif_edges(g) -> int:  # directed edges between two marked nodes
    src, dst = g.edge_index
    return int((g.marked[src] & g.marked[dst]).sum())


def test_options_keep_the_graphs_and_mark_the_motif() -> None:
    plain = motifs.build(n_graphs=40)
    marked = motifs.build(n_graphs=40, features="degree", mark_motif=True)
    for g, h in zip(plain.graphs, marked.graphs):
        assert torch.equal(g.edge_index, h.edge_index) and torch.equal(g.y, h.y)
        size, edges = motifs.MOTIFS[motifs.CLASS_NAMES[int(h.y)]]
        assert int(h.marked.sum()) == size and _motif_edges(h) == 2 * len(edges)
        degree = torch.bincount(h.edge_index[0], minlength=h.num_nodes).clamp(1, 8)
        assert torch.equal(h.x.argmax(1) + 1, degree) and torch.equal(
            h.x.sum(1), torch.ones(h.num_nodes)
        )
    with pytest.raises(ValueError, match="features='dgree' is not one of"):
        motifs.build(n_graphs=40, features="dgree")


@pytest.mark.parametrize("whole_batch", [True, False])
def test_keep_marked_views_never_touch_the_motif(whole_batch: bool) -> None:
    from torch_geometric.data import Batch

    ds = motifs.build(n_graphs=40, mark_motif=True)
    batch = Batch.from_data_list(ds.graphs[:16])
    gen = torch.Generator().manual_seed(0)
    strong = {"drop_node": 0.5, "drop_edge": 0.5, "mask_feature": 0.0}
    for keep, intact in ((True, 16), (False, 0)):
        views = GraphViews(**strong, keep_marked=keep)
        if whole_batch:  # per graph through the batch vector
            out = views.batch_view(batch, gen)
            src, dst = out.edge_index
            inner = out.marked[src] & out.marked[dst]
            counts = [
                (int(out.marked[out.batch == i].sum()), int(inner[out.batch[src] == i].sum()))
                for i in range(16)
            ]
            n_nodes = int(out.num_nodes)
        else:
            graphs = [views.graph_view(g, gen) for g in ds.graphs[:16]]
            counts = [(int(v.marked.sum()), _motif_edges(v)) for v in graphs]
            n_nodes = sum(int(v.num_nodes) for v in graphs)
        kept = [c == (int(g.marked.sum()), _motif_edges(g)) for c, g in zip(counts, ds.graphs)]
        assert sum(kept) == intact if keep else sum(kept) <= 2
        assert n_nodes < int(batch.num_nodes)  # the tree is still perturbed
    with pytest.raises(ValueError, match=r"keep_marked=True needs a boolean data\.marked"):
        GraphViews(drop_node=0.2, keep_marked=True).graph_view(
            motifs.build(n_graphs=40).graphs[0], gen
        )


def test_the_benchmark_uses_degree_features() -> None:
    # on the generator's noise features a 2-layer GIN cannot fit its own training graphs
    # (BENCHMARKS.md, graph.motifs), so the benchmark builds them with one-hot degrees
    from selfsup.api import Registry

    reg = Registry(plugins=["graph"], strict=True)
    reg.load()
    for key in ("graph.motifs", "graph.sanity_motifs"):
        assert reg.get("benchmark", key).dataset_options == {"features": "degree"}
