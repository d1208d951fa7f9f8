"""Linear SVM on frozen embeddings (``vision3d.linear_svm``): the field's protocol.

Point-cloud SSL papers (Achlioptas et al. 2018; Sauder & Sievers 2019; Point-BERT,
Point-MAE's "linear SVM on ModelNet40") score frozen features with a linear SVM.
Here: features standardised on the fitting subset, scikit-learn's ``LinearSVC``
(one-vs-rest, squared hinge, L2 penalty), ``C`` chosen on the ``val`` split from
``c_grid``, accuracy and macro-F1 on ``test``; with ``label_fractions`` the SVM is
fitted on seeded class-balanced subsets of ``train`` (keys ``@10%`` as
``core.linear_probe``'s). Deterministic given the seed (``random_state``).
"""

from __future__ import annotations

import warnings
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
    label_fractions,
    option,
    parse_options,
    positive_grid,
    positive_int,
    require_seeds,
    require_task,
    stratified_subset,
    summarise_seeds,
)

NAME = "linear_svm"


@dataclass(frozen=True)
class LinearSVMConfig:
    """Options of ``vision3d.linear_svm``."""

    label_fractions: tuple[float, ...] = option((1.0,), label_fractions,
                                                "fractions of the training labels")
    c_grid: tuple[float, ...] = option((0.001, 0.01, 0.1, 1.0), positive_grid,
                                       "SVM C values tried on val")
    max_iter: int = option(5000, positive_int, "LinearSVC iterations")


def _suffix(fraction: float) -> str:
    return "" if fraction >= 1 else f"@{fraction * 100:g}%"


def fit_svm(z: tuple[np.ndarray, np.ndarray, np.ndarray],
            y: tuple[np.ndarray, np.ndarray, np.ndarray], config: LinearSVMConfig,
            seed: int) -> dict[str, float]:
    """Accuracy and macro-F1 on ``z[2]`` of the SVM whose C scores best on ``z[1]``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    scaler = StandardScaler().fit(z[0])
    train, val, test = (scaler.transform(part) for part in z)
    best, best_score = None, -np.inf
    for c in config.c_grid:
        model = LinearSVC(C=c, max_iter=config.max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(train, y[0])
        score = float((model.predict(val) == y[1]).mean())
        if score > best_score:
            best, best_score = model, score
    assert best is not None  # the grid is non-empty
    pred = best.predict(test)
    return {"accuracy": float((pred == y[2]).mean()),
            "f1_macro": float(f1_score(y[2], pred, average="macro", zero_division=0))}


def build(**options: Any) -> Evaluator:
    """``vision3d.linear_svm`` factory; ``options`` are :class:`LinearSVMConfig` fields."""
    config = parse_options(LinearSVMConfig, options, f"vision3d.{NAME}")

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        require_task(dataset, NAME, ("classification",))
        if "val" not in dataset.splits:
            raise ValueError(f"vision3d.{NAME} chooses C on the val split; dataset "
                             f"{dataset.name!r} has {list(dataset.splits)}")
        parts = {s: extract_embeddings(encoder, dataset, s, ctx) for s in ("train", "val", "test")}
        z = {s: p[0] for s, p in parts.items()}
        y = {s: class_labels(p[1]) for s, p in parts.items()}
        per_seed = []
        for seed in require_seeds(ctx, NAME):
            out: dict[str, float] = {}
            for fraction in config.label_fractions:
                keep = stratified_subset(y["train"], fraction, seed)
                metrics = fit_svm((z["train"][keep], z["val"], z["test"]),
                                  (y["train"][keep], y["val"], y["test"]), config, seed)
                out.update({f"{NAME}.{k}{_suffix(fraction)}": v for k, v in metrics.items()})
            per_seed.append(out)
        return summarise_seeds(per_seed)

    return evaluate
