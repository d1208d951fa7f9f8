"""Restoration quality: PSNR, SSIM and NRMSE of a model's output against the clean reference.

For every labelled item ``(input, target)`` of a split (``"test"`` by default),
the model's ``dense`` output on the input is turned into an image by
:func:`prediction_image` (the output itself for images, the magnitude of the
complex output for k-space, :mod:`selfsup_medical.kspace`) and compared with the
target, one image (2D) or one volume (3D) at a time; each metric is the mean over
items. Shapes: prediction and target ``[B, C, *spatial]``, with ``C`` usually 1.

- PSNR ``= 10 log10(R^2 / MSE)`` in dB. The data range ``R`` is 1 by default:
  every dataset of this plugin scales intensities to about ``[0, 1]``
  (:mod:`selfsup_medical.images`), so that a fixed range makes PSNR comparable
  across images and methods (a per-image range would reward a method differently
  on dark and bright images). ``data_range=None`` uses each target's
  ``max - min`` instead (fastMRI's convention uses the volume maximum).
  A perfect prediction (MSE 0) is scored at :data:`PSNR_CAP` dB rather than
  infinity, so tables stay finite.
- SSIM: :func:`skimage.metrics.structural_similarity` (Wang, Bovik, Sheikh and
  Simoncelli, IEEE TIP 13:600, 2004) with scikit-image's defaults (7-wide uniform
  window, sample covariance) and the same data range, computed in 2D per image
  and in 3D per volume; channels, when there are several, are averaged
  (``channel_axis``). Items narrower than 7 pixels use the largest odd window
  that fits (at least 3).
- NRMSE ``= ||pred - target||_2 / ||target||_2`` per item (scikit-image's
  ``normalized_root_mse`` with ``normalization="euclidean"``).

The model runs in eval mode without gradients on ``ctx.device``, and is put back
in the mode it came in. The metrics are deterministic, so there is no ``_std``
over seeds. Keys: ``restoration.psnr``, ``restoration.ssim``, ``restoration.nrmse``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    KSPACE,
    EvalContext,
    Evaluator,
    SSLDataset,
    move_to,
    option,
    optional,
    parse_options,
    positive,
    positive_int,
    require_task,
    split_name,
)

from ..kspace import magnitude

NAME = "restoration"
#: PSNR reported for an exact prediction (MSE 0), in dB
PSNR_CAP = 100.0


@dataclass(frozen=True)
class RestorationConfig:
    """Options of :func:`build`."""

    split: str = option("test", split_name, "the labelled split scored")
    data_range: float | None = option(1.0, optional(positive),
                                      "PSNR/SSIM data range (1.0 for intensities scaled to "
                                      "[0, 1]; None: each target's max - min)")
    batch_size: int | None = option(None, optional(positive_int),
                                    "items per forward pass (None: the runner's batch size)")


def prediction_image(dataset: SSLDataset, output: torch.Tensor) -> torch.Tensor:
    """The image compared with the target: the magnitude ``[B, 1, H, W]`` of a k-space
    model's complex output ``[B, 2, H, W]``, else the output itself."""
    return magnitude(output) if dataset.modality == KSPACE else output


# -- metrics on one item ``[C, *spatial]`` (numpy) ----------------------------------------


def item_range(target: np.ndarray, data_range: float | None) -> float:
    """The data range used for one target: ``data_range``, or its max - min (at least 1e-12)."""
    if data_range is not None:
        return float(data_range)
    return max(float(target.max() - target.min()), 1e-12)


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float | None = 1.0) -> float:
    """Peak signal-to-noise ratio in dB, capped at :data:`PSNR_CAP` for an exact match."""
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(item_range(target, data_range) ** 2 / mse))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float | None = 1.0) -> float:
    """SSIM of one item ``[C, *spatial]`` (2D image or 3D volume), channels averaged."""
    from skimage.metrics import structural_similarity

    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    channel_axis: int | None = 0
    if p.shape[0] == 1:  # one channel: a plain 2D/3D SSIM
        p, t, channel_axis = p[0], t[0], None
    spatial = t.shape[1:] if channel_axis is not None else t.shape
    smallest = min(spatial)
    if smallest < 3:
        raise ValueError(
            f"{NAME}: SSIM needs every spatial side >= 3 pixels; the item has "
            f"spatial shape {tuple(spatial)}"
        )
    win = min(7, smallest if smallest % 2 else smallest - 1)
    return float(
        structural_similarity(
            t, p, data_range=item_range(target, data_range), win_size=win, channel_axis=channel_axis
        )
    )


