"""Classical hyperspectral restoration baselines (face ``dense``: sample -> cube).

Each takes a batch of samples ``[B, 2, bands, H, W]`` (observation, observation mask) and
returns the restored cubes ``[B, bands, H, W]``, on the CPU with numpy/scikit-image.
Unobserved bands are first filled by linear interpolation along the spectrum
(:func:`..hyperspectral.fill_missing_bands`).

- ``remote_sensing.hsi_noisy``: the observation itself (missing bands interpolated).
- ``remote_sensing.hsi_tv``: Chambolle's total-variation denoising of each band alone
  (``weight``).
- ``remote_sensing.hsi_nlm``: non-local means of each band alone (5x5 patches within 6
  pixels; ``h = strength x sigma``, sigma estimated per band by Immerkaer's Laplacian
  estimator, :func:`noise_sigma`).
- ``remote_sensing.hsi_lowrank``: the truncated SVD of the unfolded cube ``[bands, H W]``
  at ``rank`` (the linear mixing model makes the clean cube low-rank: rank <= the number
  of endmembers); with unobserved bands, hard-impute: the missing bands are replaced by
  the rank-``rank`` reconstruction and the SVD is redone, 30 times.

The strength (``weight``, ``h``, ``rank``) is an option; None chooses it on the
validation split by MPSNR (the headline) and stores it in ``module.chosen``; the test
split is never looked at.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import BaselineContext, SSLDataset

from .hyperspectral import fill_missing_bands

GRIDS: dict[str, tuple[float, ...]] = {
    "tv": (0.02, 0.05, 0.1, 0.2, 0.4),
    "nlm": (0.4, 0.6, 0.8, 1.0, 1.3),
    "lowrank": (1, 2, 3, 4, 5, 6, 8),
}
OPTIONS = {"noisy": "", "tv": "weight", "nlm": "h", "lowrank": "rank"}


class CubeFilter(nn.Module):
    """A per-cube restoration from ``(observation, observed bands)`` to a cube."""

    key = "noisy"

    def __init__(self, strength: float | None = None) -> None:
        super().__init__()
        self.embed_dim = 1
        self.strength = strength
        self.chosen: dict[str, Any] = {OPTIONS[self.key]: strength, "selected_on": "given"}

    def restore(self, obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
        return fill_missing_bands(obs, observed)

    def dense(self, batch: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(batch) or batch.ndim != 5 or batch.shape[1] != 2:
            raise TypeError(f"remote_sensing.hsi_{self.key} takes samples [B, 2, bands, H, W] "
                            f"(observation, mask), got {tuple(getattr(batch, 'shape', ()))}")
        x = batch.detach().cpu().double().numpy()
        out = [self.restore(obs, mask.reshape(len(mask), -1).max(1) > 0) for obs, mask in
               zip(x[:, 0], x[:, 1])]
        return torch.from_numpy(np.stack(out)).to(device=batch.device, dtype=batch.dtype)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.dense(batch)


class BandTV(CubeFilter):
    key = "tv"

    def restore(self, obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        x = fill_missing_bands(obs, observed)
        return np.stack([denoise_tv_chambolle(b, weight=float(self.strength or 0.1)) for b in x])


class BandNLM(CubeFilter):
    key = "nlm"

    def restore(self, obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        x = fill_missing_bands(obs, observed)
        out = []
        for band in x:
            sigma = noise_sigma(band) or 1e-3
            out.append(denoise_nl_means(band, patch_size=5, patch_distance=6, fast_mode=True,
                                        h=float(self.strength or 0.8) * sigma, sigma=sigma))
        return np.stack(out)


def noise_sigma(image: np.ndarray) -> float:
    """Immerkaer's estimate of white Gaussian noise's sigma (Computer Vision and Image
    Understanding 64:300, 1996): ``sqrt(pi / 2) / (6 (H - 2)(W - 2)) sum |I * N|``, N the
    difference of two Laplacians (scikit-image's wavelet estimator needs PyWavelets)."""
    from scipy.signal import convolve2d

    kernel = np.array([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]])
    h, w = image.shape
    total = np.abs(convolve2d(image, kernel, mode="valid")).sum()
    return float(np.sqrt(np.pi / 2) * total / (6.0 * (h - 2) * (w - 2)))


class LowRank(CubeFilter):
    key = "lowrank"
    impute_iterations = 30

    def restore(self, obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
        rank = int(self.strength or 5)
        x = fill_missing_bands(obs, observed).reshape(len(obs), -1)
        iterations = 1 if observed.all() else self.impute_iterations
        for _ in range(iterations):
            u, s, vt = np.linalg.svd(x, full_matrices=False)
            low = (u[:, :rank] * s[:rank]) @ vt[:rank]
            x = np.where(observed[:, None], x, low)
        return low.reshape(obs.shape)


CLASSES: dict[str, type[CubeFilter]] = {"noisy": CubeFilter, "tv": BandTV, "nlm": BandNLM,
                                        "lowrank": LowRank}


def choose_on_val(dataset: SSLDataset, key: str) -> dict[str, Any]:
    """The grid value of ``key``'s strength with the best mean MPSNR on ``"val"``."""
    from .evaluators.hsi import band_psnr, restore

    option = OPTIONS[key]
    items = dataset.labelled_split("val") if "val" in dataset.splits else None
    if not items:
        raise ValueError(f"remote_sensing.hsi_{key}: {option}=None chooses it on the 'val' "
                         f"split, which dataset {dataset.name!r} lacks; pass {option}=<value> "
                         f"(e.g. one of {list(GRIDS[key])})")
    pairs = list(items)  # type: ignore[call-overload]
    scores = {}
    for value in GRIDS[key]:
        module = CLASSES[key](value)
        scores[str(value)] = float(np.mean([
            band_psnr(restore(module, s), c.double().numpy()).mean() for s, c in pairs]))
    best = max(GRIDS[key], key=lambda v: scores[str(v)])
    return {option: best, "val_mpsnr": scores, "selected_on": "val"}


def _build(key: str, dataset: SSLDataset, strength: float | None) -> CubeFilter:
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or (
                not strength > 0):
            raise ValueError(f"remote_sensing.hsi_{key}: {OPTIONS[key]} must be a number > 0 "
                             f"(or None to choose it on the validation split), got {strength!r}")
        return CLASSES[key](strength)
    chosen = choose_on_val(dataset, key)
    module = CLASSES[key](chosen[OPTIONS[key]])
    module.chosen = chosen
    return module


def build_noisy(dataset: SSLDataset, context: BaselineContext | None = None) -> CubeFilter:
    return CubeFilter()


def build_tv(dataset: SSLDataset, context: BaselineContext | None = None, *,
             weight: float | None = None) -> CubeFilter:
    return _build("tv", dataset, weight)


def build_nlm(dataset: SSLDataset, context: BaselineContext | None = None, *,
              h: float | None = None) -> CubeFilter:
    return _build("nlm", dataset, h)


def build_lowrank(dataset: SSLDataset, context: BaselineContext | None = None, *,
                  rank: int | None = None) -> CubeFilter:
    return _build("lowrank", dataset, rank)
