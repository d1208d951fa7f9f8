"""Planetoid and TUDataset benchmarks read by torch-geometric from files you provide.

selfsup never downloads: both readers first check that the raw files PyG would
otherwise fetch are already in ``root/<name>/raw/`` and fail with the missing
names and where to get them. PyG then processes them once into
``root/<name>/processed/`` as usual.

- ``graph.planetoid`` (:func:`build_planetoid`): the citation graphs Cora,
  CiteSeer and PubMed of Yang, Cohen and Salakhutdinov, "Revisiting
  Semi-Supervised Learning with Graph Embeddings", ICML 2016, in their raw format
  (``ind.<name>.x/tx/allx/y/ty/ally/graph/test.index``, from
  https://github.com/kimiyoung/planetoid, folder ``data``). The public split is
  kept (20 labelled nodes a class, 500 validation and 1000 test nodes). Bag-of-
  words features are row-normalised to sum to 1, as in Kipf and Welling (ICLR 2017)
  and GRACE.
- ``graph.tu`` (:func:`build_tu`): graph classification sets of Morris et al.,
  "TUDataset: A collection of benchmark datasets for learning with graphs", ICML
  GRL+ workshop 2020 (https://chrsmrrs.github.io/datasets/: unzip ``<name>.zip``
  and put its ``<name>_*.txt`` files into ``root/<name>/raw/``). Node labels
  become one-hot features and edge labels one-hot ``edge_attr`` (PyG's defaults;
  continuous node attributes are left out, as PyG does unless asked). Graphs
  without node labels get a one-hot degree feature, degrees above
  ``MAX_DEGREE`` sharing the last column (the GIN paper's choice for featureless
  social graphs, Xu et al., ICLR 2019). Splits are a seeded, stratified 80/10/10.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from selfsup.api import TaskSpec

from ..data import GraphDataError, GraphLevelDataset, NodeGraphDataset, stratified_masks
from ..views import graph_views

PLANETOID_PARTS = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")
PLANETOID_URL = "https://github.com/kimiyoung/planetoid/tree/master/data"
TU_URL = "https://chrsmrrs.github.io/datasets/docs/datasets/"
#: degree one-hot width for featureless TU graphs is at most MAX_DEGREE + 1
MAX_DEGREE = 32


def build_planetoid(
    *,
    root: str | Path | None = None,
    name: str = "Cora",
    seed: int = 0,
    holdout_edges: float = 0.0,
    views: Mapping[str, Any] | None = None,
) -> NodeGraphDataset:
    """Planetoid ``name`` from ``root/<name>/raw`` with its public split (see the module doc)."""
    from torch_geometric.data import Data
    from torch_geometric.datasets import Planetoid
    from torch_geometric.utils import to_undirected

    files = [f"ind.{name.lower()}.{part}" for part in PLANETOID_PARTS]
    root = _require_raw(
        "graph.planetoid", root, name, files, f"the Planetoid files of {PLANETOID_URL}"
    )
    g = Planetoid(str(root), name)[0]
    # row-normalise the bag of words (Kipf and Welling); empty rows (CiteSeer) stay 0
    x = g.x / g.x.sum(dim=1, keepdim=True).clamp(min=1.0)
    data = Data(
        x=x,
        edge_index=to_undirected(g.edge_index, num_nodes=g.num_nodes),
        y=g.y,
        train_mask=g.train_mask,
        val_mask=g.val_mask,
        test_mask=g.test_mask,
    )
    return NodeGraphDataset(
        "graph.planetoid",
        data,
        task=TaskSpec("classification", int(g.y.max()) + 1),
        views=graph_views(views),
        source=f"Planetoid {name} (Yang et al. 2016) read from {root}, public split",
        seed=seed,
        holdout_edges=holdout_edges,
    )


def build_tu(
    *,
    root: str | Path | None = None,
    name: str = "MUTAG",
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> GraphLevelDataset:
    """TUDataset ``name`` from ``root/<name>/raw``, stratified 80/10/10 (see the module doc)."""
    from torch_geometric.data import Data
    from torch_geometric.datasets import TUDataset

    files = [f"{name}_{part}.txt" for part in ("A", "graph_indicator", "graph_labels")]
    root = _require_raw("graph.tu", root, name, files, f"{name}.zip of {TU_URL} (unzipped)")
    tu = TUDataset(str(root), name)
    items = [tu[i] for i in range(len(tu))]
    y = torch.cat([g.y.view(-1) for g in items])
    if y.is_floating_point():
        raise GraphDataError(
            f"dataset 'graph.tu' ({name} in {root}): its graph targets are "
            "continuous (a _graph_attributes.txt file); graph.tu reads "
            "classification sets with integer _graph_labels.txt"
        )
    # PyG leaves x None (no node files) or [N, 0] (continuous attributes only, dropped)
    featureless = items[0].x is None or items[0].x.shape[1] == 0
    features = _degree_features(items) if featureless else [g.x.float() for g in items]
    graphs = []
    for g, x, label in zip(items, features, y):
        ea = getattr(g, "edge_attr", None)
        graphs.append(
            Data(
                x=x,
                edge_index=g.edge_index,
                y=label.view(1),
                edge_attr=None if ea is None or ea.numel() == 0 else ea.float(),
            )
        )
    masks = stratified_masks(y, seed, fractions=(0.8, 0.1))
    split_index = {s: m.nonzero().view(-1).tolist() for s, m in masks.items()}
    n_classes = int(y.max()) + 1
    if n_classes < 2:
        raise GraphDataError(
            f"dataset 'graph.tu' ({name} in {root}): every graph has the same "
            "label; classification needs at least 2 classes"
        )
    return GraphLevelDataset(
        "graph.tu",
        graphs,
        split_index,
        task=TaskSpec("classification", n_classes),
        views=graph_views(views),
        source=f"TUDataset {name} (Morris et al. 2020) read from {root}, stratified split",
    )


def _degree_features(graphs: Sequence[object]) -> list[torch.Tensor]:
    """One-hot node degree, one common width (max degree, capped at ``MAX_DEGREE``) + 1."""
    from torch_geometric.utils import degree

    degs = [
        degree(g.edge_index[0], int(g.num_nodes)).long()  # type: ignore[attr-defined]
        for g in graphs
    ]
    width = min(MAX_DEGREE, max(int(d.max()) if d.numel() else 0 for d in degs)) + 1
    return [torch.nn.functional.one_hot(d.clamp(max=width - 1), width).float() for d in degs]


def _require_raw(
    dataset: str, root: str | Path | None, name: str, files: Sequence[str], source: str
) -> Path:
    """``root`` when ``root/<name>/raw`` has ``files``; otherwise fail before PyG downloads."""
    if root is None:
        raise ValueError(
            f"{dataset} needs root=: the folder whose {name}/raw/ holds "
            f"{list(files)} (e.g. --set dataset.root=/data/pyg)"
        )
    root = Path(root).expanduser()
    raw = root / name / "raw"
    missing = [f for f in files if not (raw / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{dataset}: {name!r} is not under root={str(root)!r}: missing {missing} in "
            f"{raw}. selfsup never downloads; get {source} and put the files there"
        )
    return root
