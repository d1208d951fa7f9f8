"""Core's generic baselines: what every pretrained encoder should beat.

- ``core.input``: the dataset's own flat input features (``SSLDataset.input_features``);
- ``core.random_init``: the benchmark's encoder, untrained;
- ``core.supervised``: the encoder trained end to end with a linear head on the
  labelled ``train`` split (:func:`selfsup.evaluators.finetune.train_supervised`),
  then frozen; ``epochs`` is its budget (a benchmark may lower it in
  ``baseline_options``; ``selfsup bench --steps N`` caps it at the epochs that
  hold N steps);
- ``core.mean``: a constant, so every probe predicts the train-set mean
  (regression) or the majority class (classification).

Each factory is ``(dataset, context, **options) -> nn.Module`` offering the
``embedding`` face. One that does not apply raises :class:`NotApplicable`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.components import BaselineContext, SSLDataset
from selfsup.errors import NotApplicable
from selfsup.options import non_negative, option, parse_options, positive, positive_int


class Constant(nn.Module):
    """A one-dimensional constant 'encoder': the train-set mean / majority-class baseline."""

    embed_dim = 1

    def __init__(self, dataset: SSLDataset) -> None:
        super().__init__()
        self.dataset = dataset

    def embed(self, batch: Any) -> torch.Tensor:
        return torch.zeros(self.dataset.batch_rows(batch), 1)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


class InputFeatures(nn.Module):
    """The dataset's flat input features as an 'encoder': the input-features baseline."""

    def __init__(self, dataset: SSLDataset) -> None:
        super().__init__()
        self.dataset = dataset
        batch, _, _ = next(dataset.labelled_batches(dataset.splits[0], batch_size=2))
        self.embed_dim = int(self.embed(batch).shape[1])

    def embed(self, batch: Any) -> torch.Tensor:
        z = self.dataset.input_features(batch).float()
        return z.reshape(z.shape[0], -1)

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


def build_input(dataset: SSLDataset, context: BaselineContext) -> nn.Module:
    if type(dataset).input_features is SSLDataset.input_features:
        raise NotApplicable(f"dataset {dataset.name!r} has no flat input features")
    return InputFeatures(dataset)


def build_mean(dataset: SSLDataset, context: BaselineContext) -> nn.Module:
    return Constant(dataset)


def build_random_init(dataset: SSLDataset, context: BaselineContext) -> nn.Module:
    return context.encoder_factory()


@dataclass(frozen=True)
class SupervisedConfig:
    epochs: int = option(60, positive_int, "passes over the labelled train split")
    lr: float = option(1e-3, positive, "AdamW learning rate")
    weight_decay: float = option(1e-4, non_negative, "AdamW weight decay")
    batch_size: int = option(128, positive_int, "samples per step")


def build_supervised(dataset: SSLDataset, context: BaselineContext, **options: Any) -> nn.Module:
    config = parse_options(SupervisedConfig, options, "core.supervised")
    if dataset.task.kind not in ("classification", "regression"):
        raise NotApplicable(f"dataset task is {dataset.task.kind!r}; no supervised encoder")
    from selfsup.evaluators.finetune import train_supervised

    ctx = context.eval
    epochs = capped_epochs(config.epochs, len(dataset.labels("train")), config.batch_size,
                           context.steps)
    return train_supervised(context.encoder_factory(), dataset, ctx, epochs=epochs,
                            lr=config.lr, weight_decay=config.weight_decay,
                            batch_size=config.batch_size, seed=ctx.seeds[0])


def capped_epochs(epochs: int, n_train: int, batch_size: int, steps: int | None) -> int:
    """``epochs``, or fewer under ``selfsup bench --steps``: the epochs that hold ``steps``."""
    if steps is None:
        return epochs
    per_epoch = math.ceil(n_train / batch_size)
    return min(epochs, max(1, math.ceil(steps / per_epoch)))
