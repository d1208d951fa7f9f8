"""Noise2Score: a learned score of the noisy images and Tweedie's formula.

Kim & Ye, "Noise2Score: Tweedie's Approach to Self-Supervised Image Denoising
without Clean Images", NeurIPS 2021 (arXiv:2106.07009); details follow the
authors' code (github.com/cubeyoung/Noise2Score, ``models/networks.py``,
``models/Gaussian_model.py``, ``models/*_blind_model.py``).

For noise from an exponential family, Tweedie's formula gives the posterior mean
of the clean image ``x`` from the noisy ``y`` and the score ``l'(y) = grad log
p(y)`` of the *noisy* image distribution alone:

- Gaussian, ``y = x + sigma n``: ``E[x | y] = y + sigma^2 l'(y)``;
- Poisson, ``y = eta z`` with ``z ~ Poisson(x / eta)``:
  ``E[x | y] ~= (y + eta / 2) exp(eta l'(y))`` (the paper's Eq. for Poisson, with
  the score taken with respect to ``y`` itself).

The score is learned without clean images by the amortised residual denoising
autoencoder (AR-DAE; Lim et al., ICML 2020): perturb ``y`` with small Gaussian
noise ``sigma_a u`` and minimise ``E ||sigma_a s(y + sigma_a u) + u||^2``, whose
minimiser tends to ``l'(y)`` as ``sigma_a -> 0``. As in the authors' code,
``sigma_a`` is one value per step, annealed linearly over training from
``sigma_max`` to ``sigma_min`` (0.05 to 0.001 for images in [0, 1]), and at
inference the score is evaluated at ``y`` itself. Training is the same whatever
the noise family; only the inference formula depends on it.

The noise level (``sigma`` or ``eta``) is a buffer of :class:`ScoreUNet`, given
(``noise_level=``) or estimated. The authors' blind models estimate it per test
image by a search over candidate levels for the one that minimises the total
variation (Charbonnier TV-L1) of the Tweedie output (plus, for Poisson, 0.1 TV
and the Poisson negative log-likelihood of ``y`` under the output): too small a
level leaves noise, too large a level overshoots and inverts it. Since the score
does not depend on the level, the search costs one network evaluation. Here:

- while the buffer is unknown (NaN), ``forward`` runs that search per image;
- at the end of training, :class:`Noise2Score` sets the buffer to the median of
  the per-image estimates over (up to ``estimation_images``) pretraining images,
  so the exported denoiser applies one level to every image, unless
  ``noise_level`` was given or ``estimate_noise_level=False``.

Shapes: images ``[B, C, H, W]`` (or volumes ``[B, C, D, H, W]``), sides divisible
by 16 and at least 32 (MONAI BasicUNet); ``ScoreUNet`` returns the same shape.

The task trains the face ``medical.score`` (:data:`selfsup_medical.faces.SCORE`:
``score``, ``estimate_levels``, ``noise_level``, ``level_known``), which only
``medical.score_unet`` offers; the denoised image is its ``dense`` face.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    IMAGE2D,
    VOLUME3D,
    PretextTask,
    SSLDataset,
    boolean,
    option,
    parse_options,
    positive,
    positive_int,
)

from ..models import MedUNet

NAME = "medical.noise2score"
ENCODER = "medical.score_unet"
NOISES = ("gaussian", "poisson")
#: candidate noise levels of the blind search (data scaled to about [0, 1])
SEARCH = {"gaussian": (0.005, 0.5), "poisson": (0.001, 0.5)}
SEARCH_STEPS = 64


def total_variation(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Charbonnier TV-L1 per sample ``[B]``: summed over axes, mean over pixels."""
    tv = x.new_zeros(x.shape[0])
    for axis in range(2, x.ndim):
        d = torch.diff(x, dim=axis)
        tv = tv + torch.sqrt(d * d + eps * eps).flatten(1).mean(1)
    return tv


