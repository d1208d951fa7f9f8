"""Generated graph classification: which motif was planted in a random graph?

After the synthetic benchmarks of GNN explanation: BA-Shapes (Ying et al.,
"GNNExplainer: Generating Explanations for Graph Neural Networks", NeurIPS 2019)
plants house motifs in a Barabási-Albert graph, and BA-2Motifs (Luo et al.,
"Parameterized Explainer for Graph Neural Network", NeurIPS 2020) labels each
graph by the motif (house or 5-cycle) attached to it. Here there are four
classes, balanced: a 6-cycle, a house (5 nodes), a 5-leaf star (6 nodes) and a
4-clique.

Each graph: a total size ``n`` uniform in 16..30; a Barabási-Albert tree
(Barabási and Albert, Science 1999; one edge per new node) on ``n - k`` nodes,
``k`` the motif's size, so that the node count says nothing about the class;
0 to 3 random extra edges in the base, so that the number of independent cycles
alone does not give the class away either; the motif joined to a random base node
by one edge; nodes shuffled. Node features are ``1 + 0.1 * noise`` in
``N_FEATURES`` columns, the same distribution for every class: the label is in
the structure only. Graph labels ``y`` have shape ``[1]``; the split is a seeded,
stratified 80/10/10. Everything is drawn from ``seed`` (600 graphs in well under
a second); nothing is downloaded.

Sanity options (issue 16): ``features="degree"`` gives every node a one-hot of its
degree (1..``N_FEATURES``, larger degrees in the last column) instead of noise:
features that the structure predicts, GraphMAE's assumption; the ``graph.motifs``
benchmark uses them, since on noise a 2-layer GIN cannot fit the label. ``mark_motif=True``
stores ``data.marked``, a boolean per node that is true on the planted motif, so
that views built with ``keep_marked=True`` perturb only the random tree and keep
the label (GraphCL's assumption). The graphs themselves do not change: the same
seed gives the same edges and labels under every option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from selfsup.api import TaskSpec

from ..data import GraphLevelDataset, stratified_masks
from ..views import graph_views

N_FEATURES = 8
#: class name -> (motif size, its edges)
MOTIFS: dict[str, tuple[int, list[tuple[int, int]]]] = {
    "cycle6": (6, [(i, (i + 1) % 6) for i in range(6)]),
    "house": (5, [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)]),  # a square with a roof
    "star5": (6, [(0, i) for i in range(1, 6)]),
    "clique4": (4, [(i, j) for i in range(4) for j in range(i + 1, 4)]),
}
CLASS_NAMES = tuple(MOTIFS)


FEATURES = ("noise", "degree")


def motif_graph(label: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """``(edge_index [2, E] undirected and sorted, n_nodes)`` of one graph of class ``label``."""
    edge_index, n, _ = motif_graph_marked(label, rng)
    return edge_index, n


def motif_graph_marked(
    label: int, rng: np.random.Generator
) -> tuple[np.ndarray, int, np.ndarray]:
    """:func:`motif_graph` and the ids of the motif's nodes ``[k]``."""
    k, motif = MOTIFS[CLASS_NAMES[label]]
    n = int(rng.integers(16, 31))
    base = n - k
    edges = {(0, 1)}
    ends = [0, 1]  # each node once per edge end: a uniform pick is preferential attachment
    for new in range(2, base):
        old = ends[int(rng.integers(len(ends)))]
        edges.add((old, new))
        ends += [old, new]
    extra = int(rng.integers(0, 4))
    while extra:
        u, v = sorted(int(a) for a in rng.integers(0, base, size=2))
        if u != v and (u, v) not in edges:
            edges.add((u, v))
            extra -= 1
    edges.update((base + u, base + v) for u, v in motif)
    edges.add((int(rng.integers(base)), base + int(rng.integers(k))))  # join the motif
    perm = rng.permutation(n)  # shuffle node ids: no positional hint where the motif is
    pairs = perm[np.array(sorted(edges)).T]
    both = np.concatenate([pairs, pairs[::-1]], axis=1)
    order = np.lexsort((both[1], both[0]))
    return both[:, order], n, perm[base:]


def degree_features(edge_index: np.ndarray, n: int) -> np.ndarray:
    """One-hot degree ``[n, N_FEATURES]``: column ``d - 1`` for degree ``d``, the last for more."""
    degree = np.bincount(edge_index[0], minlength=n)
    x = np.zeros((n, N_FEATURES))
    x[np.arange(n), np.clip(degree, 1, N_FEATURES) - 1] = 1.0
    return x


def build(
    *,
    n_graphs: int = 600,
    seed: int = 0,
    features: str = "noise",
    mark_motif: bool = False,
    views: Mapping[str, Any] | None = None,
) -> GraphLevelDataset:
    """``n_graphs`` graphs (at least 40, so that each split holds every class), seeded."""
    from torch_geometric.data import Data

    if n_graphs < 40:
        raise ValueError(
            f"graph.motifs: n_graphs={n_graphs}; use at least 40 so that the "
            "80/10/10 split gives every class to every split"
        )
    if features not in FEATURES:
        raise ValueError(f"graph.motifs: features={features!r} is not one of {list(FEATURES)}")
    rng = np.random.default_rng(seed)
    y = np.arange(n_graphs) % len(MOTIFS)  # balanced classes
    rng.shuffle(y)
    graphs = []
    for label in y:
        edge_index, n, motif_nodes = motif_graph_marked(int(label), rng)
        x = 1.0 + 0.1 * rng.standard_normal((n, N_FEATURES))  # drawn always: same graphs
        if features == "degree":
            x = degree_features(edge_index, n)
        graph = Data(
            x=torch.from_numpy(x.astype(np.float32)),
            edge_index=torch.from_numpy(edge_index.astype(np.int64)),
            y=torch.tensor([int(label)]),
        )
        if mark_motif:
            graph.marked = torch.zeros(n, dtype=torch.bool)
            graph.marked[torch.from_numpy(motif_nodes.astype(np.int64))] = True
        graphs.append(graph)
    masks = stratified_masks(torch.from_numpy(y), seed, fractions=(0.8, 0.1))
    dataset = GraphLevelDataset(
        "graph.motifs",
        graphs,
        {s: m.nonzero().view(-1).tolist() for s, m in masks.items()},
        task=TaskSpec("classification", len(MOTIFS)),
        views=graph_views(views),
        source=f"generated: {n_graphs} graphs with a planted motif {CLASS_NAMES}, seed {seed}"
        + (f", {features} features" if features != "noise" else "")
        + (", motif marked" if mark_motif else ""),
    )
    dataset.class_names = list(CLASS_NAMES)  # type: ignore[attr-defined]
    return dataset
