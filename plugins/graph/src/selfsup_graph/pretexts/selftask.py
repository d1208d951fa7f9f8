"""SelfTask-GNN pretexts: shortest-path distance classes and feature-cluster prediction.

Jin, Derr, Liu, Wang, Wang, Liu & Tang, "Self-supervised Learning on Graphs: Deep
Insights and New Direction", arXiv:2006.10141 (2020), study which self-supervised
tasks help a GCN. Two node-level pretexts of this line of work are here:

``graph.pairwise_distance`` (their structure pretext *PairwiseDistance*): the shortest-path
length ``p_uv`` of a node pair is binned into ``max_distance`` classes
``1, 2, ..., max_distance - 1`` and ``>= max_distance`` (the paper's four classes
``1, 2, 3, >= 4`` with the default ``max_distance=4``; a pair in different
connected components falls into the last class, as in the authors' code). A linear
head on ``|z_u - z_v|`` predicts the class with a cross entropy:

    L = 1/|S| sum_{(u, v) in S} CE(W |z_u - z_v| + b, C_uv),

``z = encoder.tokens(graph).flat()`` ``[N, D]`` (the encoder's ``tokens`` face; selfsup
0.1 called ``encoder.node_states``, the same values), ``W [max_distance, D]``. Every step
draws ``n_pairs`` pairs ``S`` with the trainer's generator, the same number from
every non-empty class (the authors' code samples an equal number of pairs per
class, since far pairs outnumber near ones by orders of magnitude).

The distances are computed once, when the task is built, by a breadth-first
search to depth ``max_distance - 1`` from every node (or from ``max_anchors``
seeded anchor nodes of a larger graph, and from fewer when their neighbourhoods
hold more than ``NEAR_PAIR_BUDGET`` pairs): only the pairs closer than
``max_distance`` are stored; a pair of the last class is drawn uniformly from the
complement of an anchor's near set by an exact rank computation
(:class:`DistanceBins`), so no ``N x N`` matrix is ever formed. The graph is taken
as undirected.

``graph.node_clustering`` (*clustering* pretext; You, Chen, Wang & Shen, "When
Does Self-Supervision Help Graph Convolutional Networks?", ICML 2020, the
feature-based counterpart of Jin et al.'s structure-based Distance2Clusters, which
partitions the graph with METIS instead): k-means with ``n_clusters``
clusters on the node features ``X [N, F]`` (scikit-learn, ``n_init=10``, seeded)
gives every node a pseudo-label; a linear head on ``z`` predicts it with a cross
entropy over all nodes. The pseudo-labels are fixed at build time.

Both are node-level (``graph.node``: a batch is the whole graph) and train the
encoder's ``tokens`` face; both return ``{"loss", "embedding", ...}`` with
``embedding`` the node states ``[N, D]``, detached, and a training accuracy to log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    PretextTask,
    SSLDataset,
    encoder_dim,
    non_negative_int,
    option,
    parse_options,
    positive_int,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data

NAME_DISTANCE = "graph.pairwise_distance"
NAME_CLUSTERING = "graph.node_clustering"

#: at most this many near (distance < max_distance) pairs are kept in memory; anchors
#: beyond it are dropped (they are processed in a seeded random order)
NEAR_PAIR_BUDGET = 5_000_000
_CHUNK_CELLS = 1 << 22  # anchors x nodes searched at once: bounds one BFS step's memory


# -- shared checks ------------------------------------------------------------------------


def _node_graph(dataset: SSLDataset, name: str) -> Data:
    """The one graph of a ``graph.node`` dataset (its pretraining set)."""
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{name} is a node-level pretext: it needs a 'graph.node' dataset (one graph, "
            f"one row per node), but {dataset.name!r} has modality {dataset.modality!r}; "
            "for a set of graphs use a graph-level pretext such as graph.dsla or graph.graphcl"
        )
    pre = dataset.pretrain_set()
    if len(pre) != 1:  # type: ignore[arg-type]
        raise ValueError(
            f"{name} precomputes its targets on the dataset's graph, so the pretraining set "
            f"must be that one graph; {dataset.name!r} has {len(pre)} items"  # type: ignore[arg-type]
        )
    return pre[0]


def _check_batch(batch: Any, num_nodes: int, name: str) -> None:
    n = getattr(batch, "num_nodes", None)
    if n != num_nodes:
        raise ValueError(
            f"{name} computed its targets for the dataset's graph of {num_nodes} nodes but got "
            f"a batch with {n} nodes; train on the dataset's own graph (one batch = the whole "
            "graph, no node-removing views)"
        )


def _int_at_least(low: int, why: str) -> Any:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int) and not isinstance(value, bool) and value >= low
        return None if ok else f"be an int >= {low} ({why})"

    return check


# -- PairwiseDistance -----------------------------------------------------------------------


@dataclass(frozen=True)
class PairwiseDistanceConfig:
    """Options of :func:`build_pairwise_distance` (``graph.pairwise_distance``)."""

    n_pairs: int = option(
        4096, positive_int, "node pairs drawn each step, split evenly over the non-empty classes"
    )
    max_distance: int = option(
        4, _int_at_least(2, "classes 1, ..., max_distance - 1 and >= max_distance; the paper "
                            "uses 4"),
        "distances 1 .. max_distance - 1 are classes of their own, >= max_distance (and "
        "unreachable) the last one",
    )
    max_anchors: int = option(
        4096, positive_int,
        "a graph with more nodes searches from this many seeded anchor nodes only",
    )
    seed: int = option(0, non_negative_int, "seed of the anchor draw")


def _adjacency(edge_index: torch.Tensor, num_nodes: int) -> Any:
    """The undirected binary adjacency (no self loops) as a scipy CSR matrix."""
    import scipy.sparse as sp

    ei = edge_index.detach().cpu().numpy()
    keep = ei[0] != ei[1]
    src, dst = ei[0][keep], ei[1][keep]
    rows, cols = np.concatenate([src, dst]), np.concatenate([dst, src])
    a = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(num_nodes, num_nodes)
    )
    a.sum_duplicates()
    a.data[:] = 1.0  # duplicates were summed: back to 0/1
    return a


class DistanceBins:
    """Shortest-path distance classes of node pairs, computed once and sampled per step.

    Class ``d - 1`` holds the pairs at distance ``d`` for ``d = 1 .. max_distance - 1``;
    class ``max_distance - 1`` holds every other pair of distinct nodes (distance
    ``>= max_distance`` or unreachable). Pairs ``(u, v)`` have an anchor ``u``: every
    node, or a seeded sample of ``max_anchors`` nodes of a larger graph.

    Memory is linear in the number of near pairs: for each anchor, the sorted nodes
    within distance ``max_distance - 1`` (itself included) are kept; a far pair is
    drawn as the ``r``-th node *not* in that set, located by a binary search on
    ``x_j - j`` (``x`` the sorted excluded nodes): the ``r``-th missing integer is
    ``r + #{j : x_j - j <= r}``.
    """

    def __init__(
        self,
        edge_index: torch.Tensor,
        num_nodes: int,
        max_distance: int,
        max_anchors: int = 4096,
        seed: int = 0,
        near_budget: int = NEAR_PAIR_BUDGET,
    ) -> None:
        n = int(num_nodes)
        if n < 2:
            raise ValueError(f"{NAME_DISTANCE} needs a graph with at least 2 nodes, got {n}")
        self.num_nodes = n
        self.max_distance = int(max_distance)
        self.n_classes = self.max_distance
        a = _adjacency(edge_index, n)
        order = np.random.default_rng(seed).permutation(n) if n > max_anchors else np.arange(n)
        order = order[:max_anchors]

        anchors: list[np.ndarray] = []
        rows: list[np.ndarray] = []  # anchor row (position in the anchors list)
        cols: list[np.ndarray] = []  # node
        dists: list[np.ndarray] = []  # 0 (the anchor itself) .. max_distance - 1
        total, offset = 0, 0
        step = max(1, min(256, _CHUNK_CELLS // n))
        for start in range(0, len(order), step):
            if total > near_budget and offset > 0:
                break  # enough pairs: the anchors searched so far are a random sample
            chunk = order[start : start + step]
            r, c, level = _bfs_levels(a, chunk, self.max_distance - 1)
            anchors.append(chunk)
            rows.append(r + offset)
            cols.append(c)
            dists.append(level)
            offset += len(chunk)
            total += len(r)
        anchor_arr = np.concatenate(anchors).astype(np.int64)
        row = np.concatenate(rows).astype(np.int64)
        col = np.concatenate(cols).astype(np.int64)
        dist = np.concatenate(dists).astype(np.int64)
        m = len(anchor_arr)

        # Near classes: the (anchor, node) pairs at each distance.
        self.near: list[torch.Tensor] = []
        for d in range(1, self.max_distance):
            sel = dist == d
            pairs = np.stack([anchor_arr[row[sel]], col[sel]])
            self.near.append(torch.from_numpy(pairs))

        # Far class: per anchor, the sorted excluded nodes as keys row * n + (x_j - j).
        key = row * n + col
        perm = np.argsort(key, kind="stable")
        row, col = row[perm], col[perm]
        excluded = np.bincount(row, minlength=m)
        row_start = np.concatenate([[0], np.cumsum(excluded)[:-1]])
        rank = np.arange(len(row)) - row_start[row]
        self._key2 = torch.from_numpy(row * n + (col - rank))
        self._row_start = torch.from_numpy(row_start.astype(np.int64))
        far_count = n - excluded
        self._far_count = torch.from_numpy(far_count.astype(np.int64))
        self._cum_far = torch.from_numpy(np.cumsum(far_count).astype(np.int64))
        self.anchors = torch.from_numpy(anchor_arr)
        self.n_far = int(far_count.sum())

    @property
    def class_sizes(self) -> list[int]:
        """Number of (anchor, node) pairs of each class."""
        return [int(p.shape[1]) for p in self.near] + [self.n_far]

    def sample(self, n_pairs: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n_pairs`` pairs ``[2, n_pairs]`` and their classes ``[n_pairs]`` (CPU, int64).

        Equal shares of every non-empty class (the first classes get the remainder),
        uniform with replacement within a class, drawn with ``generator``.
        """
        present = [c for c, size in enumerate(self.class_sizes) if size > 0]
        if not present:
            raise ValueError(f"{NAME_DISTANCE}: the graph has no pair of distinct nodes")
        share, rest = divmod(n_pairs, len(present))
        pairs, labels = [], []
        for i, cls in enumerate(present):
            k = share + (1 if i < rest else 0)
            if k == 0:
                continue
            if cls < len(self.near):
                pool = self.near[cls]
                idx = _randint(pool.shape[1], k, generator)
                pairs.append(pool[:, idx])
            else:
                pairs.append(self._sample_far(k, generator))
            labels.append(torch.full((k,), cls, dtype=torch.long))
        return torch.cat(pairs, dim=1), torch.cat(labels)

    def _sample_far(self, k: int, generator: torch.Generator) -> torch.Tensor:
        # Uniform over all far pairs: pick the t-th one, find its anchor row by the
        # cumulative counts, then its node as the r-th node outside the row's near set.
        t = _randint(self.n_far, k, generator)
        row = torch.searchsorted(self._cum_far, t, right=True)
        r = t - (self._cum_far[row] - self._far_count[row])
        below = torch.searchsorted(self._key2, row * self.num_nodes + r, right=True)
        v = r + below - self._row_start[row]
        return torch.stack([self.anchors[row], v])


