"""N-way K-shot episodes on frozen embeddings (``vision3d.few_shot``).

The few-shot protocol of point-cloud SSL papers (Sharma & Kaul, "Self-Supervised
Few-Shot Learning on Point Clouds", NeurIPS 2020; the 5-way/10-way x 10/20-shot
tables of Point-BERT and Point-MAE): each episode draws ``n_way`` classes, ``k_shot``
labelled support clouds and ``n_query`` query clouds per class from the test split.
Here the encoder stays frozen and queries go to the nearest class prototype (the
mean of its support embeddings, cosine similarity after centring on the support
mean: Prototypical Networks, Snell et al., NeurIPS 2017, without episodic training);
the papers fine-tune the encoder per episode instead, which is not done here.

Metrics ``few_shot.accuracy`` (mean over episodes) and ``few_shot.accuracy_ci95``
(the half-width of its 95% interval, 1.96 sd / sqrt(episodes)). Episodes are drawn
with numpy generators seeded by ``ctx.seeds``; with several seeds the means are
summarised with ``_std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    class_labels,
    extract_embeddings,
    option,
    parse_options,
    positive_int,
    require_seeds,
    require_task,
    summarise_seeds,
)

NAME = "few_shot"


@dataclass(frozen=True)
class FewShotConfig:
    """Options of ``vision3d.few_shot``."""

    n_way: int = option(5, positive_int, "classes per episode")
    k_shot: int = option(5, positive_int, "labelled support clouds per class")
    n_query: int = option(10, positive_int, "query clouds per class (fewer if a class lacks)")
    episodes: int = option(200, positive_int, "episodes per seed")


def episode_accuracy(z: np.ndarray, y: np.ndarray, config: FewShotConfig,
                     rng: np.random.Generator) -> float:
    """Prototype accuracy of one episode drawn from embeddings ``z`` ``[N, D]``."""
    classes = [c for c in np.unique(y) if (y == c).sum() > config.k_shot]
    if len(classes) < config.n_way:
        raise ValueError(f"{NAME}: only {len(classes)} classes have more than k_shot="
                         f"{config.k_shot} clouds in the split; lower n_way or k_shot")
    chosen = rng.choice(classes, config.n_way, replace=False)
    support, queries, truth = [], [], []
    for i, c in enumerate(chosen):
        idx = rng.permutation(np.flatnonzero(y == c))
        support.append(z[idx[: config.k_shot]])
        q = idx[config.k_shot: config.k_shot + config.n_query]
        queries.append(z[q])
        truth += [i] * len(q)
    s = np.stack(support)  # [n_way, k, D]
    centre = s.reshape(-1, s.shape[-1]).mean(0)
    protos = s.mean(1) - centre
    q = np.concatenate(queries) - centre
    protos /= np.linalg.norm(protos, axis=1, keepdims=True).clip(1e-12)
    q /= np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
    return float(((q @ protos.T).argmax(1) == np.asarray(truth)).mean())


def build(**options: Any) -> Evaluator:
    """``vision3d.few_shot`` factory; ``options`` are :class:`FewShotConfig` fields."""
    config = parse_options(FewShotConfig, options, f"vision3d.{NAME}")

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        require_task(dataset, NAME, ("classification",))
        z, y = extract_embeddings(encoder, dataset, "test", ctx)
        y = class_labels(y)
        per_seed = []
        for seed in require_seeds(ctx, NAME):
            rng = np.random.default_rng([seed, 7919])
            acc = np.asarray([episode_accuracy(z, y, config, rng)
                              for _ in range(config.episodes)])
            per_seed.append({f"{NAME}.accuracy": float(acc.mean()),
                             f"{NAME}.accuracy_ci95": float(1.96 * acc.std() /
                                                            np.sqrt(len(acc)))})
        return summarise_seeds(per_seed)

    return evaluate
