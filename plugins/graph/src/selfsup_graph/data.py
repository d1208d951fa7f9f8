"""The two graph dataset shapes every selfsup-graph dataset is built on.

:class:`NodeGraphDataset` (modality ``graph.node``): one graph, one sample per
node. The pretraining set is the graph itself (one item), so a batch is a
``torch_geometric.data.Data`` holding every node; labelled batches are the whole
graph plus the ``rows`` (node indices) that carry labels, so message passing
always sees the full neighbourhood while probes see only their split's nodes.
Label splits are node masks (``train_mask``/``val_mask``/``test_mask``); a
dataset without them gets a seeded, stratified 60/20/20 split.

:class:`GraphLevelDataset` (modality ``graph.graph``): many small graphs, one
label per graph; a batch is a ``torch_geometric.data.Batch``.

Link prediction needs edges the encoder never saw: with ``holdout_edges=f`` a
node dataset removes a seeded fraction ``f`` of its undirected edges (half for
validation, half for test; Kipf and Welling's GAE held out 5% and 10%) before
anything trains on the graph, and keeps them with as many sampled non-edges in
:meth:`NodeGraphDataset.link_split`. Edges count as undirected for this (the
graph is symmetrised first; edge attributes of kept edges are kept).

Every graph is checked by :func:`check_graph` when the dataset is built, so a
malformed graph fails before training with the dataset, the field and the
offending value in the message.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from selfsup.api import GRAPH_GRAPH, GRAPH_NODE, SSLDataset, TaskSpec

from .views import GraphViews

if TYPE_CHECKING:
    from torch_geometric.data import Batch, Data

SPLITS: tuple[str, str, str] = ("train", "val", "test")


class GraphDataError(ValueError):
    """A graph that breaks the contract of :func:`check_graph`."""


def check_graph(data: Data, dataset: str, *, graph: str = "the graph") -> None:
    """Reject a malformed graph: the message names ``dataset``, the field and the value.

    Checks: ``x`` is a finite float matrix ``[N, F]``; ``edge_index`` is an integer
    ``[2, E]`` tensor with every index in ``[0, N)``; ``edge_attr`` (if any) has
    ``E`` finite rows; ``y`` (if any) has one label per node or one per graph.
    """
    where = f"dataset {dataset!r}, {graph}"
    x = getattr(data, "x", None)
    if x is None or not isinstance(x, torch.Tensor):
        raise GraphDataError(
            f"{where}: node features 'x' are missing; every node needs features "
            "(use a constant or degree feature for featureless graphs)"
        )
    if x.ndim != 2:
        raise GraphDataError(
            f"{where}: 'x' must be [num_nodes, num_features], got shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise GraphDataError(f"{where}: 'x' must be floating point, got {x.dtype}")
    bad = ~torch.isfinite(x)
    if bad.any():
        node, feat = (int(v) for v in bad.nonzero()[0])
        raise GraphDataError(
            f"{where}: 'x' has {int(bad.sum())} non-finite values, first at "
            f"node {node}, feature {feat} ({float(x[node, feat])}); impute or "
            "drop them before building the dataset"
        )
    n = x.shape[0]
    if n == 0:
        raise GraphDataError(f"{where}: the graph has no nodes")
    ei = getattr(data, "edge_index", None)
    if ei is None or not isinstance(ei, torch.Tensor):
        raise GraphDataError(
            f"{where}: 'edge_index' is missing; give an empty [2, 0] tensor "
            "for a graph without edges"
        )
    if ei.ndim != 2 or ei.shape[0] != 2:
        raise GraphDataError(
            f"{where}: 'edge_index' must have shape [2, num_edges], got "
            f"{tuple(ei.shape)} (transpose an edge list of shape [E, 2])"
        )
    if ei.is_floating_point() or ei.dtype == torch.bool:
        raise GraphDataError(f"{where}: 'edge_index' must hold integers, got {ei.dtype}")
    if ei.numel():
        out = (ei < 0) | (ei >= n)
        if out.any():
            row, col = (int(v) for v in out.nonzero()[0])
            raise GraphDataError(
                f"{where}: edge_index[{row}, {col}] = {int(ei[row, col])} is "
                f"out of range for a graph of {n} nodes (valid: 0..{n - 1})"
            )
    ea = getattr(data, "edge_attr", None)
    if ea is not None:
        if ea.shape[0] != ei.shape[1]:
            raise GraphDataError(
                f"{where}: 'edge_attr' has {ea.shape[0]} rows but there are {ei.shape[1]} edges"
            )
        if not torch.isfinite(ea.float()).all():
            raise GraphDataError(f"{where}: 'edge_attr' has non-finite values")
    y = getattr(data, "y", None)
    if isinstance(y, torch.Tensor) and y.numel() not in (1, n) and y.shape[0] != n:
        raise GraphDataError(
            f"{where}: 'y' has {y.shape[0]} entries; expected one per node "
            f"({n}) or one for the graph"
        )


def stratified_masks(
    y: torch.Tensor, seed: int, fractions: tuple[float, float] = (0.6, 0.2)
) -> dict[str, torch.Tensor]:
    """Seeded ``train``/``val``/``test`` node masks, stratified by class.

    Each class gives ``round(f * n_class)`` nodes to train and val (at least one
    to train) and the rest to test.
    """
    rng = np.random.default_rng(seed)
    labels = y.cpu().numpy()
    masks = {s: np.zeros(len(labels), dtype=bool) for s in SPLITS}
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_train = max(1, round(fractions[0] * len(members)))
        n_val = round(fractions[1] * len(members))
        masks["train"][members[:n_train]] = True
        masks["val"][members[n_train : n_train + n_val]] = True
        masks["test"][members[n_train + n_val :]] = True
    return {s: torch.from_numpy(m) for s, m in masks.items()}


class NodeGraphDataset(SSLDataset):
    """One graph whose nodes are the samples (modality ``graph.node``).

    ``data`` must hold ``x`` and ``edge_index``; ``y`` (one label per node) and
    ``train_mask``/``val_mask``/``test_mask`` are optional (masks default to a
    seeded stratified 60/20/20 split of the labelled nodes). ``source`` says in one
    line where the graph came from; it appears in errors and in the encoder card.

    ``modality`` stays a class attribute although the ``DatasetSpec`` declares it
    too: a node dataset *is* ``graph.node`` (its batches, rows and labelled batches
    say so), and one built outside the registry (:func:`~selfsup_graph.datasets.anndata.cell_graph`
    on your AnnData, the tests) must still say so to encoders and pretexts.
    """

    modality = GRAPH_NODE

    def __init__(
        self,
        name: str,
        data: Data,
        *,
        task: TaskSpec,
        views: GraphViews | None = None,
        source: str = "",
        seed: int = 0,
        holdout_edges: float = 0.0,
    ) -> None:
        check_graph(data, name)
        self.name = name
        self.task = task
        self.views = views or GraphViews()
        self.source = source
        self.seed = seed
        data = data.clone()
        if task.kind != "none":
            y = getattr(data, "y", None)
            if y is None or y.shape[0] != data.num_nodes:
                raise GraphDataError(
                    f"dataset {name!r}: a {task.kind} task needs one label per "
                    f"node in 'y' ({data.num_nodes} nodes)"
                )
            if getattr(data, "train_mask", None) is None:
                for split, split_mask in stratified_masks(data.y, seed).items():
                    data[f"{split}_mask"] = split_mask
            for split in SPLITS:
                mask = getattr(data, f"{split}_mask", None)
                if (
                    mask is None
                    or mask.dtype != torch.bool
                    or tuple(mask.shape) != (data.num_nodes,)
                ):
                    got = "missing" if mask is None else f"{mask.dtype} {tuple(mask.shape)}"
                    raise GraphDataError(
                        f"dataset {name!r}: '{split}_mask' must be a bool tensor "
                        f"[{data.num_nodes}] (one entry per node), got {got}; give all of "
                        "train_mask/val_mask/test_mask or none (a seeded 60/20/20 split)"
                    )
            self.splits = tuple(s for s in SPLITS if bool(data[f"{s}_mask"].any()))
        else:
            self.splits = ()
        self._links: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if holdout_edges:
            data, self._links = _hold_out_edges(data, holdout_edges, seed, name)
        self.data = data
        # pretext tasks see the graph without its labels and split masks, so none
        # can use them by accident
        self._unlabelled = data.clone()
        for key in ("y", *(f"{split}_mask" for split in SPLITS)):
            if key in self._unlabelled:
                del self._unlabelled[key]

    # -- data -------------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return int(self.data.num_nodes)

    @property
    def num_features(self) -> int:
        return int(self.data.x.shape[1])

    @property
    def edge_dim(self) -> int | None:
        ea = getattr(self.data, "edge_attr", None)
        return None if ea is None else (1 if ea.ndim == 1 else int(ea.shape[1]))

    def pretrain_set(self) -> list[Data]:  # type: ignore[override]  # a list is a dataset
        """The graph (one item) without labels or split masks."""
        return [self._unlabelled]

    def collate(self, samples: Sequence[Any]) -> Data:
        from torch_geometric.data import Batch

        if len(samples) == 1:
            return samples[0]  # type: ignore[no-any-return]
        return Batch.from_data_list(list(samples))

    def augment(self, batch: Data, generator: torch.Generator) -> Data:
        return self.views.node_view(batch, generator)

    def input_features(self, batch: Data) -> torch.Tensor:
        return batch.x

    def batch_rows(self, batch: Data) -> int:
        return int(batch.num_nodes)

    # -- labels -------------------------------------------------------------------------
    def nodes(self, split: str) -> torch.Tensor:
        """Indices of the labelled nodes of ``split``, ascending."""
        if split not in self.splits:
            raise ValueError(
                f"dataset {self.name!r} has no labelled split {split!r}; "
                f"its labelled splits are {list(self.splits)}"
            )
        return self.data[f"{split}_mask"].nonzero().view(-1)

    def labelled_split(self, split: str) -> Any:
        if split not in self.splits:
            return None
        return _NodeItems(self.data, self.nodes(split))

    def n_labelled(self, split: str) -> int:
        return int(self.nodes(split).numel())

    def labels(self, split: str) -> np.ndarray:
        return self.data.y[self.nodes(split)].cpu().numpy()  # type: ignore[no-any-return]

    def labelled_batches(
        self,
        split: str,
        batch_size: int,
        *,
        indices: Sequence[int] | None = None,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[Any, torch.Tensor, torch.Tensor | None]]:
        """The whole graph with ``batch_size`` labelled rows at a time."""
        nodes = self.nodes(split)
        if indices is not None:
            nodes = nodes[torch.as_tensor(list(indices), dtype=torch.long)]
        if shuffle:
            nodes = nodes[torch.randperm(len(nodes), generator=generator)]
        for start in range(0, len(nodes), batch_size):
            rows = nodes[start : start + batch_size]
            yield self.data, self.data.y[rows], rows

    # -- link prediction ----------------------------------------------------------------
    def link_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out ``(positive, negative)`` node pairs ``[2, K]`` of ``"val"`` or ``"test"``."""
        if split not in ("val", "test"):
            raise ValueError(
                f"dataset {self.name!r}: held-out edges exist for 'val' and 'test', not {split!r}"
            )
        if not self._links:
            raise ValueError(
                f"dataset {self.name!r} holds out no edges; build it with holdout_edges=0.1 "
                "(e.g. --set dataset.holdout_edges=0.1) so that link prediction has edges "
                "the encoder never saw"
            )
        return self._links[split]

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:{self.modality}".encode())
        for key in ("x", "edge_index", "y"):
            value = getattr(self.data, key, None)
            if isinstance(value, torch.Tensor):
                h.update(value.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]


