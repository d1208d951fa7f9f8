"""D-SLA: discrepancy-based self-supervised learning on graphs with edit distances.

Kim, Baek, Lee & Hwang, "Graph Self-Supervised Learning with Accurate Discrepancy
Learning", NeurIPS 2022 (arXiv:2202.02989). Instead of making a graph and its
augmentations similar (contrastive learning), D-SLA learns the *discrepancy* between
a graph and perturbed copies of it, using the number of edits as a target:

1. perturbation: each graph ``G_0`` of the batch gets ``n_perturbed`` copies
   ``G_1 .. G_n``; copy ``i`` removes ``i * k`` of its edges and adds ``i * k`` new
   ones, ``k = max(1, round(edit_fraction * |E|))`` (the authors' code increases
   the perturbation with ``i`` so that the copies have different edit distances;
   removals are capped by the edges there are, additions by the non-edges). The
   edit distance ``e_i`` is the number of edges removed plus added (an upper bound
   on the true graph edit distance, which is what the paper uses). An undirected
   graph (every edge stored in both directions) is edited as undirected pairs and
   stays symmetric; a directed one is edited edge by edge. Self loops are kept.
   Added edges get all-zero ``edge_attr``. With ``mask_fraction > 0`` every
   candidate, the original included, also has that share of its nodes' features
   zeroed, drawn independently per candidate as in the authors' code (so masking
   is no cue for the discriminator).
2. graph discrimination: a score head ``S`` (the authors' 3-layer MLP
   ``D -> D -> D -> 1``) on the pooled embeddings ``h_i = f(G_i)`` ``[D]``; a softmax
   over ``[S(h_0), S(h_1), ..., S(h_n)]`` must pick the original:
   ``L_GD = -log softmax(S)_0``, averaged over the batch.
3. edit-distance-based discrepancy: the embedding distances
   ``d_i = ||h_i - h_0||`` should be proportional to ``e_i``:
   ``L_edit = mean over graphs and pairs i < j of (d_i / e_i - d_j / e_j)^2``
   (zero exactly when ``d_i = c e_i``; the mean over pairs is ``2n / (n - 1)`` times
   the variance of the ``d_i / e_i`` around their mean). A copy with ``e_i = 0``
   (a graph with nothing to edit) is left out.
4. margin with negative graphs: the other originals ``G'`` of the batch must be
   farther from ``G_0`` than its perturbations are, by ``margin``:
   ``L_margin = mean over graphs, other graphs G' and i of
   max(0, margin + d_i - ||h_0 - h'_0||)`` (zero for a batch of one graph).

``loss = L_GD + lambda_edit * L_edit + lambda_margin * L_margin``; the weights 0.7
and 0.5 are the authors' code defaults (``edit_coeff``, ``margin_coeff``).

Shapes: a batch of ``B`` graphs becomes ``B * (n + 1)`` candidates, encoded at once;
``h`` is ``[B, n + 1, D]``, scores ``[B, n + 1]``, ``d`` and ``e`` ``[B, n]``.
The exported encoder output is ``h_0``, the originals' embeddings ``[B, D]``.
D-SLA trains the encoder's ``embedding`` face, ``encoder.embed(candidates)``: the
per-graph rows that selfsup 0.1 took from ``encoder(candidates)`` (a node-level
encoder, pooled through ``encoder.pool``, is no longer accepted: pooling belongs to
the encoder's embedding face).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    GRAPH_GRAPH,
    PretextTask,
    SSLDataset,
    encoder_dim,
    fraction,
    mlp_head,
    non_negative,
    option,
    parse_options,
)

if TYPE_CHECKING:
    from torch_geometric.data import Data

NAME = "graph.dsla"

#: graphs with more nodes draw added edges by rejection instead of listing non-edges
_DENSE_NODES = 2048


def _at_least_two(value: Any) -> str | None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 2
    return None if ok else "be an int >= 2 (the edit-distance loss compares perturbed copies)"


def _edit_share(value: Any) -> str | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= 1
    return None if ok else "be in (0, 1] (the paper uses 0.1-0.2)"


@dataclass(frozen=True)
class DSLAConfig:
    """Options of :func:`build` (``graph.dsla``)."""

    n_perturbed: int = option(2, _at_least_two, "perturbed copies per graph")
    edit_fraction: float = option(
        0.1, _edit_share, "copy i removes and adds i * max(1, round(edit_fraction * |E|)) edges"
    )
    margin: float = option(
        1.0, non_negative, "how much farther other graphs must be than perturbed copies"
    )
    lambda_edit: float = option(0.7, non_negative, "weight of L_edit")
    lambda_margin: float = option(0.5, non_negative, "weight of L_margin")
    mask_fraction: float = option(
        0.0, fraction, "share of nodes whose features are zeroed in every candidate (0: off)"
    )


# -- perturbation ---------------------------------------------------------------------------


def _rand(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` uniform numbers from ``generator`` (drawn on its device), on CPU."""
    return torch.rand(n, generator=generator, device=generator.device).cpu()


