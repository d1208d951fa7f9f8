"""Choosing a classical method's strength on the validation split, and option checks.

When a strength (``weight``, ``h``, ``sigma_color``) is None, the factory runs the
method with each value of a small grid (the ``*_GRID`` of :mod:`.mri` and
:mod:`.denoising`) over the dataset's ``"val"`` split and keeps the value with the
highest mean PSNR (data range 1, images scaled to about ``[0, 1]``) against the
val references. This uses the validation references exactly as tuning any
hyperparameter of a learned model does; the test split is never looked at. The
outcome is stored as ``module.chosen`` (``{"weight": 0.05, "val_psnr": {"0.02":
30.1, ...}, "selected_on": "val"}``) so that a report can state it; an explicit
strength gives ``{"weight": w, "selected_on": "given"}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import SSLDataset


def choose_on_val(
    dataset: SSLDataset,
    key: str,
    option: str,
    grid: Sequence[float],
    make: Callable[[float], nn.Module],
    batch_size: int = 32,
) -> dict[str, Any]:
    """Run ``make(value)`` for each grid value on the ``"val"`` split; keep the best mean PSNR.

    Returns ``{option: best, "val_psnr": {str(value): mean PSNR}, "selected_on": "val"}``.
    A tie keeps the earlier (weaker) value.
    """
    from ..evaluators.restoration import prediction_image, psnr

    if "val" not in dataset.splits or dataset.labelled_split("val") is None:
        raise ValueError(
            f"{key}: {option}=None chooses the strength on the 'val' split, but dataset "
            f"{dataset.name!r} has labelled splits {list(dataset.splits)}; pass {option}=<value> "
            f"(e.g. one of {list(grid)})"
        )
    scores: dict[str, float] = {}
    best, best_score = grid[0], -math.inf
    for value in grid:
        module: Any = make(value)
        values: list[float] = []
        with torch.no_grad():
            for batch, y, _ in dataset.labelled_batches("val", batch_size):
                pred = prediction_image(dataset, module.dense(batch))
                target = torch.as_tensor(y).cpu().double().numpy()
                values += [psnr(p, t, 1.0) for p, t in zip(pred.cpu().double().numpy(), target)]
        score = float(np.mean(values))
        scores[str(value)] = score
        if score > best_score:
            best, best_score = value, score
    return {option: float(best), "val_psnr": scores, "selected_on": "val"}


def require_modality(dataset: SSLDataset, key: str, modalities: tuple[str, ...]) -> None:
    if dataset.modality not in modalities:
        raise ValueError(
            f"{key} needs a {' or '.join(modalities)} dataset; dataset "
            f"{dataset.name!r} is {dataset.modality!r}"
        )


def check_strength(key: str, option: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(
            f"{key}: {option} must be a finite number > 0 (or None to choose it "
            f"on the validation split), got {value!r}"
        )
    return float(value)


def check_count(key: str, option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: {option} must be an integer >= 1, got {value!r}")
    return value