class _NodeItems(torch.utils.data.Dataset[Any]):
    """``(node index, label)`` items of one split (for code that iterates a split)."""

    def __init__(self, data: Data, nodes: torch.Tensor) -> None:
        self.data, self.index = data, nodes

    def __len__(self) -> int:
        return int(self.index.numel())

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor]:
        node = int(self.index[i])
        return node, self.data.y[node]


def _hold_out_edges(
    data: Data, fraction: float, seed: int, name: str
) -> tuple[Data, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Remove ``fraction`` of the undirected edges; return them with sampled non-edges."""
    from torch_geometric.utils import to_undirected

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"dataset {name!r}: holdout_edges must be in (0, 1), got {fraction}")
    n = int(data.num_nodes)
    attr = getattr(data, "edge_attr", None)
    ei, attr = to_undirected(data.edge_index, attr, num_nodes=n)  # sorted, deduplicated
    one_way = ei[0] < ei[1]  # one column per undirected edge; self loops are not held out
    pairs = ei[:, one_way]
    pair_attr = attr[one_way] if attr is not None else None
    k = round(fraction * pairs.shape[1])
    if k < 2:
        raise ValueError(
            f"dataset {name!r}: holdout_edges={fraction} of {pairs.shape[1]} "
            "edges holds out fewer than 2; use a larger fraction"
        )
    if k > n * (n - 1) // 2 - pairs.shape[1]:
        raise ValueError(
            f"dataset {name!r}: the graph has fewer non-edges than the {k} "
            "held-out edges need as negatives; use a smaller holdout_edges"
        )
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(pairs.shape[1], generator=g)
    held, kept = pairs[:, perm[:k]], perm[k:]
    existing = set((ei[0] * n + ei[1]).tolist())
    negatives: list[int] = []
    rng = np.random.default_rng(seed)
    while len(negatives) < k:
        u, v = rng.integers(0, n, size=2)
        key = int(min(u, v) * n + max(u, v))
        if u != v and key not in existing:
            existing.add(key)
            negatives.append(key)
    neg = torch.tensor([[key // n for key in negatives], [key % n for key in negatives]])
    out = data.clone()
    kept_attr = pair_attr[kept] if pair_attr is not None else None
    out.edge_index, kept_attr = to_undirected(pairs[:, kept], kept_attr, num_nodes=n)
    if kept_attr is not None:
        out.edge_attr = kept_attr
    half = k // 2
    links = {"val": (held[:, :half], neg[:, :half]), "test": (held[:, half:], neg[:, half:])}
    return out, links


class GraphLevelDataset(SSLDataset):
    """Many graphs, one sample and one label per graph (modality ``graph.graph``).

    ``graphs``: ``Data`` objects each with ``x``, ``edge_index`` and a graph label
    ``y`` (shape ``[1]``); ``split_index``: positions of each labelled split.
    Pretraining uses every graph (labels unseen). ``modality`` is a class attribute
    for the reason :class:`NodeGraphDataset` gives.
    """

    modality = GRAPH_GRAPH

    def __init__(
        self,
        name: str,
        graphs: Sequence[Data],
        split_index: Mapping[str, Sequence[int]],
        *,
        task: TaskSpec,
        views: GraphViews | None = None,
        source: str = "",
    ) -> None:
        if not graphs:
            raise GraphDataError(f"dataset {name!r}: no graphs")
        widths = set()
        for i, g in enumerate(graphs):
            check_graph(g, name, graph=f"graph {i}")
            widths.add(int(g.x.shape[1]))
            y = getattr(g, "y", None)
            if task.kind != "none" and (y is None or y.numel() != 1):
                raise GraphDataError(
                    f"dataset {name!r}, graph {i}: a {task.kind} task needs "
                    f"one label 'y' per graph, got "
                    f"{'none' if y is None else tuple(y.shape)}"
                )
        if len(widths) > 1:
            raise GraphDataError(
                f"dataset {name!r}: graphs have different feature widths "
                f"{sorted(widths)}; every graph needs the same node features"
            )
        self.name = name
        self.task = task
        self.views = views or GraphViews()
        self.source = source
        self.graphs = list(graphs)
        self.split_index = {s: list(v) for s, v in split_index.items() if len(v)}
        self.splits = tuple(s for s in SPLITS if s in self.split_index)

    @property
    def num_features(self) -> int:
        return int(self.graphs[0].x.shape[1])

    @property
    def edge_dim(self) -> int | None:
        ea = getattr(self.graphs[0], "edge_attr", None)
        return None if ea is None else (1 if ea.ndim == 1 else int(ea.shape[1]))

    def pretrain_set(self) -> list[Data]:  # type: ignore[override]  # a list is a dataset
        return self.graphs

    def labelled_split(self, split: str) -> Any:
        if split not in self.split_index:
            return None
        return [(self.graphs[i], self.graphs[i].y.view(-1)[0]) for i in self.split_index[split]]

    def collate(self, samples: Sequence[Any]) -> Batch:
        from torch_geometric.data import Batch

        return Batch.from_data_list(list(samples))

    def augment(self, batch: Batch, generator: torch.Generator) -> Batch:
        return self.views.batch_view(batch, generator)

    def input_features(self, batch: Batch) -> torch.Tensor:
        """Mean node features, log node count and log mean degree of each graph."""
        from torch_geometric.utils import degree, scatter

        index = batch.batch
        mean_x = scatter(batch.x, index, dim=0, dim_size=batch.num_graphs, reduce="mean")
        nodes = torch.bincount(index, minlength=batch.num_graphs).float()
        deg = degree(batch.edge_index[0], batch.num_nodes)
        mean_deg = scatter(deg, index, dim=0, dim_size=batch.num_graphs, reduce="mean")
        return torch.cat([mean_x, nodes.log1p()[:, None], mean_deg.log1p()[:, None]], dim=1)

    def batch_rows(self, batch: Batch) -> int:
        return int(batch.num_graphs)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:{self.modality}:{len(self.graphs)}".encode())
        for g in self.graphs[:: max(1, len(self.graphs) // 64)]:
            h.update(g.x.detach().cpu().numpy().tobytes()[:4096])
            h.update(g.edge_index.detach().cpu().numpy().tobytes()[:4096])
        return h.hexdigest()[:16]