class ScoreUNet(nn.Module):
    """``medical.score_unet``: a score network and Tweedie's formula (module docstring).

    Faces ``dense`` and ``medical.score``: ``score(y)`` is the network's estimate
    of ``grad log p(y)``; ``dense(y)`` (and ``forward``) is the denoised image
    ``E[x | y]``. ``score_model`` replaces the default
    :class:`~selfsup_medical.models.MedUNet` (any module mapping images to images
    of the same shape).
    """

    noise_level: torch.Tensor

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        *,
        features: Sequence[int] | None = None,
        noise: str = "gaussian",
        noise_level: float | None = None,
        score_model: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if noise not in NOISES:
            raise ValueError(f"{ENCODER}: noise must be one of {list(NOISES)}, got {noise!r}")
        if noise_level is not None and (
            isinstance(noise_level, bool)
            or not isinstance(noise_level, (int, float))
            or not noise_level > 0
        ):
            raise ValueError(
                f"{ENCODER}: noise_level must be a number > 0 (sigma for Gaussian, eta for "
                f"Poisson noise) or None to estimate it, got {noise_level!r}"
            )
        self.noise = noise
        self.spatial_dims, self.in_channels = spatial_dims, in_channels
        self.score_net = score_model or MedUNet(
            spatial_dims, in_channels, in_channels, features=features
        )
        self.embed_dim = in_channels
        level = math.nan if noise_level is None else float(noise_level)
        self.register_buffer("noise_level", torch.tensor(level))

    @property
    def level_known(self) -> bool:
        return bool(torch.isfinite(self.noise_level))

    def score(self, y: torch.Tensor) -> torch.Tensor:
        """The estimated score ``grad log p(y)``, same shape as ``y``."""
        return self.score_net(y)  # type: ignore[no-any-return]

    def tweedie(self, y: torch.Tensor, score: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        """``E[x | y]`` for noise level ``level`` (a scalar or ``[B, 1, ...]``)."""
        if self.noise == "gaussian":
            return y + level**2 * score
        return (y + level / 2) * torch.exp(level * score)

    @torch.no_grad()
    def estimate_levels(self, y: torch.Tensor, score: torch.Tensor | None = None) -> torch.Tensor:
        """Per-image noise levels ``[B]`` by the authors' TV search (module docstring)."""
        s = self.score(y) if score is None else score
        lo, hi = SEARCH[self.noise]
        grid = torch.logspace(math.log10(lo), math.log10(hi), SEARCH_STEPS, device=y.device)
        costs = []
        for level in grid:
            out = self.tweedie(y, s, level)
            if self.noise == "gaussian":
                cost = total_variation(out)
            else:
                pos = out.clamp_min(1e-6)
                nll = (pos - y * torch.log(pos)).flatten(1).mean(1)
                cost = 0.1 * total_variation(out.clamp_min(0.0)) + nll
            costs.append(cost)
        return grid[torch.stack(costs).argmin(dim=0)]

    def dense(self, y: torch.Tensor) -> torch.Tensor:
        """The denoised image ``E[x | y]`` (the level searched per image while unknown)."""
        y = y.float()
        s = self.score(y)
        if self.level_known:
            return self.tweedie(y, s, self.noise_level)
        levels = self.estimate_levels(y, s).view(-1, *[1] * (y.ndim - 1))
        return self.tweedie(y, s, levels)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.dense(y)


def build_encoder(
    dataset: SSLDataset,
    *,
    features: Sequence[int] | None = None,
    noise: str = "gaussian",
    noise_level: float | None = None,
) -> ScoreUNet:
    """``medical.score_unet``: a U-Net score model with Tweedie's formula for ``dataset``."""
    if dataset.modality not in (IMAGE2D, VOLUME3D):
        raise ValueError(
            f"{ENCODER} needs an image2d or volume3d dataset; {dataset.name!r} is "
            f"{dataset.modality!r}"
        )
    first = dataset.pretrain_set()[0]  # type: ignore[index]
    dims = 2 if dataset.modality == IMAGE2D else 3
    return ScoreUNet(
        dims, int(first.shape[0]), features=features, noise=noise, noise_level=noise_level
    )


@dataclass(frozen=True)
class Noise2ScoreConfig:
    """Options of :func:`build` (``medical.noise2score``).

    The AR-DAE perturbation ``sigma_a`` is annealed linearly from ``sigma_max`` to
    ``sigma_min`` (``sigma_min <= sigma_max``) over training.
    """

    sigma_max: float = option(0.05, positive, "largest AR-DAE perturbation (data in [0, 1])")
    sigma_min: float = option(0.001, positive, "smallest AR-DAE perturbation, at the end")
    estimate_noise_level: bool = option(True, boolean,
                                        "at the end of training, set an unknown noise level "
                                        "from estimation_images pretraining images")
    estimation_images: int = option(64, positive_int,
                                    "pretraining images the noise level is estimated from")

    def __post_init__(self) -> None:
        lo, hi = self.sigma_min, self.sigma_max
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (lo, hi))
        if numbers and lo > hi:
            raise ValueError(
                f"{NAME}: sigma_min={lo} exceeds sigma_max={hi}; "
                "the perturbation is annealed from large to small"
            )


