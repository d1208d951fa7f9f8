"""Classical restoration methods as fixed, parameter-free dense "encoders".

``selfsup bench`` measures a baseline ``encoder:medical.<name>`` with the same
evaluators as a learned model, so each method here is an ``nn.Module`` without
parameters whose ``forward`` maps a batch to the model output the evaluators
expect, and whose ``embed_dim`` is the number of output channels.

MRI reconstruction (modality ``kspace``; batch dict of :mod:`selfsup_medical.kspace`,
output the complex image as two channels ``[B, 2, H, W]``):

- :class:`ZeroFilled` (``medical.zero_filled``): the inverse centred FFT of the
  undersampled k-space, missing lines left at zero.
- :class:`TVCompressedSensing` (``medical.tv_cs``): total-variation compressed
  sensing (Lustig, Donoho and Pauly, "Sparse MRI: The application of compressed
  sensing for rapid MR imaging", MRM 58:1182, 2007) for single-coil Cartesian
  data: ``min_x 0.5 ||M F x - y||^2 + lambda TV(x)``, solved by FISTA (Beck and
  Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
  Problems", SIAM J. Imaging Sci. 2:183, 2009). ``F`` is orthonormal and ``M`` a
  0/1 mask, so the data term's gradient is 1-Lipschitz and the step is 1: the
  gradient step puts the measured lines back into the k-space of the current
  estimate. The proximal step is isotropic TV denoising of the *complex* image
  (the TV of ``x`` sums ``sqrt(|dx|^2 + |dy|^2)`` of complex differences, as in
  Lustig et al.), computed in torch by Chambolle's dual projection (Chambolle,
  "An Algorithm for Total Variation Minimization and Applications", JMIV 20:89,
  2004; the same iteration and step ``tau = 1/4`` as scikit-image's
  ``denoise_tv_chambolle``) with ``inner_iterations`` dual steps per FISTA step,
  warm-started from the previous step's dual, so that the whole batch runs at once
  on any device. ``weight`` is relative to each image's scale: ``lambda = weight *
  max |zero-filled image|``, so one weight suits data of any intensity scale.

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

Strength chosen on validation: when a strength (``weight``, ``h``,
``sigma_color``) is None, the factory runs the method with each value of a small
grid (``*_GRID`` below) over the dataset's ``"val"`` split and keeps the value
with the highest mean PSNR (data range 1, images scaled to about ``[0, 1]``)
against the val references. This uses the validation references exactly as
tuning any hyperparameter of a learned model does; the test split is never
looked at. The outcome is stored as ``module.chosen`` (``{"weight": 0.05,
"val_psnr": {"0.02": 30.1, ...}, "selected_on": "val"}``) so that a report can
state it; an explicit strength gives ``{"weight": w, "selected_on": "given"}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.components import SSLDataset

from .kspace import channels_to_complex, complex_to_channels, fft2c, ifft2c

#: TV-CS weights, relative to the image's peak zero-filled magnitude
TV_CS_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
#: TV-denoising weights, in intensity units of images scaled to about [0, 1]
TV_DENOISE_GRID: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2, 0.4)
#: non-local-means strengths, as multiples of the estimated noise sigma
NLM_GRID: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.3)
#: bilateral range sigmas, in intensity units of images scaled to about [0, 1]
BILATERAL_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)

#: Chambolle's dual step (1/4 is scikit-image's choice for 2D; 1/8 is the proven bound)
_TAU = 0.25


# -- MRI ------------------------------------------------------------------------------


class ZeroFilled(nn.Module):
    """k-space batch -> zero-filled complex image ``[B, 2, H, W]`` (real, imaginary)."""

    embed_dim = 2

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return complex_to_channels(ifft2c(_kspace(batch, "medical.zero_filled")))


class TVCompressedSensing(nn.Module):
    """FISTA for ``0.5 ||M F x - y||^2 + lambda TV(x)``; see the module docstring.

    ``forward(batch)`` returns the complex image ``[B, 2, H, W]`` after
    ``iterations`` FISTA steps, each with ``inner_iterations`` dual steps of the
    TV proximal operator.
    """

    embed_dim = 2

    def __init__(self, weight: float, iterations: int = 50, inner_iterations: int = 10) -> None:
        super().__init__()
        self.weight = _check_strength("medical.tv_cs", "weight", weight)
        self.iterations = _check_count("medical.tv_cs", "iterations", iterations)
        self.inner_iterations = _check_count("medical.tv_cs", "inner_iterations", inner_iterations)
        self.chosen: dict[str, Any] = {"weight": self.weight, "selected_on": "given"}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = _kspace(batch, "medical.tv_cs")
        mask = batch["mask"].to(y.device, torch.float32).expand_as(y.real)
        x = ifft2c(y)  # zero-filled start
        # lambda per image, relative to its scale (module docstring)
        scale = x.abs().flatten(1).amax(1).clamp_min(1e-12)
        lam = (self.weight * scale).view(-1, 1, 1, 1, 1)
        z, t = x, 1.0
        # dual of the TV prox: [B, direction (rows, columns), (real, imaginary), H, W]
        dual = torch.zeros((x.shape[0], 2, 2, *x.shape[2:]), device=x.device)
        for _ in range(self.iterations):
            # gradient step of size 1/L = 1: measured lines replace those of F z
            k = fft2c(z)
            step = complex_to_channels(ifft2c(k - mask * k + y))
            x_next = channels_to_complex(tv_prox(step, lam, dual, self.inner_iterations))
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            z = x_next + ((t - 1.0) / t_next) * (x_next - x)
            x, t = x_next, t_next
        return complex_to_channels(x)


def tv_prox(v: torch.Tensor, lam: torch.Tensor, dual: torch.Tensor, steps: int) -> torch.Tensor:
    """``argmin_u 0.5 ||u - v||^2 + lam TV(u)`` for a complex image by Chambolle's projection.

    ``v``: the image as channels ``[B, 2, H, W]`` (real, imaginary); ``lam``
    ``[B, 1, 1, 1, 1]``; ``dual`` ``[B, 2, 2, H, W]`` (direction, real/imaginary):
    the scaled dual variable, updated in place (the warm start of the next call).
    The primal is ``u = v + grad^T dual`` with forward differences and zero flux
    at the far edge; the update is scikit-image's nD Chambolle iteration, with
    the gradient magnitude taken over both directions and both parts, which makes
    the TV that of the complex image. In-place operations: this loop is the cost
    of TV-CS.
    """
    g = torch.empty_like(dual)
    norm = torch.empty((v.shape[0], 1, 1, *v.shape[2:]), dtype=v.dtype, device=v.device)
    ratio = _TAU / lam
    for _ in range(steps):
        u = _primal(v, dual)
        torch.sub(u[:, :, 1:, :], u[:, :, :-1, :], out=g[:, 0, :, :-1, :])
        g[:, 0, :, -1, :] = 0
        torch.sub(u[:, :, :, 1:], u[:, :, :, :-1], out=g[:, 1, :, :, :-1])
        g[:, 1, :, :, -1] = 0
        torch.sum(g * g, (1, 2), keepdim=True, out=norm)
        norm.sqrt_().mul_(ratio).add_(1.0)
        dual.sub_(g, alpha=_TAU).div_(norm)
    return _primal(v, dual)


def _primal(v: torch.Tensor, dual: torch.Tensor) -> torch.Tensor:
    """``v + grad^T dual``, the adjoint of the forward differences applied to the dual."""
    u = v - dual[:, 0] - dual[:, 1]
    u[:, :, 1:, :] += dual[:, 0, :, :-1, :]
    u[:, :, :, 1:] += dual[:, 1, :, :, :-1]
    return u


def _kspace(batch: Any, key: str) -> torch.Tensor:
    if not isinstance(batch, dict) or "kspace" not in batch or "mask" not in batch:
        raise TypeError(
            f"{key} takes a k-space batch dict with 'kspace' and 'mask' (a "
            f"KSpaceDataset's collate), got {type(batch).__name__}"
        )
    k = batch["kspace"]
    if not torch.is_tensor(k) or not k.is_complex() or k.ndim != 4:
        raise TypeError(
            f"{key}: batch['kspace'] must be a complex tensor [B, 1, H, W], got "
            f"{getattr(k, 'dtype', type(k).__name__)} {tuple(getattr(k, 'shape', ()))}"
        )
    return k


# -- image denoising --------------------------------------------------------------------


class Identity(nn.Module):
    """The degraded input itself, ``[B, C, *spatial]`` -> the same tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.embed_dim = int(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


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
        self.strength = _check_strength(self.key, self.option, strength)
        self.chosen: dict[str, Any] = {self.option: self.strength, "selected_on": "given"}

    def filter_channel(self, image: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
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


# -- choosing a strength on the validation split ------------------------------------------


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
    from .evaluators.restoration import psnr

    if "val" not in dataset.splits or dataset.labelled_split("val") is None:
        raise ValueError(
            f"{key}: {option}=None chooses the strength on the 'val' split, but dataset "
            f"{dataset.name!r} has labelled splits {list(dataset.splits)}; pass {option}=<value> "
            f"(e.g. one of {list(grid)})"
        )
    to_image = getattr(dataset, "prediction_image", lambda out: out)
    scores: dict[str, float] = {}
    best, best_score = grid[0], -math.inf
    for value in grid:
        module = make(value)
        values: list[float] = []
        with torch.no_grad():
            for batch, y, _ in dataset.labelled_batches("val", batch_size):
                pred = to_image(module(batch)).detach().cpu().double().numpy()
                target = torch.as_tensor(y).cpu().double().numpy()
                values += [psnr(p, t, 1.0) for p, t in zip(pred, target)]
        score = float(np.mean(values))
        scores[str(value)] = score
        if score > best_score:
            best, best_score = value, score
    return {option: float(best), "val_psnr": scores, "selected_on": "val"}


# -- factories ------------------------------------------------------------------------------


def build_zero_filled(dataset: SSLDataset) -> ZeroFilled:
    """``medical.zero_filled``: the zero-filled inverse FFT, ``[B, 2, H, W]``."""
    _require_modality(dataset, "medical.zero_filled", ("kspace",))
    return ZeroFilled()


def build_tv_cs(
    dataset: SSLDataset,
    weight: float | None = None,
    iterations: int = 50,
    inner_iterations: int = 10,
) -> TVCompressedSensing:
    """``medical.tv_cs``: TV compressed sensing; ``weight=None`` chooses it on val
    from :data:`TV_CS_GRID` (module docstring)."""
    _require_modality(dataset, "medical.tv_cs", ("kspace",))
    if weight is not None:
        return TVCompressedSensing(weight, iterations, inner_iterations)
    chosen = choose_on_val(
        dataset,
        "medical.tv_cs",
        "weight",
        TV_CS_GRID,
        lambda w: TVCompressedSensing(w, iterations, inner_iterations),
    )
    module = TVCompressedSensing(chosen["weight"], iterations, inner_iterations)
    module.chosen = chosen
    return module


def build_identity(dataset: SSLDataset) -> Identity:
    """``medical.identity``: the degraded input, unchanged."""
    _require_modality(dataset, "medical.identity", ("image2d", "volume3d"))
    return Identity(_channels(dataset))


def build_tv_denoise(dataset: SSLDataset, weight: float | None = None) -> TVDenoise:
    """``medical.tv_denoise``; ``weight=None`` chooses it on val from :data:`TV_DENOISE_GRID`."""
    return _build_filter(TVDenoise, dataset, weight, TV_DENOISE_GRID)


def build_nlm(dataset: SSLDataset, h: float | None = None) -> NonLocalMeans:
    """``medical.nlm``; ``h`` (a multiple of the estimated noise sigma), None: chosen on
    val from :data:`NLM_GRID`."""
    return _build_filter(NonLocalMeans, dataset, h, NLM_GRID)


def build_bilateral(dataset: SSLDataset, sigma_color: float | None = None) -> Bilateral:
    """``medical.bilateral``; ``sigma_color=None`` chooses it on val from
    :data:`BILATERAL_GRID`."""
    return _build_filter(Bilateral, dataset, sigma_color, BILATERAL_GRID)


def _build_filter(
    cls: Any, dataset: SSLDataset, strength: float | None, grid: Sequence[float]
) -> Any:
    _require_modality(dataset, cls.key, ("image2d",))
    channels = _channels(dataset)
    if strength is not None:
        return cls(channels, strength)
    chosen = choose_on_val(dataset, cls.key, cls.option, grid, lambda s: cls(channels, s))
    module = cls(channels, chosen[cls.option])
    module.chosen = chosen
    return module


def _require_modality(dataset: SSLDataset, key: str, modalities: tuple[str, ...]) -> None:
    if dataset.modality not in modalities:
        raise ValueError(
            f"{key} needs a {' or '.join(modalities)} dataset; dataset "
            f"{dataset.name!r} is {dataset.modality!r}"
        )


def _channels(dataset: SSLDataset) -> int:
    channels = getattr(dataset, "in_channels", None)
    if channels is None:
        pre = dataset.pretrain_set()
        channels = int(pre[0].shape[0])  # type: ignore[index]
    return int(channels)


def _check_strength(key: str, option: str, value: Any) -> float:
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


def _check_count(key: str, option: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{key}: {option} must be an integer >= 1, got {value!r}")
    return value
