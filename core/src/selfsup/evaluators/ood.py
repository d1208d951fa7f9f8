"""Out-of-distribution detection with a frozen pretrained encoder.

After Miyai, Yu, Irie & Aizawa, "Can Pre-trained Networks Detect Familiar
Out-of-Distribution Data?" (PT-OOD), arXiv 2310.00847, 2023: some classes of a
labelled dataset are held out as out-of-distribution; the remaining,
in-distribution (ID) classes of the ``train`` split are the only labelled data the
detector sees; each ``test`` sample gets a score that should be higher for the
held-out classes. The paper finds that self-supervised encoders detect OOD data
they saw in pretraining worse than supervised ones when detection relies on a
linear probe's decision boundary, and proposes scoring in the feature space
instead: both scores here are of that kind (the paper's own ImageNet-scale
setting and its linear-probe detectors are not reproduced).

Scores on frozen embeddings:

- ``knn``: the cosine distance to the ``k``-th nearest ID training embedding, on
  L2-normalised embeddings (Sun, Ming, Zhu & Li, "Out-of-Distribution Detection
  with Deep Nearest Neighbors", ICML 2022; ``k=1`` by default: the paper's
  value for small training sets);
- ``mahalanobis``: the smallest Mahalanobis distance to a class mean under one
  covariance shared by the ID classes (Lee, Lee, Lee & Shin, "A Simple Unified
  Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks",
  NeurIPS 2018), with a small ridge so the covariance stays invertible.

The held-out classes were still in the unlabelled pretraining split of the
datasets here, so they are *familiar* OOD in PT-OOD's sense: the encoder has seen
them, only the labelled ID data has not. Which classes are held out is drawn per
seed (``ood_fraction`` of the classes, at least one), unless ``ood_classes``
names them.

Metric keys: ``ood.<score>_auroc`` (OOD as the positive class, 0.5 is chance)
and ``ood.<score>_fpr95`` (the share of OOD samples accepted as ID at the
threshold that keeps 95% of the ID test samples: lower is better), with ``_std``
over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    class_labels,
    embed_splits,
    require_seeds,
    require_task,
    summarise_seeds,
)
from selfsup.options import open_unit, option, optional, parse_options, positive, positive_int

NAME = "ood"


def _class_list(x: Any) -> str | None:
    ok = isinstance(x, (list, tuple)) and len(x) > 0 and all(
        isinstance(c, int) and not isinstance(c, bool) for c in x)
    return None if ok else "be a non-empty list of class indices, e.g. [8, 9]"


@dataclass(frozen=True)
class OODConfig:
    """Options of :func:`build`."""

    ood_fraction: float = option(0.3, open_unit, "share of the classes held out as OOD, per seed")
    ood_classes: tuple[int, ...] | None = option(
        None, optional(_class_list), "these classes as OOD for every seed (overrides the draw)")
    k: int = option(1, positive_int, "the k-th nearest ID neighbour gives the kNN score")
    ridge: float = option(1e-3, positive, "added to the shared covariance's diagonal (x trace/D)")


def build(**options: Any) -> Evaluator:
    """The OOD-detection evaluator; options are the fields of :class:`OODConfig`."""
    config = parse_options(OODConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return ood_detection(encoder, dataset, ctx, config)

    return evaluate


def ood_detection(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: OODConfig
) -> dict[str, float]:
    require_task(dataset, NAME, ("classification",))
    seeds = require_seeds(ctx, NAME)
    embedded = embed_splits(encoder, dataset, ctx, ("train", "test"))
    train, test = embedded["train"], embedded["test"]
    y_train, y_test = class_labels(train.y), class_labels(test.y)
    classes = np.unique(np.concatenate([y_train, y_test]))
    if len(classes) < 2:
        raise ValueError(f"{NAME}: dataset {dataset.name!r} has one class; nothing to hold out")
    per_seed = []
    for seed in seeds:
        held_out = _held_out(classes, config, seed)
        known = ~np.isin(y_train, held_out)
        is_ood = np.isin(y_test, held_out)
        if known.sum() <= config.k or is_ood.all() or not is_ood.any():
            raise ValueError(
                f"{NAME}: holding out classes {held_out.tolist()} leaves "
                f"{int(known.sum())} ID training and {int((~is_ood).sum())} ID / "
                f"{int(is_ood.sum())} OOD test samples; hold out fewer classes"
            )
        scores = {
            "knn": knn_distance(train.z[known], test.z, config.k),
            "mahalanobis": mahalanobis_distance(train.z[known], y_train[known], test.z,
                                                config.ridge),
        }
        result = {}
        for name, score in scores.items():
            result[f"{NAME}.{name}_auroc"] = auroc(score[is_ood], score[~is_ood])
            result[f"{NAME}.{name}_fpr95"] = fpr_at_95_tpr(score[is_ood], score[~is_ood])
        per_seed.append(result)
    return summarise_seeds(per_seed)


def _held_out(classes: np.ndarray, config: OODConfig, seed: int) -> np.ndarray:
    if config.ood_classes is not None:
        missing = sorted(set(config.ood_classes) - set(classes.tolist()))
        if missing:
            raise ValueError(f"{NAME}: ood_classes {missing} are not classes of the dataset; "
                             f"its classes are {classes.tolist()}")
        return np.asarray(config.ood_classes)
    n = min(len(classes) - 1, max(1, round(config.ood_fraction * len(classes))))
    rng = np.random.default_rng([seed, 7])
    return np.sort(rng.choice(classes, size=n, replace=False))


def knn_distance(memory: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Cosine distance of each query to its ``k``-th nearest memory row (normalised)."""
    m = memory / np.maximum(np.linalg.norm(memory, axis=1, keepdims=True), 1e-12)
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    sim = q @ m.T
    kth = np.partition(-sim, k - 1, axis=1)[:, k - 1]  # -(k-th largest similarity)
    return 1.0 + kth  # 1 - similarity


def mahalanobis_distance(
    z: np.ndarray, y: np.ndarray, queries: np.ndarray, ridge: float
) -> np.ndarray:
    """Smallest squared Mahalanobis distance to a class mean, one shared covariance."""
    z, queries = z.astype(np.float64), queries.astype(np.float64)
    labels = np.unique(y)
    means = np.stack([z[y == c].mean(axis=0) for c in labels])
    centred = z - means[np.searchsorted(labels, y)]
    cov = centred.T @ centred / len(z)
    # the ridge scales with the average variance; a constant (collapsed) representation
    # has none, and gets an identity covariance instead of a singular one
    scale = np.trace(cov) / cov.shape[0]
    cov += ridge * (scale if scale > 0 else 1.0) * np.eye(cov.shape[0])
    precision = np.linalg.inv(cov)
    diff = queries[:, None, :] - means[None, :, :]  # [Q, C, D]
    dist = np.einsum("qcd,de,qce->qc", diff, precision, diff)
    return dist.min(axis=1)  # type: ignore[no-any-return]


def auroc(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """Probability that an OOD score exceeds an ID score (ties count a half)."""
    from sklearn.metrics import roc_auc_score

    truth = np.r_[np.ones(len(positive_scores)), np.zeros(len(negative_scores))]
    return float(roc_auc_score(truth, np.r_[positive_scores, negative_scores]))


def fpr_at_95_tpr(ood_scores: np.ndarray, id_scores: np.ndarray) -> float:
    """Share of OOD samples scored at or below the threshold that accepts 95% of ID."""
    threshold = np.quantile(id_scores, 0.95, method="higher")
    return float(np.mean(ood_scores <= threshold))
