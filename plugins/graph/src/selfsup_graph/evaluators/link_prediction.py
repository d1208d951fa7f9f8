"""Link prediction on held-out edges, scored by embedding dot products.

The protocol of Kipf and Welling, "Variational Graph Auto-Encoders", NIPS
Workshop on Bayesian Deep Learning 2016 (GAE/VGAE), §3: a fraction of the
undirected edges is removed from the graph before anything trains on it and kept,
with as many node pairs that are not edges, as positive and negative test pairs;
the frozen encoder embeds the remaining graph, a pair ``(u, v)`` is scored by the
inner product ``z_u · z_v`` of its two embeddings, and the scores are summarised
by the area under the ROC curve and the average precision. GAE passes the inner
product through a sigmoid; both metrics depend only on the ranking of the scores,
so the sigmoid is left out.

This is the standard, parameter-free form of the protocol: nothing is fitted on
top of the embeddings (the held-out ``"val"`` pairs are for model selection, and
``split="val"`` scores them instead). Variants that train a classifier on edge
features such as the Hadamard product ``z_u ⊙ z_v`` (Grover and Leskovec,
node2vec, KDD 2016) measure the embedding plus a learned decoder and are not
implemented here.

The pairs come from :meth:`selfsup_graph.data.NodeGraphDataset.link_split`, so
the dataset must be built with ``holdout_edges > 0``; without held-out edges that
method's ValueError, which says how to build one, passes through. The encoder
runs once, in eval mode and without gradients, on ``ctx.device``, through its
``embedding`` face (``encoder.embed``, one row per node); the result does not
depend on ``ctx.seeds``, so no ``_std`` is reported.

Metric keys: ``link_prediction.auc`` and ``link_prediction.ap`` (the evaluator name
without its namespace, as core's evaluators do).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    EvalContext,
    Evaluator,
    SSLDataset,
    move_to,
    one_of,
    option,
    parse_options,
)

from ..data import NodeGraphDataset

NAME = "graph.link_prediction"
SPLITS = ("val", "test")


@dataclass(frozen=True)
class LinkPredictionConfig:
    """Options of :func:`build`."""

    split: str = option(
        "test", one_of(*SPLITS),
        "which held-out pairs to score: 'test' (report) or 'val' (model selection)",
    )


def build(**options: Any) -> Evaluator:
    """The link-prediction evaluator; options are the fields of :class:`LinkPredictionConfig`."""
    config = parse_options(LinkPredictionConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        positive, negative = held_out_pairs(dataset, config.split)
        z = embed_graph(encoder, dataset, ctx)
        return link_scores(z, positive, negative)

    return evaluate


def held_out_pairs(dataset: SSLDataset, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The held-out ``(positive, negative)`` pairs ``[2, K]`` of a node-level graph dataset."""
    if dataset.modality != GRAPH_NODE:
        raise ValueError(
            f"{NAME} scores node pairs of one graph; dataset {dataset.name!r} has modality "
            f"{dataset.modality!r}, not 'graph.node'"
        )
    if not isinstance(dataset, NodeGraphDataset):
        raise ValueError(
            f"{NAME}: dataset {dataset.name!r} ({type(dataset).__name__}) holds out no edges; "
            "build it on selfsup_graph.data.NodeGraphDataset with holdout_edges > 0"
        )
    # NodeGraphDataset raises its own ValueError (with the fix) when nothing was held out.
    positive, negative = dataset.link_split(split)
    for kind, pairs in (("positive", positive), ("negative", negative)):
        if pairs.ndim != 2 or pairs.shape[0] != 2 or pairs.shape[1] == 0:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r}, split {split!r}: the {kind} pairs must be "
                f"a non-empty [2, K] tensor, got shape {tuple(pairs.shape)}; hold out more "
                "edges (a larger holdout_edges)"
            )
    return positive.long(), negative.long()


def embed_graph(encoder: Any, dataset: SSLDataset, ctx: EvalContext) -> torch.Tensor:
    """Node embeddings ``[N, D]`` of the whole (held-out-free) graph, float32 on the CPU.

    Eval mode and no gradients, on ``ctx.device``; the encoder's train/eval mode
    is restored afterwards (it stays on ``ctx.device``, as in core's evaluators).
    """
    graph = dataset.collate(list(dataset.pretrain_set()))  # type: ignore[call-overload]
    n_nodes = int(graph.num_nodes)
    device = torch.device(ctx.device)
    was_training = encoder.training
    encoder.to(device)
    encoder.eval()
    try:
        with torch.no_grad():
            z = encoder.embed(move_to(graph, device))
    finally:
        encoder.train(was_training)
    if not isinstance(z, torch.Tensor) or z.ndim != 2 or z.shape[0] != n_nodes:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(
            f"{NAME}: encoder {type(encoder).__name__} must return one embedding row per node "
            f"[{n_nodes}, D] on dataset {dataset.name!r}, got {shape}"
        )
    # float() first: sklearn and numpy have no bfloat16
    return z.detach().float().cpu()


def link_scores(
    z: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor
) -> dict[str, float]:
    """ROC-AUC and average precision of the dot-product scores of ``positive`` vs ``negative``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    n = z.shape[0]
    for kind, pairs in (("positive", positive), ("negative", negative)):
        if pairs.numel() and (int(pairs.min()) < 0 or int(pairs.max()) >= n):
            raise ValueError(
                f"{NAME}: a {kind} pair names a node outside 0..{n - 1}; the held-out pairs "
                "and the embedded graph do not match"
            )
    scores = torch.cat([_dot(z, positive), _dot(z, negative)]).numpy().astype(np.float64)
    if not np.isfinite(scores).all():
        raise ValueError(
            f"{NAME}: {int((~np.isfinite(scores)).sum())} pair scores are not finite; the "
            "encoder produced NaN or infinite embeddings"
        )
    labels = np.concatenate([np.ones(positive.shape[1]), np.zeros(negative.shape[1])])
    return {
        "link_prediction.auc": float(roc_auc_score(labels, scores)),
        "link_prediction.ap": float(average_precision_score(labels, scores)),
    }


def _dot(z: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    return (z[pairs[0]] * z[pairs[1]]).sum(dim=1)
