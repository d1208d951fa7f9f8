"""Segmentation with few labels: Dice after fine-tuning, against the same U-Net from scratch.

The label-efficiency protocol of self-supervised medical image pretraining
(e.g. Chen et al., "Self-supervised learning for medical image analysis using
image context restoration", MedIA 58:101539, 2019; Taleb et al., "3D
Self-Supervised Methods for Medical Imaging", NeurIPS 2020): a pretrained U-Net
and the same U-Net randomly initialised are trained on the same few labelled
images or volumes, and both are scored by the Dice overlap of their
segmentations of the test split.

For each ``n`` of ``n_labelled`` and each seed of ``ctx.seeds``:

1. ``n`` items of the ``"train"`` split are drawn without replacement
   (``numpy.random.default_rng(seed)``); both models see exactly these;
2. (a) a dense copy of the evaluated model, ``model.as_dense(n_classes)`` (a
   :class:`~selfsup_medical.models.MedUNet`, ``medical.unet`` or
   ``medical.unet_encoder``: the whole U-Net keeps its weights, the final 1x1
   convolution is new when the number of outputs differs), and (b) a fresh model of
   the same architecture, ``ctx.encoder_factory().as_dense(n_classes)``, are each
   trained end to end with Adam (``lr``), the loss
   ``monai.losses.DiceCELoss(to_onehot_y=True, softmax=True)`` (soft Dice plus
   cross-entropy, Isensee et al.'s nnU-Net loss), ``batch_size`` items per step,
   for ``epochs`` passes over the ``n`` items, i.e. ``epochs * ceil(n / batch_size)``
   optimiser steps (50 epochs of one volume are 50 steps: cheap on a CPU, and the
   same budget for both models);
   the last weights are kept (no validation labels are spent on model selection);
3. each model segments the ``"test"`` split (argmax of its logits) and is scored
   by the mean foreground Dice (``monai.metrics.DiceMetric(include_background=False)``,
   the mean over test items and foreground classes; a class absent from an
   item's reference is left out of that item's mean, MONAI's ``ignore_empty``).

Views are not used while fine-tuning: they belong to pretraining, and the label
map would need the same spatial transform as its image. Randomness (new head,
dropout, shuffling, the fresh model's initialisation) is seeded by the seed
inside a forked RNG, so the caller's global stream is untouched.

Shapes: images ``[B, C, *spatial]`` (2D or 3D), label maps ``[B, *spatial]`` or
``[B, 1, *spatial]`` of integers ``0 .. n_classes - 1``, logits
``[B, n_classes, *spatial]``.

Both models are trained and scored through their ``dense`` face.

Keys: ``dice_finetune.dice@{n}`` (pretrained) and ``dice_finetune.scratch_dice@{n}``
(from scratch), each with ``_std`` over seeds (``selfsup.api.summarise_seeds``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    option,
    parse_options,
    positive,
    positive_int,
    require_seeds,
    require_task,
    summarise_seeds,
)

from ..models import MedUNet

NAME = "dice_finetune"


def _counts(x: Any) -> str | None:
    items = (x,) if isinstance(x, int) else x
    ok = (
        isinstance(items, (list, tuple))
        and len(items) > 0
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in items)
        and len(set(items)) == len(items)
    )
    return None if ok else "be distinct integers >= 1, e.g. [1, 2, 5]"


@dataclass(frozen=True)
class DiceFinetuneConfig:
    """Options of :func:`build`."""

    n_labelled: tuple[int, ...] = option((1, 2, 5), _counts,
                                         "numbers of labelled training items to fine-tune on")
    epochs: int = option(50, positive_int, "passes over those items")
    lr: float = option(1e-3, positive, "Adam's learning rate")
    batch_size: int = option(2, positive_int, "items per optimiser step")
    eval_batch_size: int = option(8, positive_int,
                                  "items per forward pass when scoring the test split (small, "
                                  "so 3D volumes fit)")

    def __post_init__(self) -> None:
        if isinstance(self.n_labelled, int) and not isinstance(self.n_labelled, bool):
            object.__setattr__(self, "n_labelled", (self.n_labelled,))  # one count


def build(**options: Any) -> Evaluator:
    """The Dice fine-tuning evaluator; options are the fields of :class:`DiceFinetuneConfig`."""
    config = parse_options(DiceFinetuneConfig, options, NAME)

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return dice_finetune(model, dataset, ctx, config)

    return evaluate


def dice_finetune(
    model: nn.Module, dataset: SSLDataset, ctx: EvalContext, config: DiceFinetuneConfig
) -> dict[str, float]:
    """Fine-tune ``model`` and a fresh copy of its architecture; see the module docstring."""
    require_task(dataset, NAME, ("segmentation",))
    seeds = require_seeds(ctx, NAME)
    n_classes = int(dataset.task.n_classes or 0)
    _require_unet(model, "the evaluated model")  # fail before any training
    if ctx.encoder_factory is None:
        raise ValueError(
            f"{NAME}: EvalContext.encoder_factory is None; the from-scratch "
            "comparison needs it (the runner sets it to the experiment's encoder)"
        )
    for split in ("train", "test"):
        if split not in dataset.splits or dataset.labelled_split(split) is None:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r} has no labelled split "
                f"{split!r}; its labelled splits are {list(dataset.splits)}"
            )
    n_train = dataset.n_labelled("train")
    too_many = [n for n in config.n_labelled if n > n_train]
    if too_many:
        raise ValueError(
            f"{NAME}: n_labelled {too_many} exceed the {n_train} labelled training "
            f"items of dataset {dataset.name!r}; pass smaller n_labelled"
        )
    device = torch.device(ctx.device)
    per_seed: list[dict[str, float]] = []
    for seed in seeds:
        results: dict[str, float] = {}
        for n in config.n_labelled:
            subset = np.random.default_rng(seed).choice(n_train, size=n, replace=False)
            indices = sorted(int(i) for i in subset)
            with torch.random.fork_rng(devices=_cuda_devices(device)):
                torch.manual_seed(seed)
                pretrained = _dense_unet(model, n_classes, "the evaluated model")
                torch.manual_seed(seed)
                scratch = _dense_unet(ctx.encoder_factory(), n_classes, "ctx.encoder_factory()")
                scores = {}
                for key, net in (("dice", pretrained), ("scratch_dice", scratch)):
                    torch.manual_seed(seed)
                    _train(net.to(device), dataset, indices, config, n_classes, seed, device)
                    scores[key] = mean_dice(
                        net, dataset, "test", n_classes, config.eval_batch_size, device
                    )
            results.update({f"{NAME}.{key}@{n}": value for key, value in scores.items()})
        per_seed.append(results)
    return summarise_seeds(per_seed)


def _require_unet(model: Any, what: str) -> MedUNet:
    if not isinstance(model, MedUNet):
        raise TypeError(
            f"{NAME}: {what} is a {type(model).__name__}; Dice fine-tuning needs a "
            "selfsup_medical.models.MedUNet (encoder medical.unet or medical.unet_encoder), "
            "whose as_dense(n_classes) gives the segmentation network"
        )
    return model


def _dense_unet(model: Any, n_classes: int, what: str) -> MedUNet:
    """A dense copy of a MedUNet with ``n_classes`` outputs (``model`` is not modified)."""
    return _require_unet(model, what).as_dense(n_classes)


def _cuda_devices(device: torch.device) -> list[int]:
    return [device.index or 0] if device.type == "cuda" else []


def _label_maps(y: torch.Tensor, images: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Label maps as ``[B, 1, *spatial]`` long, checked against the class count."""
    spatial = tuple(images.shape[2:])
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.numel() != images.shape[0] * math.prod(spatial):
        raise ValueError(
            f"{NAME}: label maps of shape {tuple(y.shape)} and dtype {y.dtype} do "
            f"not match images of shape {tuple(images.shape)}; expected integer "
            f"maps [B, *spatial] or [B, 1, *spatial]"
        )
    y = y.reshape(images.shape[0], 1, *spatial).long()
    lo, hi = int(y.min()), int(y.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(
            f"{NAME}: label values range over [{lo}, {hi}] but the dataset declares "
            f"{n_classes} classes; labels must be 0 .. {n_classes - 1}"
        )
    return y


def _train(
    net: MedUNet,
    dataset: SSLDataset,
    indices: Sequence[int],
    config: DiceFinetuneConfig,
    n_classes: int,
    seed: int,
    device: torch.device,
) -> None:
    """``config.epochs`` passes of Adam on DiceCE over the items ``indices`` of "train"."""
    from monai.losses import DiceCELoss

    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    optimiser = torch.optim.Adam(net.parameters(), lr=config.lr)
    shuffle = torch.Generator().manual_seed(seed)  # labelled_batches permutes on the CPU
    net.train()
    for _ in range(config.epochs):
        for x, y, _ in dataset.labelled_batches(
            "train", config.batch_size, indices=indices, shuffle=True, generator=shuffle
        ):
            x = torch.as_tensor(x).float()
            target = _label_maps(y, x, n_classes).to(device)
            loss = loss_fn(net.dense(x.to(device)), target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    net.eval()


def mean_dice(
    net: MedUNet,
    dataset: SSLDataset,
    split: str,
    n_classes: int,
    batch_size: int,
    device: torch.device,
) -> float:
    """Mean foreground Dice of ``argmax(net(x))`` over the items of ``split``."""
    from monai.metrics import DiceMetric
    from monai.networks.utils import one_hot

    metric = DiceMetric(include_background=False, reduction="mean")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for x, y, _ in dataset.labelled_batches(split, batch_size):
                x = torch.as_tensor(x).float()
                target = _label_maps(y, x, n_classes)
                pred = net.dense(x.to(device)).argmax(1, keepdim=True).cpu()
                metric(y_pred=one_hot(pred, n_classes), y=one_hot(target, n_classes))
        aggregate = metric.aggregate()  # a tensor (a tuple only with get_not_nans=True)
        value = float(torch.as_tensor(aggregate).item())
    finally:
        net.train(was_training)
    return value
