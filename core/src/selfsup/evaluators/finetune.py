"""Fine-tuning with a fraction of the labels.

The semi-supervised evaluation of SimCLR (Chen et al., "A Simple Framework for
Contrastive Learning of Visual Representations", ICML 2020, section 6 and
appendix B.5) and SimCLRv2 (Chen et al., "Big Self-Supervised Models are Strong
Semi-Supervised Learners", NeurIPS 2020): the pretrained encoder and a new
linear head are trained end to end on 1%, 10% and 100% of the training labels,
drawn class-balanced as in Zhai et al., "S4L", ICCV 2019, and scored on the test
split. Here the optimiser is AdamW (Loshchilov & Hutter, "Decoupled Weight
Decay Regularization", ICLR 2019) at a fixed learning rate, the loss is cross
entropy (classification) or mean squared error on standardised targets
(regression), and the model kept is the one with the best validation score over
the training rounds (model selection by early stopping).

Label-fraction rule: for classification every class keeps
``max(1, round(fraction * n_class))`` training examples, so a 1% subset still
holds at least one example of every class and may be somewhat larger than 1%
(``finetune.n_train@1%`` reports its size); for regression ``max(1, round(fraction
* N))`` examples are drawn. The subsets are seeded by each seed of ``ctx.seeds``.

Training length: ``epochs`` rounds, each at least one pass over the labelled
subset and at least ``ceil(min_steps / epochs)`` optimiser steps, so that a tiny
fraction (10 examples, one batch) still gets enough updates to fit its head;
the validation score is computed after every round. The views of
``dataset.augment`` are not used: they belong to pretraining, and not every
modality registers them.

Metric keys: ``finetune.accuracy``, ``finetune.f1_macro`` and, for binary tasks,
``finetune.roc_auc`` (classification),
``finetune.rmse``, ``finetune.mae`` and ``finetune.r2`` (regression), with
``"@1%"``/``"@10%"`` appended for fractions below 1, ``"_std"`` appended to that
for the spread over seeds, and ``finetune.n_train<suffix>``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)
from torch import nn

from selfsup.batching import move_to
from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    carve_validation,
    class_labels,
    extract_embeddings,
    fraction_suffix,
    require_seeds,
    require_task,
    stratified_subset,
    summarise_seeds,
)
from selfsup.options import (
    check_value,
    label_fractions,
    non_negative,
    non_negative_int,
    open_unit,
    option,
    parse_options,
    positive,
    positive_int,
)

NAME = "finetune"


@dataclass(frozen=True)
class FinetuneConfig:
    """Options of :func:`build`. The defaults suit the minutes-long CPU benchmarks."""

    label_fractions: tuple[float, ...] = option(
        (0.01, 0.1, 1.0), label_fractions, "fractions of the training labels to fine-tune on")
    epochs: int = option(20, positive_int, "training rounds (a round is at least one pass)")
    lr: float = option(1e-3, positive, "AdamW learning rate of encoder and head")
    batch_size: int = option(64, positive_int, "labelled samples per optimiser step")
    weight_decay: float = option(1e-2, non_negative, "AdamW decoupled weight decay")
    min_steps: int = option(100, non_negative_int, "fewest optimiser steps in total")
    val_fraction: float = option(
        0.2, open_unit, "share of train held out for model selection when there is no val")


def _check_training(owner: str, epochs: Any, lr: Any, weight_decay: Any, batch_size: Any) -> None:
    check_value(owner, "epochs", epochs, positive_int)
    check_value(owner, "lr", lr, positive)
    check_value(owner, "batch_size", batch_size, positive_int)
    check_value(owner, "weight_decay", weight_decay, non_negative)


def build(**options: Any) -> Evaluator:
    """The fine-tuning evaluator; options are the fields of :class:`FinetuneConfig`."""
    config = parse_options(FinetuneConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return finetune(encoder, dataset, ctx, config)

    return evaluate


def finetune(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: FinetuneConfig
) -> dict[str, float]:
    kind = require_task(dataset, NAME, ("classification", "regression"))
    seeds = require_seeds(ctx, NAME)
    for split in ("train", "test"):
        if split not in dataset.splits:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r} has no labelled split {split!r}; "
                f"its labelled splits are {list(dataset.splits)}"
            )
    classify = kind == "classification"
    y_train = np.asarray(dataset.labels("train"))
    per_seed: list[dict[str, float]] = []
    n_train: dict[str, float] = {}  # follows from class counts: the same for every seed
    for seed in seeds:
        val_split: str
        val_indices: list[int] | None
        if "val" in dataset.splits:
            pool, val_split, val_indices = np.arange(len(y_train)), "val", None
        else:
            pool, val = carve_validation(y_train, seed, config.val_fraction, stratify=classify)
            val_split, val_indices = "train", val.tolist()
        results: dict[str, float] = {}
        for fraction in config.label_fractions:
            subset = pool[stratified_subset(y_train[pool], fraction, seed, stratify=classify)]
            model = _fit(
                encoder,
                dataset,
                ctx,
                owner=NAME,
                split="train",
                indices=subset.tolist(),
                val_split=val_split,
                val_indices=val_indices,
                epochs=config.epochs,
                lr=config.lr,
                weight_decay=config.weight_decay,
                batch_size=config.batch_size,
                seed=seed,
                min_steps=config.min_steps,
            )
            suffix = fraction_suffix(fraction)
            metrics = model.test_metrics(dataset, "test", None, ctx)
            results.update({f"{NAME}.{key}{suffix}": value for key, value in metrics.items()})
            n_train[f"{NAME}.n_train{suffix}"] = float(len(subset))
        per_seed.append(results)
    return {**summarise_seeds(per_seed), **n_train}


def train_supervised(
    encoder: nn.Module,
    dataset: SSLDataset,
    ctx: EvalContext,
    *,
    split: str = "train",
    indices: Sequence[int] | None = None,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    val_split: str | None = None,
    val_indices: Sequence[int] | None = None,
    min_steps: int = 0,
) -> nn.Module:
    """Train a copy of ``encoder`` with a linear head on the labels of ``split``.

    The supervised counterpart of pretraining, used by :func:`build` and by the
    benchmark runner as the "supervised encoder" baseline. ``encoder`` itself is
    not modified. With ``val_split`` (and optionally ``val_indices``), the weights
    of the round with the best validation score are kept; otherwise the last.
    Seeded by ``seed`` (head initialisation, shuffling, dropout) without touching
    the caller's global RNG. Returns the trained encoder copy, in eval mode, on
    ``ctx.device``; the head is discarded.
    """
    return _fit(
        encoder,
        dataset,
        ctx,
        owner="train_supervised",
        split=split,
        indices=indices,
        val_split=val_split,
        val_indices=val_indices,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        batch_size=batch_size,
        seed=seed,
        min_steps=min_steps,
    ).encoder


class _WithHead(nn.Module):
    """The encoder's embedding face followed by the head, as one embedding face."""

    def __init__(self, encoder: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head
        self.embed_dim = head.out_features

    def embed(self, batch: Any) -> torch.Tensor:
        encoder: Any = self.encoder
        return self.head(encoder.embed(batch))  # type: ignore[no-any-return]

    def forward(self, batch: Any) -> torch.Tensor:
        return self.embed(batch)


@dataclass
class _Supervised:
    """A fine-tuned encoder with its head, and the target scaling of regression."""

    encoder: nn.Module
    head: nn.Linear
    classify: bool
    target_mean: np.ndarray | None = None
    target_std: np.ndarray | None = None

    def predict(
        self, dataset: SSLDataset, split: str, indices: Sequence[int] | None, ctx: EvalContext
    ) -> tuple[np.ndarray, np.ndarray]:
        """Head outputs (logits, or standardised targets) and labels of a split."""
        # The head is row-wise, so selecting labelled rows after it (as
        # extract_embeddings does) equals selecting them before.
        network = _WithHead(self.encoder, self.head)
        network.train(self.encoder.training)  # so the mode extract_embeddings restores is ours
        return extract_embeddings(network, dataset, split, ctx, indices)

    def loss(
        self, batch: Any, y: torch.Tensor, rows: torch.Tensor | None, device: torch.device
    ) -> torch.Tensor:
        """Training loss of one batch from ``labelled_batches``."""
        encoder: Any = self.encoder
        z = encoder.embed(move_to(batch, device))
        if rows is not None:
            z = z[rows.to(z.device)]
        out = self.head(z)
        y = torch.as_tensor(y).to(device)
        if self.classify:
            return F.cross_entropy(out, y.reshape(-1).long())
        assert self.target_mean is not None and self.target_std is not None
        mean = torch.as_tensor(self.target_mean, device=device)
        std = torch.as_tensor(self.target_std, device=device)
        target = (y.reshape(len(y), -1).double() - mean) / std
        return F.mse_loss(out, target.to(out.dtype))

    def val_score(
        self, dataset: SSLDataset, split: str, indices: Sequence[int] | None, ctx: EvalContext
    ) -> float:
        """Higher is better: accuracy, or minus the MSE in standardised units."""
        out, y = self.predict(dataset, split, indices, ctx)
        if self.classify:
            return float(np.mean(out.argmax(axis=1) == class_labels(y)))
        return -float(np.mean((out - self._standardise(y)) ** 2))

    def test_metrics(
        self, dataset: SSLDataset, split: str, indices: Sequence[int] | None, ctx: EvalContext
    ) -> dict[str, float]:
        out, y = self.predict(dataset, split, indices, ctx)
        if self.classify:
            y, pred = class_labels(y), out.argmax(axis=1)
            metrics = {
                "accuracy": float(accuracy_score(y, pred)),
                "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
            }
            if out.shape[1] == 2:  # binary: rank by the positive class's logit margin
                from selfsup.evaluators.linear_probe import binary_roc_auc

                metrics["roc_auc"] = binary_roc_auc(y, out[:, 1] - out[:, 0], positive=1)
            return metrics
        assert self.target_mean is not None and self.target_std is not None
        targets = _as_targets(y)
        pred = out * self.target_std + self.target_mean  # back to the labels' units
        return {
            "rmse": float(np.sqrt(mean_squared_error(targets, pred))),
            "mae": float(mean_absolute_error(targets, pred)),
            "r2": float(r2_score(targets, pred)),
        }

    def _standardise(self, y: np.ndarray) -> np.ndarray:
        assert self.target_mean is not None and self.target_std is not None
        return (_as_targets(y) - self.target_mean) / self.target_std


def _as_targets(y: np.ndarray) -> np.ndarray:
    """Regression labels as a float64 matrix ``[N, n_targets]``."""
    y = np.asarray(y, dtype=np.float64)
    return y.reshape(len(y), -1)


def _fit(
    encoder: nn.Module,
    dataset: SSLDataset,
    ctx: EvalContext,
    *,
    owner: str,
    split: str,
    indices: Sequence[int] | None,
    val_split: str | None,
    val_indices: Sequence[int] | None,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    seed: int,
    min_steps: int,
) -> _Supervised:
    _check_training(owner, epochs, lr, weight_decay, batch_size)
    kind = require_task(dataset, owner, ("classification", "regression"))
    embed_dim = getattr(encoder, "embed_dim", None)
    if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim <= 0:
        raise ValueError(
            f"{owner}: encoder {type(encoder).__name__} has no positive integer attribute "
            f"embed_dim (got {embed_dim!r}); encoders must state their embedding size"
        )
    y_all = np.asarray(dataset.labels(split))
    y_fit = y_all if indices is None else y_all[np.asarray(indices, dtype=np.int64)]
    if len(y_fit) == 0:
        raise ValueError(f"{owner}: no labelled samples to train on in split {split!r}")
    device = torch.device(ctx.device)

    classify = kind == "classification"
    target_mean: np.ndarray | None = None
    target_std: np.ndarray | None = None
    if classify:
        n_classes = int(dataset.task.n_classes or 0)
        labels = class_labels(y_fit)
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(
                f"{owner}: dataset {dataset.name!r} declares {n_classes} classes but its "
                f"labels range over [{labels.min()}, {labels.max()}]; labels must be 0..n-1"
            )
        out_dim = n_classes
    else:
        targets = _as_targets(y_fit)
        target_mean = targets.mean(axis=0)
        # A constant target would divide by zero; scaling by 1 leaves it centred.
        target_std = np.where(targets.std(axis=0) > 0, targets.std(axis=0), 1.0)
        out_dim = targets.shape[1]
    n_items = len(y_fit)
    steps_per_round = math.ceil(min_steps / epochs)

    # Seeded inside a forked RNG: the head's initialisation and the encoder's dropout
    # are reproducible, and the caller's global stream is left where it was.
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = _Supervised(
            encoder=copy.deepcopy(encoder).to(device),
            head=nn.Linear(embed_dim, out_dim).to(device),
            classify=classify,
            target_mean=target_mean,
            target_std=target_std,
        )
        modules = (model.encoder, model.head)
        params = [p for m in modules for p in m.parameters() if p.requires_grad]
        optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        shuffle = torch.Generator().manual_seed(seed)  # CPU: labelled_batches permutes on CPU
        best_score, best_state = -math.inf, None
        for _ in range(epochs):
            model.encoder.train()
            model.head.train()
            steps = 0
            while True:  # one pass, then more until the round has its minimum of steps
                taken = 0
                for batch, y, rows in dataset.labelled_batches(
                    split, batch_size, indices=indices, shuffle=True, generator=shuffle
                ):
                    # A lone trailing sample would make batch norm fail in train mode
                    # ("Expected more than 1 value per channel"); skipped, it lands in
                    # a full batch of a later, reshuffled pass.
                    if len(y) == 1 and n_items > 1 and batch_size > 1:
                        continue
                    loss = model.loss(batch, y, rows, device)
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    taken += 1
                if taken == 0:
                    raise ValueError(
                        f"{owner}: split {split!r} gave no batch to train on "
                        f"({n_items} labelled samples, batch_size={batch_size})"
                    )
                steps += taken
                if steps >= steps_per_round:
                    break
            if val_split is not None:
                score = model.val_score(dataset, val_split, val_indices, ctx)
                if score > best_score:  # strict: a tie keeps the earlier, shorter-trained model
                    best_score = score
                    best_state = (
                        copy.deepcopy(model.encoder.state_dict()),
                        copy.deepcopy(model.head.state_dict()),
                    )
    if best_state is not None:
        model.encoder.load_state_dict(best_state[0])
        model.head.load_state_dict(best_state[1])
    model.encoder.eval()
    model.head.eval()
    return model