def _choose(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` distinct indices of ``range(n)``, uniformly, on CPU."""
    return torch.argsort(_rand(n, generator))[:k]


def _is_symmetric(edge_index: torch.Tensor, num_nodes: int) -> bool:
    from torch_geometric.utils import is_undirected

    return bool(is_undirected(edge_index, num_nodes=num_nodes))


def editable_edges(data: Data) -> int:
    """Edges a perturbation may remove: undirected pairs of a symmetric graph, else
    directed edges; self loops excluded."""
    ei = data.edge_index
    n = int(data.num_nodes)
    if _is_symmetric(ei, n):
        return int((ei[0] < ei[1]).sum())
    return int((ei[0] != ei[1]).sum())


def perturb_edges(data: Data, n_edits: int, generator: torch.Generator) -> tuple[Data, int]:
    """A copy of ``data`` with ``n_edits`` edges removed and ``n_edits`` added.

    Removals are capped by the editable edges and additions by the node pairs that
    are not edges; returns the copy and its edit distance (edges removed + added).
    See the module docstring for the undirected and directed cases.
    """
    n = int(data.num_nodes)
    ei = data.edge_index.cpu()
    ea = getattr(data, "edge_attr", None)
    ea_cpu = ea.cpu() if ea is not None else None
    symmetric = _is_symmetric(ei, n)
    loops = ei[0] == ei[1]
    # Editable edges: one column per undirected pair (u < v) or per directed edge.
    editable = (ei[0] < ei[1]) if symmetric else ~loops
    pairs = ei[:, editable]
    pair_attr = ea_cpu[editable] if ea_cpu is not None else None

    n_remove = min(n_edits, pairs.shape[1])
    keep = torch.ones(pairs.shape[1], dtype=torch.bool)
    keep[_choose(pairs.shape[1], n_remove, generator)] = False
    kept, kept_attr = pairs[:, keep], (pair_attr[keep] if pair_attr is not None else None)

    added = _sample_non_edges(pairs, n, n_edits, symmetric, generator)
    new_pairs = torch.cat([kept, added], dim=1)
    new_attr = None
    if kept_attr is not None:
        zeros = kept_attr.new_zeros((added.shape[1], *kept_attr.shape[1:]))
        new_attr = torch.cat([kept_attr, zeros])
    loop_index = ei[:, loops]
    loop_attr = ea_cpu[loops] if ea_cpu is not None else None
    if symmetric:
        new_index = torch.cat([new_pairs, new_pairs.flip(0), loop_index], dim=1)
        if new_attr is not None:
            new_attr = torch.cat([new_attr, new_attr, loop_attr])  # type: ignore[list-item]
    else:
        new_index = torch.cat([new_pairs, loop_index], dim=1)
        if new_attr is not None:
            new_attr = torch.cat([new_attr, loop_attr])  # type: ignore[list-item]

    out = data.clone()
    out.edge_index = new_index.to(data.edge_index.device)
    if ea is not None:
        out.edge_attr = new_attr.to(ea.device)  # type: ignore[union-attr]
    return out, n_remove + int(added.shape[1])


def _sample_non_edges(
    pairs: torch.Tensor, n: int, k: int, symmetric: bool, generator: torch.Generator
) -> torch.Tensor:
    """Up to ``k`` distinct node pairs ``[2, <=k]`` that are not in ``pairs`` (nor loops)."""
    if n < 2 or k == 0:
        return torch.zeros((2, 0), dtype=torch.long)
    if n <= _DENSE_NODES:
        free = torch.ones((n, n), dtype=torch.bool)
        free[pairs[0], pairs[1]] = False
        if symmetric:
            free = torch.triu(free, diagonal=1)
        else:
            free.fill_diagonal_(False)
        candidates = free.nonzero().T  # [2, C], row-major: a fixed order for the draw
        return candidates[:, _choose(candidates.shape[1], k, generator)]
    # Large graph: draw pairs and keep the new ones (non-edges are the vast majority).
    existing = set((pairs[0] * n + pairs[1]).tolist())
    total = n * (n - 1) // (2 if symmetric else 1)
    k = min(k, total - len(existing))
    chosen: list[int] = []
    seen: set[int] = set()
    while len(chosen) < k:
        draw = (_rand(2 * (k - len(chosen)) + 8, generator) * n).long().view(-1, 2)
        for u, v in draw.tolist():
            if u == v:
                continue
            if symmetric and u > v:
                u, v = v, u
            key = u * n + v
            if key in existing or key in seen:
                continue
            seen.add(key)
            chosen.append(key)
            if len(chosen) == k:
                break
    keys = torch.tensor(chosen, dtype=torch.long)
    return torch.stack([keys // n, keys % n])


def mask_nodes(data: Data, fraction: float, generator: torch.Generator) -> Data:
    """A copy of ``data`` whose features are zero on ``round(fraction * N)`` random nodes."""
    if fraction <= 0:
        return data
    n = int(data.num_nodes)
    idx = _choose(n, round(fraction * n), generator).to(data.x.device)
    out = data.clone()
    out.x = data.x.clone()
    out.x[idx] = 0
    return out


# -- losses ---------------------------------------------------------------------------------


def discrimination_loss(scores: torch.Tensor) -> torch.Tensor:
    """Graph discrimination: cross entropy of scores ``[B, n + 1]``, the original
    (column 0) as the target."""
    target = torch.zeros(scores.shape[0], dtype=torch.long, device=scores.device)
    return F.cross_entropy(scores, target)


def edit_loss(distance: torch.Tensor, edits: torch.Tensor) -> torch.Tensor:
    """Edit-distance discrepancy: mean of ``(d_i / e_i - d_j / e_j)^2`` over graphs and
    pairs ``i < j``.

    ``distance``, ``edits``: ``[B, n]``; copies with ``e_i = 0`` are left out.
    """
    valid = edits > 0
    ratio = distance / edits.clamp(min=1).to(distance.dtype)
    i, j = torch.triu_indices(ratio.shape[1], ratio.shape[1], offset=1, device=ratio.device)
    both = valid[:, i] & valid[:, j]
    if not both.any():
        return distance.sum() * 0.0
    sq = (ratio[:, i] - ratio[:, j]).pow(2)
    return sq[both].mean()


def margin_loss(anchors: torch.Tensor, distance: torch.Tensor, margin: float) -> torch.Tensor:
    """Margin with negatives: mean over ``b``, ``b' != b`` and ``i`` of
    ``max(0, margin + d[b, i] - ||h_b - h_b'||)``.

    ``anchors``: the originals' embeddings ``[B, D]``; ``distance``: ``[B, n]``.
    """
    b = anchors.shape[0]
    if b < 2:
        return distance.sum() * 0.0
    # Off-diagonal pairs only: the norm's gradient at a zero distance is not needed.
    row, col = (~torch.eye(b, dtype=torch.bool, device=anchors.device)).nonzero().T
    negative = (anchors[row] - anchors[col]).norm(dim=-1)  # [B * (B - 1)]
    return F.relu(margin + distance[row] - negative[:, None]).mean()


# -- the task -------------------------------------------------------------------------------


class DSLA(nn.Module, PretextTask):
    """The D-SLA pretext task; see the module docstring.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "gd_loss",
    "edit_loss", "margin_loss", "gd_accuracy"}``; ``embedding`` is the originals'
    ``[B, D]`` encoder output, detached.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: DSLAConfig) -> None:
        super().__init__()
        if dataset.modality != GRAPH_GRAPH:
            raise ValueError(
                f"{NAME} perturbs whole graphs: it needs a 'graph.graph' dataset (a batch of "
                f"graphs), but {dataset.name!r} has modality {dataset.modality!r}; for the "
                "nodes of one graph use graph.grace, graph.dgi or graph.pairwise_distance"
            )
        self.encoder = encoder
        self.config = config
        dim = encoder_dim(encoder, NAME)
        # The authors' score function: Linear-ReLU-Linear-ReLU-Linear(1).
        self.score = mlp_head(dim, dim, 1, n_layers=3, norm="none")

    def candidates(self, batch: Any, generator: torch.Generator) -> tuple[Any, torch.Tensor]:
        """All candidates as one ``Batch`` of ``B * (n + 1)`` graphs, ordered graph by graph
        (original first), and the edit distances ``[B, n]``."""
        from torch_geometric.data import Batch

        graphs = batch.to_data_list() if hasattr(batch, "to_data_list") else [batch]
        n, frac = self.config.n_perturbed, self.config.mask_fraction
        out: list[Data] = []
        edits = torch.zeros(len(graphs), n)
        for b, g in enumerate(graphs):
            k = max(1, round(self.config.edit_fraction * editable_edges(g)))
            out.append(mask_nodes(g, frac, generator))
            for i in range(1, n + 1):
                copy, e = perturb_edges(g, i * k, generator)
                out.append(mask_nodes(copy, frac, generator))
                edits[b, i - 1] = e
        return Batch.from_data_list(out), edits

    def graph_rows(self, data: Any) -> torch.Tensor:
        """Per-graph encoder output ``[G, D]``: the encoder's ``embedding`` face."""
        h: torch.Tensor = self.encoder.embed(data)
        g = int(data.num_graphs)
        if h.shape[0] != g:
            raise ValueError(
                f"{NAME} needs one row per graph, but the encoder's embedding face returned "
                f"{h.shape[0]} rows for {g} graphs; build the encoder for a 'graph.graph' "
                "dataset, so that it pools per graph"
            )
        return h

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        cand, edits = self.candidates(batch, generator)
        device = next(self.score.parameters()).device
        cand = cand.to(device)
        h = self.graph_rows(cand)
        n1 = self.config.n_perturbed + 1
        h = h.view(-1, n1, h.shape[-1])  # [B, n + 1, D]
        scores = self.score(h).squeeze(-1)  # [B, n + 1]
        distance = (h[:, 1:] - h[:, :1]).norm(dim=-1)  # [B, n]
        edits = edits.to(device)
        l_gd = discrimination_loss(scores)
        l_edit = edit_loss(distance, edits)
        l_margin = margin_loss(h[:, 0], distance, self.config.margin)
        loss = l_gd + self.config.lambda_edit * l_edit + self.config.lambda_margin * l_margin
        accuracy = (scores.detach().argmax(dim=1) == 0).float().mean()
        return {
            "loss": loss,
            "embedding": h[:, 0].detach(),
            "gd_loss": l_gd.detach(),
            "edit_loss": l_edit.detach(),
            "margin_loss": l_margin.detach(),
            "gd_accuracy": accuracy,
        }


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> DSLA:
    """``graph.dsla`` factory; ``options`` are :class:`DSLAConfig` fields."""
    return DSLA(encoder, dataset, parse_options(DSLAConfig, options, NAME))
