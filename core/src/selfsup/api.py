"""The public API of selfsup: every name a plugin may use, and nothing else.

Plugins (and their tests) import from here only; every other module of core may
change without notice, and a test fails when a plugin imports anything else.
Importing this module is light (no torch): the names that need torch are
imported on first use, so a plugin's ``plugin.py`` can import its specs from here.

Contracts (:mod:`selfsup.components`)
    ``DatasetSpec``, ``EncoderSpec``, ``PretextSpec``, ``EvaluatorSpec``,
    ``BaselineSpec``, ``BenchmarkSpec`` (``Expect``: a sanity benchmark's condition);
    ``SSLDataset``, ``TaskSpec``, ``PretextTask``, ``EvalContext``, ``Evaluator``,
    ``BaselineContext``, ``Tokens``; the core
    modalities (``VECTOR``, ``IMAGE2D``, ``VOLUME3D``, ``KSPACE``, ``GRAPH_NODE``,
    ``GRAPH_GRAPH``, ``SMILES``, ``ANY_MODALITY``) and faces (``EMBEDDING``,
    ``TOKENS``, ``DENSE``, ``STAGES``, ``MASKED_TOKENS``, ``FACES``); ``hookimpl``.
Options (:mod:`selfsup.options`)
    ``option``, ``parse_options``, ``check_value``, ``describe_options`` and the checks.
Errors (:mod:`selfsup.errors`)
    ``SelfsupError``, ``ConfigError``, ``IncompatibleError``, ``NotApplicable``.
Building blocks (import torch on first use)
    heads and views for objectives (``mlp_head``, ``encoder_dim``, ``two_views``,
    ``check_embeddings``, ``NTXentLoss``, ``gather_with_grad``), batches (``move_to``),
    multi-task weighting (``mgda_combine``, ``MGDA_NORMALIZATIONS``), evaluation helpers
    (``extract_embeddings``, ``class_labels``, ``stratified_subset``, ``summarise_seeds``,
    ``require_seeds``, ``require_task``, ``binary_roc_auc``, ``train_supervised``),
    core's generic baselines as modules (``InputFeatures``, ``Constant``).
Running (import torch on first use)
    ``Registry``, ``get_registry``, ``TrainConfig``, ``Trainer``, ``Experiment``,
    ``Component``, ``run_experiment``, ``load_exported`` (an exported run's
    experiment and rebuilt encoder), ``run_bench``, ``cli_main``.
Testing (import torch on first use)
    the conformance kit: ``check_plugin``, ``check_dataset``, ``check_encoder``,
    ``check_pretext``, ``ConformanceError``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from selfsup.components import (
    ANY_MODALITY,
    COMMON_MODALITIES,
    DENSE,
    EMBEDDING,
    FACES,
    GRAPH_GRAPH,
    GRAPH_NODE,
    IMAGE2D,
    KSPACE,
    MASKED_TOKENS,
    SMILES,
    STAGES,
    TASK_KINDS,
    TOKENS,
    VECTOR,
    VOLUME3D,
    BaselineContext,
    BaselineSpec,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvalContext,
    Evaluator,
    EvaluatorSpec,
    Expect,
    PretextSpec,
    PretextTask,
    SSLDataset,
    TaskSpec,
    Tokens,
)
from selfsup.errors import ConfigError, IncompatibleError, NotApplicable, SelfsupError
from selfsup.hookspecs import hookimpl
from selfsup.options import (
    Check,
    boolean,
    check_value,
    describe_options,
    fraction,
    label_fractions,
    non_negative,
    non_negative_int,
    one_of,
    open_unit,
    option,
    optional,
    parse_options,
    positive,
    positive_grid,
    positive_int,
    positive_ints,
    split_name,
    unit_interval,
)

#: name -> "module:attribute" of the names imported on first use (they import torch)
_LAZY: dict[str, str] = {
    "mlp_head": "selfsup.objectives.projection:mlp_head",
    "encoder_dim": "selfsup.objectives.projection:encoder_dim",
    "two_views": "selfsup.objectives.projection:two_views",
    "check_embeddings": "selfsup.objectives.projection:check_embeddings",
    "Norm": "selfsup.objectives.projection:Norm",
    "NORMS": "selfsup.objectives.projection:NORMS",
    "NTXentLoss": "selfsup.objectives.simclr:NTXentLoss",
    "gather_with_grad": "selfsup.distributed:gather_with_grad",
    "move_to": "selfsup.batching:move_to",
    "mgda_combine": "selfsup.mgda:mgda_combine",
    "MGDA_NORMALIZATIONS": "selfsup.mgda:NORMALIZATIONS",
    "extract_embeddings": "selfsup.evaluators.embeddings:extract_embeddings",
    "class_labels": "selfsup.evaluators.embeddings:class_labels",
    "stratified_subset": "selfsup.evaluators.embeddings:stratified_subset",
    "summarise_seeds": "selfsup.evaluators.embeddings:summarise_seeds",
    "require_seeds": "selfsup.evaluators.embeddings:require_seeds",
    "require_task": "selfsup.evaluators.embeddings:require_task",
    "binary_roc_auc": "selfsup.evaluators.linear_probe:binary_roc_auc",
    "train_supervised": "selfsup.evaluators.finetune:train_supervised",
    "InputFeatures": "selfsup.baselines:InputFeatures",
    "Constant": "selfsup.baselines:Constant",
    "Registry": "selfsup.plugins:Registry",
    "get_registry": "selfsup.plugins:get_registry",
    "TrainConfig": "selfsup.trainer:TrainConfig",
    "Trainer": "selfsup.trainer:Trainer",
    "Experiment": "selfsup.config:Experiment",
    "Component": "selfsup.config:Component",
    "run_experiment": "selfsup.runner:run_experiment",
    "load_exported": "selfsup.runner:load_exported",
    "run_bench": "selfsup.bench:run_bench",
    "cli_main": "selfsup.cli:main",
    "check_plugin": "selfsup.testing:check_plugin",
    "check_dataset": "selfsup.testing:check_dataset",
    "check_encoder": "selfsup.testing:check_encoder",
    "check_pretext": "selfsup.testing:check_pretext",
    "check_benchmark": "selfsup.testing:check_benchmark",
    "ConformanceError": "selfsup.testing:ConformanceError",
}

if TYPE_CHECKING:
    pass


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"selfsup.api has no name {name!r}; the public names are listed "
                             "in selfsup.api.__all__")
    module, _, attr = target.partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value  # later lookups skip this function
    return value


__all__ = [
    "ANY_MODALITY", "COMMON_MODALITIES", "DENSE", "EMBEDDING", "FACES", "GRAPH_GRAPH",
    "GRAPH_NODE", "IMAGE2D", "KSPACE", "MASKED_TOKENS", "SMILES", "STAGES", "TASK_KINDS",
    "TOKENS", "VECTOR", "VOLUME3D",
    "BaselineContext", "BaselineSpec", "BenchmarkSpec", "Check", "ConfigError", "DatasetSpec",
    "EncoderSpec", "EvalContext", "Evaluator", "EvaluatorSpec", "Expect", "IncompatibleError",
    "NotApplicable", "PretextSpec", "PretextTask", "SSLDataset", "SelfsupError", "TaskSpec",
    "Tokens", "boolean", "check_value", "describe_options", "fraction", "hookimpl",
    "label_fractions", "non_negative", "non_negative_int", "one_of", "open_unit", "option",
    "optional", "parse_options", "positive", "positive_grid", "positive_int", "positive_ints",
    "split_name", "unit_interval", *_LAZY,
]  # fmt: skip