class Noise2Score(nn.Module, PretextTask):
    """AR-DAE training of a :class:`ScoreUNet` (see the module docstring).

    ``forward(batch, generator)``: ``batch`` ``[B, C, *spatial]`` noisy images;
    returns ``{"loss", "sigma_a"}``.
    """

    sigma_a: torch.Tensor

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: Noise2ScoreConfig) -> None:
        super().__init__()
        if dataset.modality not in (IMAGE2D, VOLUME3D):
            raise ValueError(
                f"{NAME} denoises images or volumes; dataset {dataset.name!r} is "
                f"{dataset.modality!r}"
            )
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        # a buffer, so that a resumed run continues the annealing where it was
        self.register_buffer("sigma_a", torch.tensor(float(config.sigma_max)))

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor) or batch.ndim != self.encoder.spatial_dims + 2:
            got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise TypeError(
                f"{NAME} expects a batch of images [B, C, *{self.encoder.spatial_dims} spatial "
                f"dims], got {got}"
            )
        y = batch.float()
        u = torch.randn(y.shape, generator=generator, device=generator.device).to(y.device)
        sigma_a = self.sigma_a
        s = self.encoder.score(y + sigma_a * u)
        loss = ((sigma_a * s + u) ** 2).mean()
        return {"loss": loss, "sigma_a": sigma_a.detach().clone()}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """Anneal ``sigma_a``; after the last step, estimate the noise level if unknown."""
        cfg = self.config
        frac = min(max(step / total_steps, 0.0), 1.0) if total_steps > 0 else 1.0
        self.sigma_a.fill_(cfg.sigma_max + (cfg.sigma_min - cfg.sigma_max) * frac)
        if step >= total_steps > 0 and cfg.estimate_noise_level and not self.encoder.level_known:
            self.encoder.noise_level.fill_(self.estimate_dataset_level())

    @torch.no_grad()
    def estimate_dataset_level(self, batch_size: int = 8) -> float:
        """Median of the per-image TV-search levels over the first pretraining images."""
        images = self.dataset.pretrain_set()
        n = min(len(images), self.config.estimation_images)  # type: ignore[arg-type]
        device = self.encoder.noise_level.device
        levels = []
        for start in range(0, n, batch_size):
            chunk = [images[i] for i in range(start, min(n, start + batch_size))]  # type: ignore[index]
            y = torch.stack([torch.as_tensor(x) for x in chunk]).float().to(device)
            levels.append(self.encoder.estimate_levels(y))
        return float(torch.cat(levels).median())


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> Noise2Score:
    """``medical.noise2score`` factory; ``options`` are :class:`Noise2ScoreConfig` fields."""
    return Noise2Score(encoder, dataset, parse_options(Noise2ScoreConfig, options, NAME))