def _randint(high: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` integers in ``[0, high)`` from ``generator`` (on its device), returned on CPU."""
    return torch.randint(high, (k,), generator=generator, device=generator.device).cpu()


def _bfs_levels(
    a: Any, sources: np.ndarray, depth: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Breadth-first search from ``sources`` to ``depth`` hops, all at once.

    Returns ``(row, node, distance)`` for every node within ``depth`` hops of
    ``sources[row]``, the source itself included at distance 0, sorted by row then
    node. Row ``i`` of a dense ``[len(sources), N]`` frontier is the BFS frontier of
    source ``i``; one step is a sparse-dense product with the (symmetric) adjacency.
    """
    m = len(sources)
    reached = np.zeros((m, a.shape[0]), dtype=bool)
    reached[np.arange(m), sources] = True
    frontier = reached
    out_r, out_c, out_d = [np.arange(m)], [np.asarray(sources)], [np.zeros(m, dtype=np.int64)]
    for d in range(1, depth + 1):
        nxt = np.asarray(a @ frontier.T.astype(np.float32)).T > 0
        nxt &= ~reached  # drop nodes reached at a smaller depth
        r, c = np.nonzero(nxt)
        if len(r) == 0:
            break
        out_r.append(r)
        out_c.append(c)
        out_d.append(np.full(len(r), d, dtype=np.int64))
        reached |= nxt
        frontier = nxt
    return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d)


class PairwiseDistance(nn.Module, PretextTask):
    """SelfTask-GNN's PairwiseDistance pretext; see the module docstring.

    ``forward(data, generator)`` returns ``{"loss", "embedding", "pair_accuracy"}``:
    the cross entropy over ``n_pairs`` sampled pairs, the node states ``[N, D]``
    (detached) and the head's accuracy on those pairs.
    """

    def __init__(
        self, encoder: nn.Module, dataset: SSLDataset, config: PairwiseDistanceConfig
    ) -> None:
        super().__init__()
        data = _node_graph(dataset, NAME_DISTANCE)
        self.encoder = encoder
        self.config = config
        self.num_nodes = int(data.num_nodes)
        self.bins = DistanceBins(
            data.edge_index, self.num_nodes, config.max_distance, config.max_anchors, config.seed
        )
        self.head = nn.Linear(encoder_dim(encoder, NAME_DISTANCE), config.max_distance)

    def pair_logits(self, h: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """Class logits ``[P, max_distance]`` of pairs ``[2, P]`` from node states ``h [N, D]``."""
        return self.head((h[pairs[0]] - h[pairs[1]]).abs())

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        _check_batch(batch, self.num_nodes, NAME_DISTANCE)
        h = self.encoder.tokens(batch).flat()
        pairs, labels = self.bins.sample(self.config.n_pairs, generator)
        pairs, labels = pairs.to(h.device), labels.to(h.device)
        logits = self.pair_logits(h, pairs)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.detach().argmax(dim=1) == labels).float().mean()
        return {"loss": loss, "embedding": h.detach(), "pair_accuracy": accuracy}


def build_pairwise_distance(
    encoder: nn.Module, dataset: SSLDataset, **options: Any
) -> PairwiseDistance:
    """``graph.pairwise_distance`` factory; ``options`` are :class:`PairwiseDistanceConfig`
    fields."""
    config = parse_options(PairwiseDistanceConfig, options, NAME_DISTANCE)
    return PairwiseDistance(encoder, dataset, config)


# -- node clustering ------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeClusteringConfig:
    """Options of :func:`build_node_clustering` (``graph.node_clustering``)."""

    n_clusters: int = option(
        10, _int_at_least(2, "the number of pseudo-label classes"),
        "k-means clusters of the node features, the pseudo-label classes",
    )
    seed: int = option(0, non_negative_int, "k-means' random_state")


def feature_clusters(x: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """k-means pseudo-labels ``[N]`` (int64) of node features ``x [N, F]``."""
    from sklearn.cluster import KMeans

    feats = x.detach().cpu().double().numpy()
    n = feats.shape[0]
    if n < n_clusters:
        raise ValueError(
            f"{NAME_CLUSTERING}: n_clusters={n_clusters} is more than the {n} nodes of the "
            "graph; use a smaller n_clusters"
        )
    distinct = len(np.unique(feats, axis=0))
    if distinct < n_clusters:
        raise ValueError(
            f"{NAME_CLUSTERING}: the node features have only {distinct} distinct rows, so "
            f"k-means cannot form n_clusters={n_clusters} clusters; use n_clusters <= "
            f"{distinct} (with featureless graphs this pretext has nothing to predict)"
        )
    labels = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit_predict(feats)
    return torch.from_numpy(labels.astype(np.int64))


class NodeClustering(nn.Module, PretextTask):
    """Feature-cluster prediction (You et al. 2020; Jin et al. 2020); see the module docstring.

    ``forward(data, generator)`` returns ``{"loss", "embedding", "cluster_accuracy"}``;
    the generator is unused (the targets are fixed).
    """

    pseudo_labels: torch.Tensor

    def __init__(
        self, encoder: nn.Module, dataset: SSLDataset, config: NodeClusteringConfig
    ) -> None:
        super().__init__()
        data = _node_graph(dataset, NAME_CLUSTERING)
        self.encoder = encoder
        self.config = config
        self.num_nodes = int(data.num_nodes)
        # Not persistent: recomputed (deterministically) when the task is rebuilt.
        self.register_buffer(
            "pseudo_labels",
            feature_clusters(data.x, config.n_clusters, config.seed),
            persistent=False,
        )
        self.head = nn.Linear(encoder_dim(encoder, NAME_CLUSTERING), config.n_clusters)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        _check_batch(batch, self.num_nodes, NAME_CLUSTERING)
        h = self.encoder.tokens(batch).flat()
        logits = self.head(h)
        loss = F.cross_entropy(logits, self.pseudo_labels)
        accuracy = (logits.detach().argmax(dim=1) == self.pseudo_labels).float().mean()
        return {"loss": loss, "embedding": h.detach(), "cluster_accuracy": accuracy}


def build_node_clustering(
    encoder: nn.Module, dataset: SSLDataset, **options: Any
) -> NodeClustering:
    """``graph.node_clustering`` factory; ``options`` are :class:`NodeClusteringConfig` fields."""
    config = parse_options(NodeClusteringConfig, options, NAME_CLUSTERING)
    return NodeClustering(encoder, dataset, config)
