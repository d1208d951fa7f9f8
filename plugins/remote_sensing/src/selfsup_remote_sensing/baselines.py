"""Classical SAR despeckling filters as baselines (face ``dense``: SLC -> ``log R^``).

Each takes an SLC batch ``[B, 2, H, W]`` and returns ``log R^`` ``[B, 1, H, W]``, filtering
every image on the CPU with numpy/scipy/scikit-image. ``L = 1`` look throughout.

- ``remote_sensing.identity``: the noisy input ``log |z|^2`` (the "do nothing" row).
- ``remote_sensing.boxcar``: the mean intensity over a ``size x size`` window.
- ``remote_sensing.lee``: Lee's local linear MMSE filter (Lee, IEEE TPAMI 2:165, 1980):
  ``R^ = m + k (I - m)``, ``k = var_R / var_I``, ``var_R = (var_I - m^2 / L) / (1 + 1 / L)``
  (clipped to ``[0, var_I]``), local mean ``m`` and variance ``var_I`` over ``size x size``.
- ``remote_sensing.frost``: Frost's adaptive filter (Frost et al., IEEE TPAMI 4:157,
  1982): weights ``exp(-damping * C^2 * |d|)`` over a ``size x size`` window, ``C`` the
  local coefficient of variation of the intensity, ``|d|`` the distance in pixels. With
  one look ``C`` is about 1 in flat regions, so the damping (not only the window) sets
  how far the kernel reaches: both are chosen on the validation split.
- ``remote_sensing.median``: the median of ``log I`` over ``size x size``, plus
  ``log(1 / ln 2)`` (the median of a unit exponential is ``ln 2``).
- ``remote_sensing.tv_log``: Chambolle's total-variation denoising of ``log I``
  (``weight``), plus Euler's gamma (``E[log I] = log R - gamma`` for one look).
- ``remote_sensing.nlm_log``: non-local means on ``log I`` (5x5 patches within 6
  pixels; the log-speckle standard deviation ``pi / sqrt(6)`` of one look as sigma,
  ``h = strength x sigma``), plus gamma.

The strength (``size``, ``weight``, ``h``; Frost's ``size`` and ``damping``) is an
option; None chooses it on the validation split from a small grid by amplitude PSNR (the
evaluator's headline), and stores the choice in ``module.chosen``. That uses the
validation references as tuning any hyper-parameter does; the test split is never
looked at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import BaselineContext, SSLDataset

from .speckle import INTENSITY_EPS, LOG_EXP_BIAS

GRIDS: dict[str, tuple[float, ...]] = {
    "boxcar": (3, 5, 7, 9, 11),
    "lee": (5, 7, 9, 11, 15),
    "frost": (5, 7, 9, 11, 13, 15),
    "frost_damping": (0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
    "median": (3, 5, 7, 9, 11),
    "tv_log": (0.5, 1.0, 1.5, 2.0, 3.0),
    "nlm_log": (0.4, 0.6, 0.8, 1.0, 1.3),
}
LOG_SPECKLE_STD = math.pi / math.sqrt(6.0)


class SLCFilter(nn.Module):
    """A per-image filter from intensity ``I`` ``[H, W]`` to ``R^`` or ``log R^``."""

    key = "identity"
    option = ""

    def __init__(self, strength: float | None = None) -> None:
        super().__init__()
        self.embed_dim = 1
        self.strength = strength
        self.chosen: dict[str, Any] = {self.option: strength, "selected_on": "given"}

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        return np.log(np.maximum(intensity, INTENSITY_EPS))

    def dense(self, slc: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(slc) or slc.ndim != 4 or slc.shape[1] != 2:
            raise TypeError(f"remote_sensing.{self.key} takes SLC batches [B, 2, H, W], got "
                            f"{tuple(getattr(slc, 'shape', ()))}")
        x = slc.detach().cpu().double().numpy()
        intensity = x[:, 0] ** 2 + x[:, 1] ** 2
        out = np.stack([self.log_estimate(i) for i in intensity])[:, None]
        return torch.from_numpy(out).to(device=slc.device, dtype=slc.dtype)

    def forward(self, slc: torch.Tensor) -> torch.Tensor:
        return self.dense(slc)


def _log(r: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(r, INTENSITY_EPS))


class Boxcar(SLCFilter):
    key, option = "boxcar", "size"

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        return _log(uniform_filter(intensity, size=int(self.strength or 1), mode="reflect"))


class Lee(SLCFilter):
    key, option = "lee", "size"
    looks = 1.0

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        size = int(self.strength or 1)
        m = uniform_filter(intensity, size=size, mode="reflect")
        var = np.maximum(uniform_filter(intensity**2, size=size, mode="reflect") - m**2, 0.0)
        cu2 = 1.0 / self.looks
        var_r = np.clip((var - m**2 * cu2) / (1.0 + cu2), 0.0, var)
        k = np.divide(var_r, var, out=np.zeros_like(var), where=var > 0)
        return _log(m + k * (intensity - m))


class Frost(SLCFilter):
    key, option = "frost", "size"

    def __init__(self, strength: float | None = None, damping: float = 2.0) -> None:
        super().__init__(strength)
        self.damping = damping
        self.chosen["damping"] = damping

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from scipy.ndimage import uniform_filter

        size = int(self.strength or 1)
        r = size // 2
        m = uniform_filter(intensity, size=size, mode="reflect")
        var = np.maximum(uniform_filter(intensity**2, size=size, mode="reflect") - m**2, 0.0)
        c2 = np.divide(var, m**2, out=np.zeros_like(var), where=m > 0)
        padded = np.pad(intensity, r, mode="reflect")
        h, w = intensity.shape
        num = np.zeros_like(intensity)
        den = np.zeros_like(intensity)
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                weight = np.exp(-self.damping * c2 * math.hypot(dy, dx))
                num += weight * padded[r + dy:r + dy + h, r + dx:r + dx + w]
                den += weight
        return _log(num / den)


class Median(SLCFilter):
    key, option = "median", "size"

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from scipy.ndimage import median_filter

        return median_filter(_log(intensity), size=int(self.strength or 1),
                             mode="reflect") + math.log(1.0 / math.log(2.0))


class TVLog(SLCFilter):
    key, option = "tv_log", "weight"

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        return np.asarray(denoise_tv_chambolle(_log(intensity), weight=float(self.strength or 1))
                          ) - LOG_EXP_BIAS


class NLMLog(SLCFilter):
    key, option = "nlm_log", "h"

    def log_estimate(self, intensity: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        sigma = LOG_SPECKLE_STD
        return np.asarray(denoise_nl_means(_log(intensity), patch_size=5, patch_distance=6,
                                           h=float(self.strength or 1) * sigma, sigma=sigma,
                                           fast_mode=True)) - LOG_EXP_BIAS


CLASSES: dict[str, type[SLCFilter]] = {
    "boxcar": Boxcar, "lee": Lee, "frost": Frost, "median": Median, "tv_log": TVLog,
    "nlm_log": NLMLog,
}


def _val_items(dataset: SSLDataset, key: str, option: str, grid: Sequence[float]) -> list[Any]:
    items = dataset.labelled_split("val") if "val" in dataset.splits else None
    if not items:
        raise ValueError(f"remote_sensing.{key}: {option}=None chooses it on the 'val' "
                         f"split, which dataset {dataset.name!r} lacks; pass {option}=<value> "
                         f"(e.g. one of {list(grid)})")
    return list(items)  # type: ignore[call-overload]


def _val_psnr(module: SLCFilter, items: list[Any]) -> float:
    from .evaluators.despeckling import psnr

    vals = []
    with torch.no_grad():
        for slc, clean in items:
            est = module.dense(slc[None])[0, 0].double().numpy()
            vals.append(psnr(np.exp(est / 2), np.exp(clean[0].double().numpy() / 2), 1.0))
    return float(np.mean(vals))


def choose_on_val(dataset: SSLDataset, cls: type[SLCFilter], grid: Sequence[float]
                  ) -> dict[str, Any]:
    """The grid value with the best mean amplitude PSNR on the ``"val"`` split."""
    items = _val_items(dataset, cls.key, cls.option, grid)
    scores = {str(value): _val_psnr(cls(value), items) for value in grid}
    best = max(grid, key=lambda v: scores[str(v)])
    return {cls.option: best, "val_psnr": scores, "selected_on": "val"}


def _check(key: str, option: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"remote_sensing.{key}: {option} must be a number > 0 (or None to "
                         f"choose it on the validation split), got {value!r}")


def _build(key: str, dataset: SSLDataset, strength: float | None) -> SLCFilter:
    cls = CLASSES[key]
    if strength is not None:
        _check(key, cls.option, strength)
        return cls(strength)
    chosen = choose_on_val(dataset, cls, GRIDS[key])
    module = cls(chosen[cls.option])
    module.chosen = chosen
    return module


def build_identity(dataset: SSLDataset, context: BaselineContext | None = None) -> SLCFilter:
    return SLCFilter()


def build_boxcar(dataset: SSLDataset, context: BaselineContext | None = None, *,
                 size: int | None = None) -> SLCFilter:
    return _build("boxcar", dataset, size)


def build_lee(dataset: SSLDataset, context: BaselineContext | None = None, *,
              size: int | None = None) -> SLCFilter:
    return _build("lee", dataset, size)


def build_frost(dataset: SSLDataset, context: BaselineContext | None = None, *,
                size: int | None = None, damping: float | None = None) -> SLCFilter:
    """Frost's filter; ``size`` and ``damping`` left None are chosen jointly on val."""
    if size is not None:
        _check("frost", "size", size)
    if damping is not None:
        _check("frost", "damping", damping)
    if size is not None and damping is not None:
        return Frost(size, damping)
    sizes = (size,) if size is not None else GRIDS["frost"]
    dampings = (damping,) if damping is not None else GRIDS["frost_damping"]
    items = _val_items(dataset, "frost", "size" if size is None else "damping",
                       sizes if size is None else dampings)
    scores = {f"size={s},damping={d}": _val_psnr(Frost(s, d), items)
              for s in sizes for d in dampings}
    best = max(((s, d) for s in sizes for d in dampings),
               key=lambda sd: scores[f"size={sd[0]},damping={sd[1]}"])
    module = Frost(*best)
    module.chosen = {"size": best[0], "damping": best[1], "val_psnr": scores,
                     "selected_on": "val"}
    return module


def build_median(dataset: SSLDataset, context: BaselineContext | None = None, *,
                 size: int | None = None) -> SLCFilter:
    return _build("median", dataset, size)


def build_tv_log(dataset: SSLDataset, context: BaselineContext | None = None, *,
                 weight: float | None = None) -> SLCFilter:
    return _build("tv_log", dataset, weight)


def build_nlm_log(dataset: SSLDataset, context: BaselineContext | None = None, *,
                  h: float | None = None) -> SLCFilter:
    return _build("nlm_log", dataset, h)
