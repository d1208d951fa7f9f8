"""Self-supervised edge features for a cell graph, fed to a graph attention network.

Ravindra, Alfajaro, Gasque, Huston, ..., van Dijk, "Single-cell longitudinal
analysis of SARS-CoV-2 infection in human airway epithelium identifies target
cells, alterations in gene expression, and cell state changes", PLoS Biology
19(3): e3001143, 2021, predict each cell's infection state with a GAT on a kNN
graph of cells whose edges carry *self-supervised edge features*; the method is
set out in Sehanobish, Ravindra and van Dijk, "Self-supervised edge features for
improved Graph Neural Network training" (arXiv:2007.04777) and "Gaining insight
into SARS-CoV-2 infection and COVID-19 severity using self-supervised edge
features and Graph Neural Networks" (arXiv:2006.12971), with
code at github.com/nealgravindra/self-supervsed_edge_feats. What they do:

1. Train an auxiliary two-layer GAT (8 heads of width 8, ELU, 8 averaged heads
   at the output) to classify the cells by a label *other than* the target (the
   cell type, itself an annotation of expression clusters, and the sequencing
   batch); keep the first layer's attention coefficients ``alpha_uv`` of every
   edge, one per head: 8 edge features per auxiliary task.
2. Add Forman-Ricci curvature ``F(u, v) = 4 - sqrt(w_uv) (sum_{e at u} 1/sqrt(w_e)
   + sum_{e at v} 1/sqrt(w_e))`` (``4 - deg u - deg v`` without weights), range-scaled
   to ``[-1, 1]``, and a node2vec dot product of the endpoints.
3. Train the final GAT on the target label, the (frozen) edge features of each
   cell's incident edges entering through a Set Transformer whose output is
   concatenated to the first GAT layer's output.

How it is adapted to selfsup, where no label may be used while pretraining:

- The auxiliary labels are pseudo-labels: k-means clusters (``n_clusters``) of
  the node features diffused ``smoothing_steps`` times over the graph
  (``h <- D^-1 (A + I) h``), computed once when the task is built. Cell types
  are annotations of clusters of the same kNN graph (Louvain/Leiden in the usual
  scanpy workflow), and clusters of diffused expression approximate them, as in
  MAGIC (van Dijk et al., "Recovering Gene Interactions from Single-Cell Data
  Using Data Diffusion", Cell 2018); the batch task has no label-free
  counterpart and is dropped. ``smoothing_steps=0`` clusters the raw features,
  which on graphs whose features carry little of the structure (``graph.sbm``)
  teaches the GAT feature noise: there, 200 steps on raw-feature clusters took a
  linear probe from 1.0 at random initialisation down to 0.73-0.78, while with 2
  steps (whose clusters match the blocks, adjusted Rand index 0.99) it stayed at
  1.0 and the held-out link-prediction AUC rose from 0.66 to 0.73-0.77.
- The edge encoder is the auxiliary GAT's first layer (:class:`AttentionEdgeEncoder`,
  ``edge_dim - curvature`` heads of width ``attention_dim``); its second layer
  and classifier are this pretext's head, as in the paper only the first layer's
  attention is kept. With ``curvature=True`` (the encoder's default) the last
  edge-feature column is the range-scaled Forman curvature of the reference code.
  The node2vec feature is left out (it needs a separate random-walk training).
- The edge features enter every layer of the encoder's GAT through the attention
  scores (``GATConv(edge_dim=...)``) instead of a Set Transformer over each
  node's padded set of incident edges: each edge's features weigh its own
  message instead of being summarised per node, there is no maximum degree
  ``s_max`` to pad to, and the encoder stays a plain message-passing stack.
- Both stages train at once, one loss: ``loss = edge_loss + node_weight *
  node_loss``. ``edge_loss`` is the auxiliary GAT's cross-entropy on the
  pseudo-labels and is the only signal the edge encoder gets; ``node_loss`` is a
  linear head's cross-entropy on the same pseudo-labels from the encoder's output,
  computed with the edge features *detached*. The stop-gradient keeps the paper's
  two-stage logic (edge features are fixed inputs to the final GAT, shaped only
  by the auxiliary task) while the GAT layers, which are what is exported and
  evaluated, still learn: the paper trains them on the target label, which a
  pretext cannot see, so the auxiliary task stands in for it too.

Options: ``n_clusters`` (pseudo-label classes, 10), ``smoothing_steps`` (feature
diffusion steps before k-means, 2), ``node_weight`` (1.0; 0 trains only the edge
encoder and leaves the GAT layers at their initialisation), ``seed`` (k-means
seed, 0). The trainer's generator is unused: the task has no
randomness after the k-means at build time (set the encoder's ``dropout`` > 0
for the paper's 0.4, drawn from torch's global generator like every GNN layer's).

The encoder factory :func:`build_encoder` (``graph.edge_gat``) lives here too,
since the pretext needs its edge encoder; it takes only node-level datasets. The
pretext trains the plugin's own face ``graph.learned_edges``, which only
``graph.edge_gat`` offers (see :class:`EdgeFeatureGAT`), so ``selfsup bench``
trains it on that encoder whatever the benchmark's encoder, and ``selfsup run``
with another encoder is refused before anything is built, naming ``graph.edge_gat``.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    PretextTask,
    SSLDataset,
    Tokens,
    non_negative,
    non_negative_int,
    option,
    parse_options,
)

from ..encoders import node_tokens

NAME = "graph.edge_features"
ENCODER_NAME = "graph.edge_gat"
#: the plugin's own face that graph.edge_gat offers and graph.edge_features trains
LEARNED_EDGES = "graph.learned_edges"


# -- edge features --------------------------------------------------------------------


class AttentionEdgeEncoder(nn.Module):
    """The auxiliary GAT's first layer; its attention coefficients are the edge features.

    ``forward(x, edge_index)`` returns the layer's node output ``[N, n_heads *
    head_dim]`` (input of the auxiliary GAT's second layer) and the attention
    coefficients ``[E, n_heads]`` of the given edges, in their order. Every node
    attends to itself as well (a self loop is added where there is none, as in
    GAT and the reference code), so a node's coefficients over its in-edges sum
    to less than one by its self-attention.
    """

    def __init__(self, in_dim: int, n_heads: int, head_dim: int = 8) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.n_heads, self.head_dim = n_heads, head_dim
        # Self loops are appended by hand, after the real edges, so that the
        # first E attention rows are the real edges in their input order.
        self.conv = GATConv(in_dim, head_dim, heads=n_heads, concat=True, add_self_loops=False)

    @property
    def out_dim(self) -> int:
        return self.n_heads * self.head_dim

    def forward(
        self, x: torch.Tensor, edge_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_edges = edge_index.shape[1]
        with_loops = _append_missing_self_loops(edge_index, x.shape[0])
        out, (_, alpha) = self.conv(x, with_loops, return_attention_weights=True)
        return out, alpha[:n_edges]


def _append_missing_self_loops(edge_index: torch.Tensor, n_nodes: int) -> torch.Tensor:
    has_loop = torch.zeros(n_nodes, dtype=torch.bool, device=edge_index.device)
    has_loop[edge_index[0, edge_index[0] == edge_index[1]]] = True
    nodes = torch.arange(n_nodes, device=edge_index.device)[~has_loop]
    return torch.cat([edge_index, torch.stack([nodes, nodes])], dim=1)


def forman_curvature(
    edge_index: torch.Tensor, n_nodes: int, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Forman-Ricci curvature ``[E]`` of each edge, range-scaled to ``[-1, 1]``.

    ``F(u, v) = 4 - sqrt(w_uv) * (sum_{e out of u} 1/sqrt(w_e) + sum_{e into v}
    1/sqrt(w_e))`` as in the reference code's ``forman_curvature`` (Sehanobish et
    al. 2020; Forman, "Bochner's method for cell complexes and combinatorial Ricci
    curvature", Discrete Comput. Geom. 2003); with unit weights and a symmetric
    edge list it is ``4 - deg u - deg v``. Scaled by the graph's min and max, as
    their ``range_scale``; a graph whose edges all have one curvature gets zeros.
    """
    src, dst = edge_index
    w = torch.ones(src.shape[0], device=edge_index.device) if weight is None else weight.float()
    inv = w.rsqrt()
    out_sum = torch.zeros(n_nodes, device=w.device).index_add_(0, src, inv)
    in_sum = torch.zeros(n_nodes, device=w.device).index_add_(0, dst, inv)
    curvature = 4.0 - w.sqrt() * (out_sum[src] + in_sum[dst])
    if curvature.numel() == 0:
        return curvature
    low, high = curvature.min(), curvature.max()
    if not bool(high > low):
        return torch.zeros_like(curvature)
    return 2.0 * (curvature - low) / (high - low) - 1.0


def _edge_weight(data: Any) -> torch.Tensor | None:
    """The graph's scalar edge weights (a positive one-column ``edge_attr``), else None."""
    ea = getattr(data, "edge_attr", None)
    if not isinstance(ea, torch.Tensor) or ea.shape[0] != data.edge_index.shape[1]:
        return None
    if ea.ndim == 2 and ea.shape[1] == 1:
        ea = ea[:, 0]
    if ea.ndim != 1 or not ea.is_floating_point() or not bool((ea > 0).all()):
        return None
    return ea


# -- the encoder ----------------------------------------------------------------------


class EdgeFeatureGAT(nn.Module):
    """A GAT whose edges carry learned attention features (and Forman curvature).

    ``edge_features(data)`` is ``[E, edge_dim]``: the attention coefficients of
    ``edge_dim - curvature`` heads of :attr:`edge_encoder`, then (``curvature``)
    the range-scaled Forman curvature. ``node_states(data)`` runs ``n_layers``
    ``GATConv`` layers that read those features in their attention scores
    (``heads`` heads, concatenated in hidden layers and averaged in the last, ELU
    between layers as in GAT and the paper). An ``edge_attr`` of the graph is not
    an input (the edge features are learned), except that a positive scalar edge
    weight enters the curvature, as the reference code's weighted kNN adjacency does.

    Faces (``graph.edge_gat``: ``("embedding", "tokens", "graph.learned_edges")``):
    ``embed(data)`` (also ``forward``) is the node rows ``[N, embed_dim]`` (the
    nodes are the samples of a ``graph.node`` dataset); ``tokens(data)`` the same
    rows as :class:`selfsup.api.Tokens` ``[1, N, embed_dim]``; the plugin's own
    ``graph.learned_edges`` face, which :class:`EdgeFeaturePretext` trains, is
    :attr:`edge_encoder` (an :class:`AttentionEdgeEncoder`),
    :meth:`assemble_edge_features` and :meth:`node_states` with its ``edge_attr``
    override. Before selfsup 0.2 the pretext named this encoder
    (``PretextSpec(encoders=...)``) and checked its class; the face replaces both.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        hidden_dim: int = 128,
        embed_dim: int = 64,
        n_layers: int = 2,
        heads: int = 4,
        edge_dim: int = 9,
        curvature: bool = True,
        attention_dim: int = 8,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        _check_encoder_options(
            in_dim,
            hidden_dim,
            embed_dim,
            n_layers,
            heads,
            edge_dim,
            curvature,
            attention_dim,
            dropout,
        )
        self.in_dim, self.embed_dim, self.edge_dim = in_dim, embed_dim, edge_dim
        self.curvature, self.dropout = bool(curvature), float(dropout)
        self.edge_encoder = AttentionEdgeEncoder(in_dim, edge_dim - int(curvature), attention_dim)
        widths = [in_dim] + [hidden_dim] * (n_layers - 1) + [embed_dim]
        layers: list[nn.Module] = []
        for i, (w_in, w_out) in enumerate(pairwise(widths)):
            if i == n_layers - 1:
                layers.append(GATConv(w_in, w_out, heads=heads, concat=False, edge_dim=edge_dim))
            else:
                layers.append(GATConv(w_in, w_out // heads, heads=heads, edge_dim=edge_dim))
        self.layers = nn.ModuleList(layers)
        self.act = nn.ELU()

    def edge_features(self, data: Any) -> torch.Tensor:
        """Edge features ``[E, edge_dim]`` of ``data``'s edges, in ``edge_index`` order."""
        _, alpha = self.edge_encoder(data.x, data.edge_index)
        return self.assemble_edge_features(alpha, data)

    def assemble_edge_features(self, alpha: torch.Tensor, data: Any) -> torch.Tensor:
        """Attention coefficients ``[E, heads]`` plus the curvature column (if any)."""
        if not self.curvature:
            return alpha
        curv = forman_curvature(data.edge_index, int(data.x.shape[0]), _edge_weight(data))
        return torch.cat([alpha, curv.to(alpha.dtype)[:, None]], dim=1)

    def node_states(self, data: Any, edge_attr: torch.Tensor | None = None) -> torch.Tensor:
        """Node embeddings ``[N, embed_dim]``; ``edge_attr`` overrides :meth:`edge_features`."""
        x, edge_index = data.x, data.edge_index
        if edge_attr is None:
            edge_attr = self.edge_features(data)
        elif edge_attr.shape != (edge_index.shape[1], self.edge_dim):
            raise ValueError(
                f"{ENCODER_NAME}: edge_attr must be [{edge_index.shape[1]}, "
                f"{self.edge_dim}], got {tuple(edge_attr.shape)}"
            )
        for i, layer in enumerate(self.layers):
            x = F.dropout(x, self.dropout, self.training)
            x = layer(x, edge_index, edge_attr=edge_attr)
            if i < len(self.layers) - 1:
                x = self.act(x)
        return x

    def embed(self, data: Any) -> torch.Tensor:
        """The ``embedding`` face: node rows ``[N, embed_dim]``."""
        return self.node_states(data)

    def tokens(self, data: Any) -> Tokens:
        """The ``tokens`` face: the node rows as one graph's tokens ``[1, N, embed_dim]``."""
        return node_tokens(self.node_states(data), data)

    def forward(self, data: Any) -> torch.Tensor:
        return self.embed(data)


def _check_encoder_options(
    in_dim: int,
    hidden_dim: int,
    embed_dim: int,
    n_layers: int,
    heads: int,
    edge_dim: int,
    curvature: bool,
    attention_dim: int,
    dropout: float,
) -> None:
    for name, value in (
        ("in_dim", in_dim),
        ("hidden_dim", hidden_dim),
        ("embed_dim", embed_dim),
        ("n_layers", n_layers),
        ("heads", heads),
        ("edge_dim", edge_dim),
        ("attention_dim", attention_dim),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(
                f"{ENCODER_NAME}: option {name} must be a positive integer, got {value!r}"
            )
    if curvature and edge_dim < 2:
        raise ValueError(
            f"{ENCODER_NAME}: with curvature=True one of the edge_dim={edge_dim} "
            "edge features is the curvature and at least one must be learned; "
            "use edge_dim >= 2 or curvature=False"
        )
    if n_layers > 1 and hidden_dim % heads:
        raise ValueError(
            f"{ENCODER_NAME}: hidden_dim={hidden_dim} must be divisible by "
            f"heads={heads} (hidden layers concatenate the heads)"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{ENCODER_NAME}: option dropout must be in [0, 1), got {dropout!r}")


def build_encoder(
    dataset: SSLDataset,
    *,
    hidden_dim: int = 128,
    embed_dim: int = 64,
    n_layers: int = 2,
    heads: int = 4,
    edge_dim: int = 9,
    curvature: bool = True,
    attention_dim: int = 8,
    dropout: float = 0.0,
) -> EdgeFeatureGAT:
    """``graph.edge_gat`` factory: the input width comes from the dataset.

    Defaults: ``edge_dim=9`` is the paper's 8 attention heads plus the curvature;
    ``attention_dim=8`` their per-head width; ``heads``, widths and depth as
    ``graph.gat``.
    """
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{ENCODER_NAME} embeds the nodes of one graph; dataset "
            f"{dataset.name!r} has modality {dataset.modality!r}, not 'graph.node'"
        )
    return EdgeFeatureGAT(
        int(dataset.num_features),  # type: ignore[attr-defined]
        hidden_dim=hidden_dim,
        embed_dim=embed_dim,
        n_layers=n_layers,
        heads=heads,
        edge_dim=edge_dim,
        curvature=curvature,
        attention_dim=attention_dim,
        dropout=dropout,
    )


# -- the pretext ----------------------------------------------------------------------


def _at_least_two(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 2
    return None if ok else "be an int >= 2"


def _int(value: Any) -> str | None:
    return None if isinstance(value, int) and not isinstance(value, bool) else "be an int"


@dataclass(frozen=True)
class EdgeFeaturesConfig:
    """Options of :func:`build` (``graph.edge_features``)."""

    n_clusters: int = option(
        10, _at_least_two,
        "k-means clusters of the diffused node features: the auxiliary task's pseudo-labels",
    )
    smoothing_steps: int = option(
        2, non_negative_int,
        "diffusion steps h <- D^-1 (A + I) h of the node features before k-means (0: raw)",
    )
    node_weight: float = option(
        1.0, non_negative, "weight of the GAT's own pseudo-label loss (0: the edge encoder only)"
    )
    seed: int = option(0, _int, "seed of the k-means that draws the pseudo-labels")


def diffuse_features(x: torch.Tensor, edge_index: torch.Tensor, steps: int) -> torch.Tensor:
    """``steps`` rounds of neighbourhood averaging ``h <- D^-1 (A + I) h`` (self included)."""
    n = x.shape[0]
    loops = torch.arange(n, device=edge_index.device)
    src = torch.cat([edge_index[0], loops])
    dst = torch.cat([edge_index[1], loops])
    count = torch.zeros(n, device=x.device).index_add_(0, dst, torch.ones_like(dst, dtype=x.dtype))
    h = x
    for _ in range(steps):
        h = torch.zeros_like(h).index_add_(0, dst, h[src]) / count[:, None]
    return h


def kmeans_pseudo_labels(x: torch.Tensor, n_clusters: int, seed: int) -> torch.Tensor:
    """Cluster ids ``[N]`` of the rows of ``x`` by k-means (10 restarts, seeded)."""
    from sklearn.cluster import KMeans

    if n_clusters > x.shape[0]:
        raise ValueError(
            f"{NAME}: option n_clusters={n_clusters} exceeds the graph's "
            f"{x.shape[0]} nodes; use a smaller n_clusters"
        )
    features = x.detach().double().cpu().numpy()
    labels = KMeans(n_clusters, n_init=10, random_state=seed).fit_predict(features)
    return torch.from_numpy(labels.astype(np.int64))


def make_pseudo_labels(graph: Any, config: EdgeFeaturesConfig) -> torch.Tensor:
    """The auxiliary task's labels: k-means of the diffused node features."""
    with torch.no_grad():
        h = diffuse_features(graph.x.float(), graph.edge_index, config.smoothing_steps)
    return kmeans_pseudo_labels(h, config.n_clusters, config.seed)


class EdgeFeaturePretext(nn.Module, PretextTask):
    """Auxiliary-GAT edge features plus the GAT's own pseudo-label term (module docstring).

    ``forward(batch, generator)`` returns ``loss``, ``edge_loss``, ``node_loss``
    and ``embedding`` (the encoder's node rows, detached). The generator is unused.
    """

    def __init__(self, encoder: Any, dataset: SSLDataset, config: EdgeFeaturesConfig) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.encoder = encoder
        self.config = config
        graph = dataset.collate(list(dataset.pretrain_set()))  # type: ignore[call-overload]
        self.register_buffer("pseudo_labels", make_pseudo_labels(graph, config))
        edges = encoder.edge_encoder
        # The auxiliary GAT's output layer, as in the reference: as many heads as
        # the first layer, averaged. Not exported: only the attention is kept.
        self.aux_head = GATConv(edges.out_dim, config.n_clusters, heads=edges.n_heads, concat=False)
        self.node_head = nn.Linear(encoder.embed_dim, config.n_clusters)

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        labels: torch.Tensor = self.pseudo_labels  # type: ignore[assignment]
        n = int(batch.x.shape[0])
        if n != labels.shape[0]:
            raise ValueError(
                f"{NAME}: the batch has {n} nodes but the pseudo-labels were drawn "
                f"for the pretraining graph's {labels.shape[0]}; this task trains "
                "on the whole pretraining graph (batch_size=1)"
            )
        hidden, alpha = self.encoder.edge_encoder(batch.x, batch.edge_index)
        aux_logits = self.aux_head(F.elu(hidden), batch.edge_index)
        edge_loss = F.cross_entropy(aux_logits, labels)
        # Detached: the GAT reads the edge features as fixed inputs, as the paper's
        # final model reads precomputed ones; only edge_loss shapes the edge encoder.
        edge_attr = self.encoder.assemble_edge_features(alpha, batch).detach()
        z = self.encoder.node_states(batch, edge_attr=edge_attr)
        node_loss = F.cross_entropy(self.node_head(z), labels)
        loss = edge_loss + self.config.node_weight * node_loss
        return {
            "loss": loss,
            "edge_loss": edge_loss.detach(),
            "node_loss": node_loss.detach(),
            "embedding": z.detach(),
        }


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> EdgeFeaturePretext:
    """``graph.edge_features`` factory; ``options`` are :class:`EdgeFeaturesConfig` fields."""
    config = parse_options(EdgeFeaturesConfig, options, NAME)
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{NAME} needs a node-level graph dataset; dataset {dataset.name!r} "
            f"has modality {dataset.modality!r}"
        )
    return EdgeFeaturePretext(encoder, dataset, config)
