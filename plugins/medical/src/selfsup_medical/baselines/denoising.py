"""Classical image denoising baselines: the noisy input, TV, non-local means, bilateral.

Image denoising (modality ``image2d``; batch ``[B, C, H, W]``, output the same
shape; every channel filtered independently with scikit-image on the CPU):

- :class:`Identity` (``medical.identity``, also ``volume3d``): the degraded
  input itself, the "do nothing" row of a table.
- :class:`TVDenoise` (``medical.tv_denoise``): ``denoise_tv_chambolle`` (Rudin,
  Osher and Fatemi, Physica D 60:259, 1992; Chambolle 2004), ``weight`` in image
  intensity units (``min 0.5 ||u - f||^2 + weight TV(u)``).
- :class:`NonLocalMeans` (``medical.nlm``): ``denoise_nl_means`` (Buades, Coll
  and Morel, CVPR 2005) with 5x5 patches searched within 6 pixels (the
  ``patch_size=5, patch_distance=6`` of scikit-image's own example), fast mode,
  and the noise standard deviation ``sigma`` estimated per image and channel
  (:func:`estimate_noise_sigma`: Donoho's wavelet MAD estimate, as scikit-image's
  ``estimate_sigma``, with Haar wavelets) and passed to the filter;
  the option ``h`` is the filtering strength *as a multiple of that sigma*
  (``h_abs = h * sigma``; scikit-image suggests about 0.8 when sigma is given).
- :class:`Bilateral` (``medical.bilateral``): ``denoise_bilateral`` (Tomasi and
  Manduchi, ICCV 1998) with spatial sigma 1 pixel (7x7 window) and ``sigma_color``
  in image intensity units.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import IMAGE2D, VOLUME3D, BaselineContext, SSLDataset

from .selection import check_strength, choose_on_val, require_modality

#: TV-denoising weights, in intensity units of images scaled to about [0, 1]
TV_DENOISE_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4)
#: non-local-means strengths, as multiples of the estimated noise sigma
NLM_GRID: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.3)
#: bilateral range sigmas, in intensity units of images scaled to about [0, 1]
BILATERAL_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)


class Identity(nn.Module):
    """The degraded input itself, ``[B, C, *spatial]`` -> the same tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.embed_dim = int(channels)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)


class ImageFilter(nn.Module):
    """A scikit-image filter applied to each image and channel of ``[B, C, H, W]``.

    Filters on the CPU in float64 and returns the input's dtype on the input's
    device; subclasses define :meth:`filter_channel`.
    """

    key = "medical.filter"
    option = "strength"

    def __init__(self, channels: int, strength: float) -> None:
        super().__init__()
        self.embed_dim = int(channels)
        self.strength = check_strength(self.key, self.option, strength)
        self.chosen: dict[str, Any] = {self.option: self.strength, "selected_on": "given"}

    def filter_channel(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(x) or x.ndim != 4 or x.is_complex():
            raise TypeError(
                f"{self.key} takes a real image batch [B, C, H, W], got "
                f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))}"
            )
        arr = x.detach().cpu().double().numpy()
        out = np.empty_like(arr)
        for b in range(arr.shape[0]):
            for c in range(arr.shape[1]):
                out[b, c] = self.filter_channel(arr[b, c])
        return torch.from_numpy(out).to(device=x.device, dtype=x.dtype)


class TVDenoise(ImageFilter):
    """Chambolle TV denoising, ``min 0.5 ||u - f||^2 + weight TV(u)``."""

    key, option = "medical.tv_denoise", "weight"

    def filter_channel(self, image: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_tv_chambolle

        return np.asarray(denoise_tv_chambolle(image, weight=self.strength))


class NonLocalMeans(ImageFilter):
    """Non-local means, 5x5 patches within 6 pixels, ``h = strength * estimated sigma``."""

    key, option = "medical.nlm", "h"

    def filter_channel(self, image: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        sigma = estimate_noise_sigma(image)
        if not sigma > 0:  # a noise-free (e.g. constant) image: nothing to remove
            return image.copy()
        return np.asarray(
            denoise_nl_means(
                image,
                patch_size=5,
                patch_distance=6,
                h=self.strength * sigma,
                sigma=sigma,
                fast_mode=True,
            )
        )


class Bilateral(ImageFilter):
    """Bilateral filter, spatial sigma 1 pixel, range sigma ``sigma_color``."""

    key, option = "medical.bilateral", "sigma_color"

    def filter_channel(self, image: np.ndarray) -> np.ndarray:
        from skimage.restoration import denoise_bilateral

        return np.asarray(denoise_bilateral(image, sigma_color=self.strength, sigma_spatial=1.0))


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise sigma of a 2D image: Donoho's MAD of the finest diagonal wavelet band.

    ``median(|HH|) / 0.6745`` (Donoho and Johnstone, Biometrika 81:425, 1994), HH
    the orthonormal Haar diagonal detail of 2x2 blocks, ``(a - b - c + d) / 2``,
    whose variance is the noise variance for white noise while smooth image
    content cancels. scikit-image's ``estimate_sigma`` computes the same with
    Daubechies-2 wavelets but needs PyWavelets, which this plugin does not depend on.
    """
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    if h == 0 or w == 0:
        raise ValueError(f"estimate_noise_sigma needs an image of at least 2x2, got {image.shape}")
    x = np.asarray(image[:h, :w], np.float64)
    hh = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(hh)) / 0.6745)


def build_identity(dataset: SSLDataset, context: BaselineContext | None = None) -> Identity:
    """``medical.identity``: the degraded input, unchanged."""
    require_modality(dataset, "medical.identity", (IMAGE2D, VOLUME3D))
    return Identity(_channels(dataset))


def build_tv_denoise(
    dataset: SSLDataset, context: BaselineContext | None = None, *, weight: float | None = None
) -> TVDenoise:
    """``medical.tv_denoise``; ``weight=None`` chooses it on val from :data:`TV_DENOISE_GRID`."""
    return _build_filter(TVDenoise, dataset, weight, TV_DENOISE_GRID)


def build_nlm(
    dataset: SSLDataset, context: BaselineContext | None = None, *, h: float | None = None
) -> NonLocalMeans:
    """``medical.nlm``; ``h`` (a multiple of the estimated noise sigma), None: chosen on
    val from :data:`NLM_GRID`."""
    return _build_filter(NonLocalMeans, dataset, h, NLM_GRID)


def build_bilateral(
    dataset: SSLDataset,
    context: BaselineContext | None = None,
    *,
    sigma_color: float | None = None,
) -> Bilateral:
    """``medical.bilateral``; ``sigma_color=None`` chooses it on val from
    :data:`BILATERAL_GRID`."""
    return _build_filter(Bilateral, dataset, sigma_color, BILATERAL_GRID)


def _build_filter(
    cls: Any, dataset: SSLDataset, strength: float | None, grid: Sequence[float]
) -> Any:
    require_modality(dataset, cls.key, (IMAGE2D,))
    channels = _channels(dataset)
    if strength is not None:
        return cls(channels, strength)
    chosen = choose_on_val(dataset, cls.key, cls.option, grid, lambda s: cls(channels, s))
    module = cls(channels, chosen[cls.option])
    module.chosen = chosen
    return module


def _channels(dataset: SSLDataset) -> int:
    """The channels of the dataset's images (those of its first pretraining sample)."""
    return int(dataset.pretrain_set()[0].shape[0])  # type: ignore[index]
