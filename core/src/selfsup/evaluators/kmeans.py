"""k-means clustering of frozen embeddings, scored against the labels.

How well the classes emerge without any supervised fitting: k-means with as many
clusters as classes, compared with the labels by normalised mutual information
(NMI; Strehl & Ghosh, "Cluster Ensembles", JMLR 2002), as in Caron et al., "Deep
Clustering for Unsupervised Learning of Visual Features" (DeepCluster), ECCV
2018, and by the adjusted Rand index (ARI; Hubert & Arabie, "Comparing
Partitions", Journal of Classification 1985), which is 0 in expectation for a
random clustering. k-means' initialisation is random, so each seed of
``ctx.seeds`` runs it once (with ``n_init`` restarts) and the spread is reported.

Embeddings are L2-normalised first by default (``l2_normalize``): contrastive
objectives define their embeddings on the unit sphere, where the norm carries no
meaning, and the kNN evaluator compares them by cosine too.

Metric keys: ``kmeans.nmi``, ``kmeans.ari`` and their ``_std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    class_labels,
    extract_embeddings,
    require_seeds,
    require_task,
    summarise_seeds,
)
from selfsup.options import (
    boolean,
    option,
    optional,
    parse_options,
    positive_int,
    split_name,
)

NAME = "kmeans"


@dataclass(frozen=True)
class KMeansConfig:
    """Options of :func:`build`."""

    split: str = option("test", split_name,
                        "labelled split to cluster, or 'all' for every split pooled")
    n_clusters: int | None = option(None, optional(positive_int),
                                    "clusters; None means the dataset's task.n_classes")
    n_init: int = option(10, positive_int, "k-means restarts per seed (best inertia kept)")
    max_iter: int = option(300, positive_int, "Lloyd iterations per restart")
    l2_normalize: bool = option(True, boolean, "cluster directions rather than raw vectors")


def build(**options: Any) -> Evaluator:
    """The k-means evaluator; options are the fields of :class:`KMeansConfig`."""
    config = parse_options(KMeansConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        require_task(dataset, NAME, ("classification",))
        seeds = require_seeds(ctx, NAME)
        z, y = _embeddings(encoder, dataset, ctx, config.split)
        y = class_labels(y)
        if config.l2_normalize:
            z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        n_clusters = config.n_clusters or dataset.task.n_classes
        assert n_clusters is not None  # TaskSpec requires n_classes for classification
        if n_clusters > len(z):
            raise ValueError(
                f"{NAME}: {n_clusters} clusters but only {len(z)} samples in split "
                f"{config.split!r}; pass a smaller n_clusters or split='all'"
            )
        per_seed = []
        for seed in seeds:
            assignment = KMeans(
                n_clusters=n_clusters,
                n_init=config.n_init,
                max_iter=config.max_iter,
                random_state=seed,
            ).fit_predict(z)
            per_seed.append(
                {
                    f"{NAME}.nmi": float(normalized_mutual_info_score(y, assignment)),
                    f"{NAME}.ari": float(adjusted_rand_score(y, assignment)),
                }
            )
        return summarise_seeds(per_seed)

    return evaluate


def _embeddings(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, split: str
) -> tuple[np.ndarray, np.ndarray]:
    if split != "all":
        if split not in dataset.splits:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r} has no labelled split {split!r}; "
                f"pass one of {list(dataset.splits)} or 'all'"
            )
        return extract_embeddings(encoder, dataset, split, ctx)
    parts = [extract_embeddings(encoder, dataset, s, ctx) for s in dataset.splits]
    return np.concatenate([z for z, _ in parts]), np.concatenate([y for _, y in parts])