def nrmse(pred: np.ndarray, target: np.ndarray) -> float:
    """``||pred - target|| / ||target||`` (Euclidean norms over the whole item)."""
    p, t = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    norm = float(np.linalg.norm(t))
    if norm == 0.0:
        raise ValueError(f"{NAME}: NRMSE is undefined for an all-zero target")
    return float(np.linalg.norm(p - t)) / norm


# -- the evaluator ------------------------------------------------------------------------------


def build(**options: Any) -> Evaluator:
    """The restoration evaluator (it reads the model's ``dense`` face); options are the
    fields of :class:`RestorationConfig`."""
    config = parse_options(RestorationConfig, options, NAME)

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return restoration_metrics(model, dataset, ctx, config)

    return evaluate


def restoration_metrics(
    model: Any, dataset: SSLDataset, ctx: EvalContext, config: RestorationConfig
) -> dict[str, float]:
    """``restoration.psnr``/``ssim``/``nrmse`` of ``model`` on ``config.split``."""
    require_task(
        dataset,
        NAME,
        ("dense",),
        "restoration metrics need (degraded, clean) pairs; for label maps use "
        "medical.dice_finetune",
    )
    if config.split not in dataset.splits or dataset.labelled_split(config.split) is None:
        raise ValueError(
            f"{NAME}: dataset {dataset.name!r} has no labelled split "
            f"{config.split!r}; its labelled splits are {list(dataset.splits)}"
        )
    device = torch.device(ctx.device)
    was_training = model.training
    model.to(device)
    model.eval()
    scores: dict[str, list[float]] = {"psnr": [], "ssim": [], "nrmse": []}
    peak = 0.0
    try:
        with torch.no_grad():
            for batch, y, _ in dataset.labelled_batches(
                config.split, config.batch_size or ctx.batch_size
            ):
                pred = prediction_image(dataset, model.dense(move_to(batch, device)))
                target = torch.as_tensor(y)
                if tuple(pred.shape) != tuple(target.shape):
                    raise ValueError(
                        f"{NAME}: model {type(model).__name__} gives predictions of shape "
                        f"{tuple(pred.shape)} (after prediction_image) but the "
                        f"{config.split!r} targets of dataset {dataset.name!r} have shape "
                        f"{tuple(target.shape)}; a restoration model must output one image "
                        "per input (a dense encoder, e.g. medical.unet, not an embedding)"
                    )
                p = pred.detach().cpu().double().numpy()
                t = target.detach().cpu().double().numpy()
                peak = max(peak, float(np.abs(t).max()))
                for pi, ti in zip(p, t):
                    scores["psnr"].append(psnr(pi, ti, config.data_range))
                    scores["ssim"].append(ssim(pi, ti, config.data_range))
                    scores["nrmse"].append(nrmse(pi, ti))
    finally:
        model.train(was_training)
    if not scores["psnr"]:
        raise ValueError(f"{NAME}: split {config.split!r} of dataset {dataset.name!r} is empty")
    if (
        config.data_range is not None
        and not 0.05 * config.data_range <= peak <= 20.0 * config.data_range
    ):
        warnings.warn(
            f"{NAME}: targets of dataset {dataset.name!r} peak at {peak:.3g}, far "
            f"from the data range {config.data_range}; PSNR/SSIM assume intensities "
            "scaled to about [0, 1] (or pass data_range=None)",
            stacklevel=2,
        )
    return {f"{NAME}.{key}": float(np.mean(values)) for key, values in scores.items()}
