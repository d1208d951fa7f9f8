"""``remote_sensing.hsi``: hyperspectral restoration quality against the clean cube.

For every cube of the ``split`` (default ``test``) the model's ``dense(sample [1, 2, bands,
H, W])`` gives the restored cube ``[1, bands, H, W]``; against the clean cube (which lies
in ``[0, 1]``; see :mod:`..hyperspectral`), clipped to ``[0, 1]`` first:

- ``hsi.mpsnr``: the mean over bands of each band's PSNR with data range 1 (the headline);
- ``hsi.mssim``: the mean over bands of each band's SSIM (scikit-image, data range 1,
  7x7 Gaussian-free windows);
- ``hsi.sam``: the mean spectral angle in degrees between restored and clean spectra
  over pixels (``arccos(<x, y> / |x| |y|)``; lower is better);
- ``hsi.mpsnr_missing``: MPSNR over the unobserved bands only, where a sample has any
  (band completion).

Each is averaged over the split's cubes. Deterministic: no seed spread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import EvalContext, Evaluator, SSLDataset, option, parse_options, split_name


@dataclass(frozen=True)
class HSIConfig:
    split: str = option("test", split_name, "the labelled split to score")


def band_psnr(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """PSNR per band (data range 1) of ``[bands, H, W]`` cubes."""
    mse = ((pred - target) ** 2).reshape(len(pred), -1).mean(1)
    return 10 * np.log10(1.0 / np.maximum(mse, 1e-12))


def band_ssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    from skimage.metrics import structural_similarity

    return np.asarray([structural_similarity(p, t, data_range=1.0) for p, t in zip(pred, target)])


def sam_degrees(pred: np.ndarray, target: np.ndarray) -> float:
    """The mean spectral angle (degrees) over pixels of ``[bands, H, W]`` cubes."""
    p, t = pred.reshape(len(pred), -1), target.reshape(len(target), -1)
    cos = (p * t).sum(0) / np.maximum(np.linalg.norm(p, axis=0) * np.linalg.norm(t, axis=0),
                                      1e-12)
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))).mean())


def restore(model: Any, sample: torch.Tensor) -> np.ndarray:
    """The model's restored cube ``[bands, H, W]`` of one sample, clipped to ``[0, 1]``."""
    device = next((p.device for p in model.parameters()), torch.device("cpu")) if isinstance(
        model, nn.Module) else torch.device("cpu")
    with torch.no_grad():
        out = model.dense(sample[None].to(device))[0]
    return np.clip(out.detach().cpu().double().numpy(), 0.0, 1.0)


def hsi_metrics(model: Any, dataset: SSLDataset, config: HSIConfig) -> dict[str, float]:
    items = dataset.labelled_split(config.split) if config.split in dataset.splits else None
    if not items:
        raise ValueError(f"remote_sensing.hsi: dataset {dataset.name!r} has no labelled split "
                         f"{config.split!r} (its splits: {list(dataset.splits)})")
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, nn.Module):
        model.eval()
    scores: dict[str, list[float]] = {"mpsnr": [], "mssim": [], "sam": [], "mpsnr_missing": []}
    try:
        for sample, clean in list(items):  # type: ignore[call-overload]
            est, ref = restore(model, sample), clean.double().numpy()
            psnrs = band_psnr(est, ref)
            scores["mpsnr"].append(float(psnrs.mean()))
            scores["mssim"].append(float(band_ssim(est, ref).mean()))
            scores["sam"].append(sam_degrees(est, ref))
            missing = sample[1].flatten(1).amax(1).numpy() == 0
            if missing.any():
                scores["mpsnr_missing"].append(float(psnrs[missing].mean()))
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    return {f"hsi.{k}": float(np.mean(v)) for k, v in scores.items() if v and all(
        math.isfinite(x) for x in v)}


def build(**options: Any) -> Evaluator:
    """``remote_sensing.hsi``."""
    config = parse_options(HSIConfig, options, "remote_sensing.hsi")

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return hsi_metrics(model, dataset, config)

    return evaluate
