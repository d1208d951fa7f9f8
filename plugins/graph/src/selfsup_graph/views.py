"""Stochastic graph views (augmentations) for joint-embedding objectives.

The four augmentations of GraphCL (You et al., "Graph Contrastive Learning with
Augmentations", NeurIPS 2020) and GRACE (Zhu et al., "Deep Graph Contrastive
Representation Learning", ICML GRL+ workshop 2020):

- ``drop_edge``: each (directed) edge is removed with this probability;
- ``mask_feature``: each feature *column* is zeroed with this probability, the
  same columns for every node (GRACE's feature masking);
- ``drop_node``: each node is dropped with this probability;
- ``subgraph``: keep only the nodes reached by a random walk from a random
  start until this fraction of the nodes is covered (GraphCL's subgraph view);
- ``keep_marked``: never drop a node that the dataset marks in ``data.marked``
  (a boolean per node), nor an edge between two marked nodes. A sanity switch:
  ``graph.motifs`` with ``mark_motif=True`` marks its planted motif, so node and
  edge dropping perturb only the random tree and every view keeps the label
  (GraphCL's assumption, issue 16).

Node-level views keep every node so that row ``i`` of both views is the same
node (core's objectives pair rows): a dropped node, or one outside the sampled
subgraph, loses its edges and features instead. Graph-level views remove the
nodes (GraphCL). Every draw uses the trainer's generator, so views are
reproducible. :meth:`GraphViews.batch_view` applies graph-level views to a whole
``Batch`` without splitting it into graphs (about 20x faster on small graphs).

Every graph dataset takes these four as its ``views`` table (``[dataset.views]``
in an experiment file), declared once on its ``DatasetSpec``; before selfsup 0.2
each dataset factory repeated them as keyword options.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from selfsup.api import boolean, check_value, fraction, option, parse_options, unit_interval

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

OWNER = "graph views"


def graph_views(views: Mapping[str, Any] | None) -> GraphViews:
    """The views of a dataset factory's ``views`` table (``[dataset.views]``), checked."""
    return parse_options(GraphViews, dict(views or {}), OWNER)


