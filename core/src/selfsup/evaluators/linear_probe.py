"""Linear probe on frozen embeddings.

The standard linear evaluation of self-supervised representations (Zhang, Isola
& Efros, "Colorful Image Colorization", ECCV 2016; Kolesnikov, Zhai & Beyer,
"Revisiting Self-Supervised Visual Representation Learning", CVPR 2019), in the
form SimCLR uses for its transfer benchmarks (Chen et al., "A Simple Framework
for Contrastive Learning of Visual Representations", ICML 2020, appendix B.8):
L2-regularised multinomial logistic regression (L-BFGS) on standardised
embeddings, the regularisation strength chosen on a validation split from a
logarithmic grid, test metrics reported for the chosen model. SimCLR searches 45
values between 1e-6 and 1e5; the default grid here is coarser so a CPU
benchmark finishes in minutes. Regression targets get ridge regression, with its
penalty chosen the same way.

``label_fractions`` trains the probe on seeded, class-balanced subsets of the
training labels (see :func:`selfsup.evaluators.embeddings.stratified_subset`);
the validation split stays whole, as in SimCLR's semi-supervised protocol.

Metric keys: ``linear_probe.accuracy`` and ``linear_probe.f1_macro``
(classification), ``linear_probe.roc_auc`` (binary classification only: the
area under the ROC curve of the chosen model's predicted probability of class 1,
NaN when the test split holds one class), ``linear_probe.rmse``, ``linear_probe.mae`` and
``linear_probe.r2`` (regression), ``linear_probe.map`` (macro mean average
precision over the labels with a positive test example) and ``linear_probe.f1_macro``
at threshold 0.5 (multilabel: one logistic regression per label, C chosen by
validation mAP, as audio tagging reports), each with ``"@10%"`` appended for a label
fraction below 1, ``"_std"`` appended to that for the spread over seeds, and
``linear_probe.n_train<suffix>`` (training examples used; the same for every seed).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.preprocessing import StandardScaler
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    Embedded,
    class_labels,
    embed_splits,
    fraction_suffix,
    require_seeds,
    require_task,
    stratified_subset,
    summarise_seeds,
    train_and_val,
)
from selfsup.options import (
    label_fractions,
    open_unit,
    option,
    parse_options,
    positive_grid,
    positive_int,
)

NAME = "linear_probe"


@dataclass(frozen=True)
class LinearProbeConfig:
    """Options of :func:`build`."""

    label_fractions: tuple[float, ...] = option(
        (1.0,), label_fractions, "fractions of the training labels to fit the probe on")
    c_grid: tuple[float, ...] = option(
        (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0), positive_grid,
        "inverse L2 strengths C tried for logistic regression (classification, multilabel)")
    alpha_grid: tuple[float, ...] = option(
        (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3, 1e4), positive_grid,
        "ridge penalties tried (regression)")
    max_iter: int = option(1000, positive_int, "L-BFGS iterations per logistic fit")
    val_fraction: float = option(
        0.2, open_unit, "share of train held out to choose C/alpha when there is no val split")


def build(**options: Any) -> Evaluator:
    """The linear-probe evaluator; options are the fields of :class:`LinearProbeConfig`."""
    config = parse_options(LinearProbeConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return linear_probe(encoder, dataset, ctx, config)

    return evaluate


def linear_probe(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: LinearProbeConfig
) -> dict[str, float]:
    kind = require_task(dataset, NAME, ("classification", "multilabel", "regression"))
    seeds = require_seeds(ctx, NAME)
    embedded = embed_splits(encoder, dataset, ctx, ("train", "val", "test"))
    classify = kind == "classification"
    binary = classify and dataset.task.n_classes == 2
    per_seed: list[dict[str, float]] = []
    # Subset sizes follow from class counts alone, so they are the same for every
    # seed: reported once, without a spread.
    n_train: dict[str, float] = {}
    for seed in seeds:
        train, val = train_and_val(
            embedded, seed, stratify=classify, val_fraction=config.val_fraction
        )
        results: dict[str, float] = {}
        for fraction in config.label_fractions:
            subset = train.take(stratified_subset(train.y, fraction, seed, stratify=classify))
            suffix = fraction_suffix(fraction)
            if classify:
                metrics = _fit_classifier(subset, val, embedded["test"], config, binary=binary)
            elif kind == "multilabel":
                metrics = _fit_multilabel(subset, val, embedded["test"], config)
            else:
                metrics = _fit_regressor(subset, val, embedded["test"], config)
            results.update({f"{NAME}.{key}{suffix}": value for key, value in metrics.items()})
            n_train[f"{NAME}.n_train{suffix}"] = float(len(subset))
        per_seed.append(results)
    return {**summarise_seeds(per_seed), **n_train}


def _standardised(train: Embedded, *others: Embedded) -> list[np.ndarray]:
    # Fit on the probe's own training subset only: the val/test statistics are unseen data.
    scaler = StandardScaler().fit(train.z)
    return [scaler.transform(part.z) for part in (train, *others)]


def _fit_classifier(
    train: Embedded, val: Embedded, test: Embedded, config: LinearProbeConfig,
    *, binary: bool = False,
) -> dict[str, float]:
    z_train, z_val, z_test = _standardised(train, val, test)
    y_train, y_val, y_test = (class_labels(part.y) for part in (train, val, test))
    if len(np.unique(y_train)) < 2:
        raise ValueError(
            f"{NAME}: the training labels hold a single class; a probe needs two or more"
        )
    best: LogisticRegression | None = None
    best_score = -np.inf
    for c in config.c_grid:
        model = LogisticRegression(C=c, max_iter=config.max_iter)  # L-BFGS: deterministic
        # The strongest and weakest penalties of the grid often stop at max_iter;
        # the validation score judges them anyway, so the warning is only noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z_train, y_train)
        score = accuracy_score(y_val, model.predict(z_val))
        if score > best_score:  # strict: a tie keeps the earlier grid value
            best, best_score = model, score
    assert best is not None  # the grid is non-empty (checked by the config)
    pred = best.predict(z_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, pred)),
        "f1_macro": float(f1_score(y_test, pred, average="macro", zero_division=0)),
    }
    if binary:  # the ranking quality that molecular benchmarks report
        metrics["roc_auc"] = binary_roc_auc(y_test, best.predict_proba(z_test)[:, 1],
                                            positive=best.classes_[-1])
    return metrics


def _fit_multilabel(
    train: Embedded, val: Embedded, test: Embedded, config: LinearProbeConfig
) -> dict[str, float]:
    from sklearn.multiclass import OneVsRestClassifier

    z_train, z_val, z_test = _standardised(train, val, test)
    y_train, y_val, y_test = (np.asarray(part.y).astype(int) for part in (train, val, test))
    if y_train.ndim != 2:
        raise ValueError(f"{NAME}: multilabel targets must be [N, labels] 0/1 arrays, got shape "
                         f"{y_train.shape}")
    best, best_score = None, -np.inf
    for c in config.c_grid:
        model = OneVsRestClassifier(LogisticRegression(C=c, max_iter=config.max_iter))
        with warnings.catch_warnings():
            # a label absent from a small training subset is predicted as constant
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z_train, y_train)
        score = _mean_average_precision(y_val, model.predict_proba(z_val))
        if score > best_score:  # strict: a tie keeps the earlier grid value
            best, best_score = model, score
    assert best is not None
    proba = best.predict_proba(z_test)
    return {
        "map": _mean_average_precision(y_test, proba),
        "f1_macro": float(f1_score(y_test, (proba >= 0.5).astype(int), average="macro",
                                   zero_division=0)),
    }


def _mean_average_precision(y: np.ndarray, proba: np.ndarray) -> float:
    """Macro average precision over the labels with at least one positive in ``y``."""
    from sklearn.metrics import average_precision_score

    present = y.sum(axis=0) > 0
    if not present.any():
        return float("nan")
    return float(average_precision_score(y[:, present], proba[:, present], average="macro"))


def binary_roc_auc(y: np.ndarray, score: np.ndarray, positive: Any = 1) -> float:
    """ROC-AUC of ``score`` for the class ``positive``; NaN when ``y`` holds one class."""
    truth = np.asarray(y) == positive
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, score))


def _fit_regressor(
    train: Embedded, val: Embedded, test: Embedded, config: LinearProbeConfig
) -> dict[str, float]:
    z_train, z_val, z_test = _standardised(train, val, test)
    y_train, y_val, y_test = (np.asarray(part.y, dtype=np.float64) for part in (train, val, test))
    best: Ridge | None = None
    best_error = np.inf
    for alpha in config.alpha_grid:
        model = Ridge(alpha=alpha).fit(z_train, y_train)
        error = mean_squared_error(y_val, model.predict(z_val))
        if error < best_error:
            best, best_error = model, error
    assert best is not None
    pred = best.predict(z_test)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_test, pred))),
        "mae": float(mean_absolute_error(y_test, pred)),
        "r2": float(r2_score(y_test, pred)),
    }
