"""Random forest on frozen embeddings: the classic cheminformatics property model.

Breiman, "Random Forests", Machine Learning 45, 5-32 (2001). A random forest on
Morgan fingerprints or RDKit descriptors is the baseline that molecular
representation learning has to beat (Wu et al., "MoleculeNet: a benchmark for
molecular machine learning", Chem. Sci. 9, 513-530, 2018; Yang et al.,
"Analyzing Learned Molecular Representations for Property Prediction", J. Chem.
Inf. Model. 59, 3370-3388, 2019). This evaluator fits one on any encoder's
embeddings, so learned encoders and fixed features are compared by the same
nonlinear model, beside the linear probe.

Protocol: embeddings (the ``embedding`` face) of ``"train"`` and ``"test"`` from
:func:`selfsup.api.extract_embeddings`; a forest of
``n_estimators`` full-depth trees is fitted
on all training labels for each seed of ``ctx.seeds`` (the seed is the forest's
``random_state``) and scored on the test split. Each split considers a random
third of the features for regression and the square root of their number for
classification, Breiman's recommendations (and R ``randomForest``'s defaults);
scikit-learn's regression default, all features (bagging), is 2.7 times slower
on 2048-bit fingerprints. No hyperparameter is tuned, so the validation split is
not used.

Metric keys: ``random_forest.rmse``, ``.mae``, ``.r2`` (regression);
``random_forest.accuracy``, ``.f1_macro`` and, for binary tasks, ``.roc_auc``
(classification); each with ``_std`` over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    binary_roc_auc,
    class_labels,
    extract_embeddings,
    option,
    parse_options,
    positive_int,
    require_seeds,
    require_task,
    summarise_seeds,
)

NAME = "random_forest"


def _max_features(mf: Any) -> str | None:
    ok = (
        mf is None
        or mf in ("sqrt", "log2")
        or (isinstance(mf, int) and not isinstance(mf, bool) and mf >= 1)
        or (isinstance(mf, float) and 0 < mf <= 1)
    )
    return None if ok else "be a fraction in (0, 1], a positive int, 'sqrt', 'log2' or None"


def _n_jobs(n: Any) -> str | None:
    # scikit-learn's convention: -1 every core, -2 all but one, ...; 0 is meaningless
    ok = isinstance(n, int) and not isinstance(n, bool) and n != 0
    return None if ok else "be a positive int or -1 (all cores)"


@dataclass(frozen=True)
class RandomForestConfig:
    """Options of :func:`build` (``molecular.random_forest``).

    ``max_features`` None means a third of the features (regression) or ``"sqrt"``
    (classification); ``n_jobs`` 1 because the benchmark machines are small and shared.
    """

    n_estimators: int = option(200, positive_int, "trees per forest")
    max_features: float | int | str | None = option(
        None, _max_features, "features tried per split: fraction, int, 'sqrt', 'log2' or None")
    min_samples_leaf: int = option(1, positive_int, "samples per leaf (scikit-learn's 1)")
    n_jobs: int = option(1, _n_jobs, "worker processes for fitting and prediction (-1: all)")


def build(**options: Any) -> Evaluator:
    """The random-forest evaluator; options are the fields of :class:`RandomForestConfig`."""
    config = parse_options(RandomForestConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return random_forest(encoder, dataset, ctx, config)

    return evaluate


def random_forest(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: RandomForestConfig
) -> dict[str, float]:
    kind = require_task(dataset, NAME, ("classification", "regression"))
    seeds = require_seeds(ctx, NAME)
    z_train, y_train = extract_embeddings(encoder, dataset, "train", ctx)
    z_test, y_test = extract_embeddings(encoder, dataset, "test", ctx)
    classify = kind == "classification"
    binary = classify and dataset.task.n_classes == 2
    per_seed = []
    for seed in seeds:
        if classify:
            metrics = _classify(z_train, class_labels(y_train), z_test, class_labels(y_test),
                                config, seed, binary)
        else:
            metrics = _regress(z_train, _targets(y_train), z_test, _targets(y_test), config, seed)
        per_seed.append({f"{NAME}.{key}": value for key, value in metrics.items()})
    return summarise_seeds(per_seed)


def _targets(y: np.ndarray) -> np.ndarray:
    """Regression targets: 1-D for one target (scikit-learn's preferred shape)."""
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y)) if y.size == len(y) else y.reshape(len(y), -1)


def _regress(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
    config: RandomForestConfig, seed: int,
) -> dict[str, float]:
    model = RandomForestRegressor(
        n_estimators=config.n_estimators, min_samples_leaf=config.min_samples_leaf,
        max_features=1 / 3 if config.max_features is None else config.max_features,
        n_jobs=config.n_jobs, random_state=seed,
    ).fit(z_train, y_train)
    pred = model.predict(z_test)
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_test, pred))),
        "mae": float(mean_absolute_error(y_test, pred)),
        "r2": float(r2_score(y_test, pred)),
    }


def _classify(
    z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray,
    config: RandomForestConfig, seed: int, binary: bool,
) -> dict[str, float]:
    if len(np.unique(y_train)) < 2:
        raise ValueError(f"{NAME}: the training labels hold a single class; a forest needs two")
    model = RandomForestClassifier(
        n_estimators=config.n_estimators, min_samples_leaf=config.min_samples_leaf,
        max_features="sqrt" if config.max_features is None else config.max_features,
        n_jobs=config.n_jobs, random_state=seed,
    ).fit(z_train, y_train)
    pred = model.predict(z_test)
    metrics = {
        "accuracy": float(accuracy_score(y_test, pred)),
        "f1_macro": float(f1_score(y_test, pred, average="macro", zero_division=0)),
    }
    if binary:
        proba = model.predict_proba(z_test)[:, -1]
        metrics["roc_auc"] = binary_roc_auc(y_test, proba, positive=model.classes_[-1])
    return metrics