@dataclass(frozen=True)
class GraphViews:
    """Augmentation strengths (probabilities; ``subgraph`` is the fraction kept, 0 = off).

    The fields are the options of every graph dataset's ``views`` table, whose
    defaults each ``DatasetSpec`` declares (``plugin.VIEWS``, the same values); a
    dataset factory reads the table with :func:`graph_views`. Built directly, the
    fields are checked the same way.
    """

    drop_edge: float = option(0.2, fraction, "probability of removing each (directed) edge")
    mask_feature: float = option(0.2, fraction, "probability of zeroing each feature column")
    drop_node: float = option(0.0, fraction, "probability of dropping each node")
    subgraph: float = option(
        0.0, unit_interval, "fraction of the nodes a random walk keeps (0: off)"
    )
    keep_marked: bool = option(
        False, boolean, "never drop nodes marked in data.marked, nor edges between them"
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            check_value(OWNER, f"option {f.name}", getattr(self, f.name), f.metadata["check"])

    # -- node-level: node i stays row i ---------------------------------------------------
    def node_view(self, data: Data, generator: torch.Generator) -> Data:
        keep_node = self._kept_nodes(data, generator)
        out = data.clone()
        x = data.x
        if self.mask_feature:
            cols = _bernoulli(x.shape[1], 1.0 - self.mask_feature, generator, x.device)
            x = x * cols.to(x.dtype)
        if keep_node is not None:
            x = x * keep_node.to(x.dtype)[:, None]
        out.x = x
        _filter_edges(out, data, self._kept_edges(data, keep_node, generator))
        return out

    # -- graph-level: nodes are removed --------------------------------------------------
    def graph_view(self, data: Data, generator: torch.Generator) -> Data:
        from torch_geometric.utils import subgraph

        keep_node = self._kept_nodes(data, generator)
        out = data.clone()
        if self.mask_feature:
            cols = _bernoulli(data.x.shape[1], 1.0 - self.mask_feature, generator, data.x.device)
            out.x = data.x * cols.to(data.x.dtype)
        _filter_edges(out, data, self._kept_edges(data, None, generator))
        if keep_node is not None:
            if not keep_node.any():  # never return an empty graph
                keep_node[0] = True
            edge_index, edge_attr = subgraph(
                keep_node,
                out.edge_index,
                getattr(out, "edge_attr", None),
                relabel_nodes=True,
                num_nodes=data.num_nodes,
            )
            out.x = out.x[keep_node]
            out.edge_index = edge_index
            if edge_attr is not None:
                out.edge_attr = edge_attr
            if getattr(out, "marked", None) is not None:
                out.marked = out.marked[keep_node]
            out.num_nodes = int(keep_node.sum())
        return out

    # -- a whole batch of graphs at once ---------------------------------------------------
    def batch_view(self, batch: Batch, generator: torch.Generator) -> Batch:
        """:meth:`graph_view` of every graph of a ``Batch``, without splitting it.

        Feature columns are masked for the whole batch at once; a graph whose
        nodes would all be dropped keeps its first node. The random-walk subgraph
        is drawn per graph (it walks one graph at a time), through :meth:`graph_view`.
        """
        from torch_geometric.data import Batch
        from torch_geometric.utils import subgraph

        if self.subgraph and self.subgraph < 1.0:
            return Batch.from_data_list(  # type: ignore[no-any-return]
                [self.graph_view(g, generator) for g in batch.to_data_list()]
            )
        out = batch.clone()
        if self.mask_feature:
            cols = _bernoulli(batch.x.shape[1], 1.0 - self.mask_feature, generator, batch.x.device)
            out.x = batch.x * cols.to(batch.x.dtype)
        _filter_edges(out, batch, self._kept_edges(batch, None, generator))
        keep = self._kept_nodes(batch, generator)
        if keep is not None:
            kept_per_graph = torch.zeros(batch.num_graphs, dtype=torch.long, device=keep.device)
            kept_per_graph.index_add_(0, batch.batch, keep.long())
            keep[batch.ptr[:-1][kept_per_graph == 0]] = True  # never an empty graph
            edge_index, edge_attr = subgraph(
                keep,
                out.edge_index,
                getattr(out, "edge_attr", None),
                relabel_nodes=True,
                num_nodes=batch.num_nodes,
            )
            for key in _node_keys(batch):  # x, marked, and any other per-node tensor
                out[key] = out[key][keep]
            out.edge_index = edge_index
            if edge_attr is not None:
                out.edge_attr = edge_attr
            out.batch = batch.batch[keep]
        _rebuild_bookkeeping(out, batch)
        return out

    # -- shared draws -------------------------------------------------------------------
    def _kept_nodes(self, data: Data, generator: torch.Generator) -> torch.Tensor | None:
        n = int(data.num_nodes)
        device = data.x.device
        keep: torch.Tensor | None = None
        if self.drop_node:
            keep = _bernoulli(n, 1.0 - self.drop_node, generator, device)
        if self.subgraph and self.subgraph < 1.0:
            walk = random_walk_nodes(data.edge_index, n, self.subgraph, generator)
            keep = walk if keep is None else keep & walk
        marked = self._marked(data)
        if keep is not None and marked is not None:
            keep = keep | marked
        return keep

    def _kept_edges(
        self, data: Data, keep_node: torch.Tensor | None, generator: torch.Generator
    ) -> torch.Tensor | None:
        ei = data.edge_index
        keep: torch.Tensor | None = None
        if self.drop_edge:
            keep = _bernoulli(ei.shape[1], 1.0 - self.drop_edge, generator, ei.device)
        marked = self._marked(data)
        if keep is not None and marked is not None:
            keep = keep | (marked[ei[0]] & marked[ei[1]])
        if keep_node is not None:
            both = keep_node[ei[0]] & keep_node[ei[1]]
            keep = both if keep is None else keep & both
        return keep

    def _marked(self, data: Data) -> torch.Tensor | None:
        if not self.keep_marked:
            return None
        marked = getattr(data, "marked", None)
        if marked is None:
            raise ValueError(
                "graph views: keep_marked=True needs a boolean data.marked per node; build "
                "graph.motifs with mark_motif=True, or set keep_marked=False"
            )
        return marked.bool()


def _bernoulli(
    n: int, p_keep: float, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device).to(device) < p_keep


def _filter_edges(out: Data, data: Data, keep: torch.Tensor | None) -> None:
    if keep is None:
        return
    out.edge_index = data.edge_index[:, keep]
    if getattr(data, "edge_attr", None) is not None:
        out.edge_attr = data.edge_attr[keep]


#: the edge-level attributes batch views filter (:func:`_filter_edges`, ``subgraph``)
_EDGE_KEYS = ("edge_index", "edge_attr")


def _node_keys(batch: Batch) -> list[str]:
    """The per-node attributes of a ``Batch``: ``x``, ``marked``, and any other PyG
    sliced like its nodes (a ``Batch`` built by hand has no slices: the first two)."""
    keys = [key for key in ("x", "marked") if getattr(batch, key, None) is not None]
    slices = getattr(batch, "_slice_dict", None) or {}
    keys += [
        key
        for key, s in slices.items()
        if key not in (*_EDGE_KEYS, *keys)
        and isinstance(batch[key], torch.Tensor)
        and batch[key].dim() > 0
        and batch[key].shape[0] == batch.num_nodes
        and torch.equal(s.to(batch.ptr.device), batch.ptr)
    ]
    return keys


def _rebuild_bookkeeping(out: Batch, batch: Batch) -> None:
    """Make ``out.ptr`` and the slices ``to_data_list()`` reads match its kept nodes and edges.

    ``batch.clone()`` copies the original ``_slice_dict`` and ``_inc_dict``; after
    dropping nodes or edges they point past the ends of the tensors (or split
    them at the wrong rows), so ``out.to_data_list()`` or ``out[i]`` would fail.
    Edges stay grouped by graph in the original order, so per-graph counts rebuild
    them.
    """
    n_graphs = batch.num_graphs
    nodes = torch.bincount(out.batch, minlength=n_graphs)
    edges = torch.bincount(out.batch[out.edge_index[0]], minlength=n_graphs)
    node_slices = torch.cat([nodes.new_zeros(1), nodes.cumsum(0)])
    edge_slices = torch.cat([edges.new_zeros(1), edges.cumsum(0)])
    out.ptr = node_slices
    old_slices = getattr(batch, "_slice_dict", None)
    if old_slices is None:  # a Batch not built by from_data_list: nothing to split by
        return
    node_keys = set(_node_keys(batch))
    slices = dict(old_slices)
    for key in slices:
        if key in _EDGE_KEYS:
            slices[key] = edge_slices.to(old_slices[key].device)
        elif key in node_keys:
            slices[key] = node_slices.to(old_slices[key].device)
    out._slice_dict = slices
    inc = dict(batch._inc_dict)
    if "edge_index" in inc:  # each graph's edge indices are offset by its first node
        inc["edge_index"] = node_slices[:-1].to(torch.as_tensor(inc["edge_index"]).device)
    out._inc_dict = inc


def random_walk_nodes(
    edge_index: torch.Tensor, num_nodes: int, fraction: float, generator: torch.Generator
) -> torch.Tensor:
    """Boolean mask of the nodes a random walk visits until ``fraction`` are covered.

    The walk restarts at a random node when it is stuck (an isolated node, or 20
    steps without a new node), so disconnected graphs are covered too.
    """
    target = max(1, round(fraction * num_nodes))
    src, dst = edge_index.cpu()
    order = torch.argsort(src)
    dst = dst[order]
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(torch.bincount(src, minlength=num_nodes), 0)
    draws = torch.rand(8 * num_nodes + 64, generator=generator, device=generator.device).cpu()
    seen = torch.zeros(num_nodes, dtype=torch.bool)
    node = int(draws[0] * num_nodes)
    seen[node] = True
    count, stale, i = 1, 0, 1
    while count < target:
        if i >= len(draws):  # out of pre-drawn numbers: draw more, still from the generator
            draws = torch.rand(len(draws), generator=generator, device=generator.device).cpu()
            i = 0
        lo, hi = int(ptr[node]), int(ptr[node + 1])
        if hi == lo or stale > 20:  # stuck: restart somewhere else
            node = int(draws[i] * num_nodes)
            stale = 0
        else:
            node = int(dst[lo + int(draws[i] * (hi - lo))])
        i += 1
        if not seen[node]:
            seen[node] = True
            count += 1
            stale = 0
        else:
            stale += 1
    return seen.to(edge_index.device)
