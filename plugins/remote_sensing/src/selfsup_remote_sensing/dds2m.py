"""DDS2M: self-supervised denoising diffusion spatio-spectral model (``remote_sensing.dds2m``).

Miao, Zhang, Zhang and Tao, "DDS2M: Self-Supervised Denoising Diffusion Spatio-Spectral
Model for Hyperspectral Image Restoration", ICCV 2023 (arXiv:2303.06682); the authors'
code: github.com/miaoyuchun/DDS2M (MIT), read for this file, not copied.

The method needs no training data: it restores one degraded cube ``y`` by running a
reverse diffusion (DDRM's conditional sampler, Kawar et al. NeurIPS 2022) in which the
denoiser is not a pretrained network but a *variational spatio-spectral module* (VS2M)
fitted on the fly: a low-rank factorisation ``X = sum_r A_r s_r^T`` whose ``rank``
abundance maps ``A`` come from an untrained convolutional network and whose spectra ``s``
from an untrained fully connected network, each fed a fixed random input (deep image /
spectral priors). At each reverse step ``t`` (cube scaled to ``[-1, 1]``):

1. VS2M takes ``iterations`` Adam steps on ``|| sqrt(a_t) x0(VS2M) - x_t ||^2`` (the authors'
   loss: it regresses the current diffusion state, not ``y``; their TV term is 0 in their
   logs and is left out), and ``x0`` is the exponential moving average (0.98) of its output;
2. with ``sigma_t = sqrt(1 - a_t) / sqrt(a_t)`` and the observation noise ``sigma_0`` (twice
   the cube's noise std), DDRM's update for the identity (denoising) operator: where the
   next step is noisier than ``y`` (``sigma_next > sigma_0``), ``x' = eta_b y + (1 - eta_b) x0 +
   sqrt(sigma_next^2 - sigma_0^2 eta_b^2) n``, else ``x' = x0 + sqrt(1 - eta^2) sigma_next (y -
   x0) / sigma_0 + eta sigma_next n``; ``x_next = sqrt(a_next) x'``.

The result is the last ``x0``. Because it is optimised on each cube at inference and has
no pretraining phase, it is registered as a baseline (a method that needs no
pretraining), not as a pretext task that trains an encoder.

Differs from the authors': far smaller networks and fewer steps for the CPU (one
3-level convolutional network giving all ``rank`` maps instead of ``rank`` 6-level skip
U-Nets, one MLP giving all spectra, with a sigmoid so spectra stay in [0, 1]; ``steps``
reverse steps evenly spaced over the 2,000-step linear schedule 1e-4..5e-3 instead of
their per-step iteration counts); ``sigma_0`` is estimated from the cube (the median
over bands of Immerkaer's estimate) where they pass the true level; and the result is
the final estimate, never the best-PSNR iterate their logs track against the clean cube.
Whole missing bands: the authors complete missing *pixels*, which the spatial prior
fills; a missing band carries nothing the spatial network can use and the spectral MLP
has no smoothness prior, and with DDRM's unobserved-sample update this version scored
5-7 dB on the missing bands of a small cube against 19 dB for spectral interpolation.
So missing bands are filled by spectral interpolation first
(:func:`.hyperspectral.fill_missing_bands`) and then treated as observed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    BaselineContext,
    SSLDataset,
    non_negative_int,
    option,
    parse_options,
    positive,
    positive_int,
    unit_interval,
)

from .hyperspectral import fill_missing_bands

NAME = "remote_sensing.dds2m"


@dataclass(frozen=True)
class DDS2MConfig:
    rank: int = option(8, positive_int, "number of abundance maps / spectra of VS2M")
    steps: int = option(80, positive_int, "reverse diffusion steps (of a 2,000-step schedule)")
    iterations: int = option(5, positive_int, "VS2M Adam iterations per reverse step")
    lr: float = option(3e-3, positive, "VS2M's Adam learning rate")
    width: int = option(16, positive_int, "channels of VS2M's spatial network")
    eta: float = option(0.95, unit_interval, "DDRM's eta (eta_a)")
    eta_b: float = option(1.0, unit_interval, "DDRM's eta_b (weight of y on noisy steps)")
    seed: int = option(0, non_negative_int, "seed of VS2M's inputs, weights and noise")


class VS2M(nn.Module):
    """``X [bands, H, W] = sum_r A_r s_r``: abundance maps from a small conv net, spectra
    from an MLP, both fed fixed random inputs (module docstring)."""

    def __init__(self, bands: int, h: int, w: int, rank: int, width: int,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.register_buffer("z_space", torch.rand(1, 8, h, w, generator=generator))
        self.register_buffer("z_spec", torch.rand(rank, bands, generator=generator))
        def block(cin: int, cout: int) -> list[nn.Module]:
            # DIP's skip networks: conv, batch norm, leaky ReLU
            return [nn.Conv2d(cin, cout, 3, padding=1, padding_mode="reflect"),
                    nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]

        self.down = nn.Sequential(*block(8, width), *block(width, width))
        self.mid = nn.Sequential(*block(width, width), *block(width, width))
        self.up = nn.Sequential(*block(2 * width, width), nn.Conv2d(width, rank, 1))
        self.spectral = nn.Sequential(nn.Linear(bands, 128), nn.ReLU6(), nn.Linear(128, 128),
                                      nn.ReLU(), nn.Linear(128, bands), nn.Sigmoid())

    def forward(self) -> torch.Tensor:
        d = self.down(self.z_space)
        m = self.mid(F.avg_pool2d(d, 2, ceil_mode=True))
        m = F.interpolate(m, size=d.shape[-2:], mode="bilinear", align_corners=False)
        abundances = self.up(torch.cat([d, m], 1))[0]  # [rank, H, W]
        spectra = self.spectral(self.z_spec)  # [rank, bands]
        return torch.einsum("rhw,rb->bhw", abundances, spectra)


def _alphas(total: int = 2000) -> torch.Tensor:
    betas = torch.linspace(1e-4, 5e-3, total, dtype=torch.float64)
    return torch.cumprod(1.0 - betas, 0)


def estimate_noise(cube: np.ndarray, observed: np.ndarray) -> float:
    from .hsi_baselines import noise_sigma

    return float(np.median([noise_sigma(b) for b in cube[observed]]))


def dds2m_restore(obs: np.ndarray, observed: np.ndarray, config: DDS2MConfig) -> np.ndarray:
    """The DDS2M estimate ``[bands, H, W]`` in ``[0, 1]`` of one observation (module doc)."""
    g = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the networks' initial weights
    obs = fill_missing_bands(obs, observed)
    bands, h, w = obs.shape
    y = torch.from_numpy(obs).float() * 2 - 1
    sigma_0 = max(2.0 * estimate_noise(obs, observed), 1e-3)  # the observed bands' noise
    alphas = _alphas()
    seq = np.unique(np.linspace(0, len(alphas) - 1, config.steps).round().astype(int))
    model = VS2M(bands, h, w, config.rank, config.width, g)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)

    def noise() -> torch.Tensor:
        return torch.randn(bands, h, w, generator=g)

    a_first = float(alphas[seq[-1]])
    sigma_first = math.sqrt((1 - a_first) / a_first)
    x = math.sqrt(a_first) * (y + math.sqrt(max(sigma_first**2 - sigma_0**2, 0.0)) * noise())
    avg: torch.Tensor | None = None
    x0 = torch.zeros_like(y)
    for i, t in enumerate(seq[::-1]):
        a_t = float(alphas[t])
        a_next = float(alphas[seq[::-1][i + 1]]) if i + 1 < len(seq) else 1.0
        for _ in range(config.iterations):
            out = model() * 2 - 1
            loss = F.mse_loss(math.sqrt(a_t) * out, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                avg = out.detach() if avg is None else 0.98 * avg + 0.02 * out.detach()
        assert avg is not None
        x0 = avg
        with torch.no_grad():
            s_next = math.sqrt((1 - a_next) / a_next)
            if s_next > sigma_0:
                x_mod = (config.eta_b * y + (1 - config.eta_b) * x0
                         + math.sqrt(s_next**2 - sigma_0**2 * config.eta_b**2) * noise())
            else:
                x_mod = (x0 + math.sqrt(1 - config.eta**2) * s_next * (y - x0) / sigma_0
                         + config.eta * s_next * noise())
            x = math.sqrt(a_next) * x_mod
    return ((x0.double().numpy() + 1) / 2).clip(0.0, 1.0)


class DDS2M(nn.Module):
    """Face ``dense``: samples ``[B, 2, bands, H, W]`` -> restored cubes ``[B, bands, H, W]``,
    each restored on its own by :func:`dds2m_restore`."""

    def __init__(self, config: DDS2MConfig) -> None:
        super().__init__()
        self.embed_dim = 1
        self.config = config

    def dense(self, batch: torch.Tensor) -> torch.Tensor:
        if not torch.is_tensor(batch) or batch.ndim != 5 or batch.shape[1] != 2:
            raise TypeError(f"{NAME} takes samples [B, 2, bands, H, W] (observation, mask), "
                            f"got {tuple(getattr(batch, 'shape', ()))}")
        x = batch.detach().cpu().double().numpy()
        out = []
        with torch.enable_grad():
            for obs, mask in zip(x[:, 0], x[:, 1]):
                out.append(dds2m_restore(obs, mask.reshape(len(mask), -1).max(1) > 0,
                                         self.config))
        return torch.from_numpy(np.stack(out)).to(device=batch.device, dtype=batch.dtype)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.dense(batch)


def build(dataset: SSLDataset, context: BaselineContext | None = None,
          **options: Any) -> DDS2M:
    """``remote_sensing.dds2m``."""
    return DDS2M(parse_options(DDS2MConfig, options, NAME))
