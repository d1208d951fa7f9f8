"""Noise2Self on hyperspectral cubes: a blind-spot denoiser trained on the noisy cubes alone.

Noise2Self (Batson and Royer, "Noise2Self: blind denoising by self-supervision", ICML
2019): for noise independent across pixels and zero-mean given the signal, a function
that does not read a pixel's own value (J-invariant) and is trained to predict the noisy
pixel is trained, in expectation, to predict the clean one. Each step hides one phase of
a spatial grid (every ``grid``-th pixel in both directions, all bands at once, random
phase), replaces the hidden pixels by the mean of their four spatial neighbours
(:func:`..hsi_encoders.blind_cube`), and scores the network's output on the hidden
pixels of the observed bands with the squared error against the observation:

    L = mean_{hidden pixels, observed bands} (f(masked y) - y)^2.

Hiding all bands of a pixel matters: a spectral neighbour carries the same pixel's
clean value *and*, for stripes and dead lines, correlated noise. What this assumes, and
where it fails: Gaussian noise is independent across pixels (the assumption holds);
stripes and dead lines are constant along a column, so a hidden pixel's vertical
neighbours carry its noise and the network learns to reproduce it (the benchmark's
mixed noise measures how much that costs). Inference is J-invariant too (the encoder's
``blind_grid``). Missing bands (mask 0) are filled by spectral interpolation before the
network and never scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import PretextTask, SSLDataset, option, parse_options, positive_int

from ..hsi_encoders import blind_cube, fill_bands

NAME = "remote_sensing.noise2self_hsi"


@dataclass(frozen=True)
class Noise2SelfHSIConfig:
    grid: int = option(3, positive_int, "hide every grid-th pixel in both directions")


class Noise2SelfHSI(nn.Module, PretextTask):
    def __init__(self, encoder: Any, config: Noise2SelfHSIConfig) -> None:
        super().__init__()
        if not hasattr(encoder, "restore") or not hasattr(encoder, "blind_grid"):
            raise TypeError(f"{NAME} trains a cube denoiser (remote_sensing.spatial_spectral), "
                            f"got {type(encoder).__name__}")
        if config.grid < 2:
            raise ValueError(f"{NAME}: grid must be >= 2 (1 would hide every pixel)")
        self.encoder = encoder
        self.config = config
        encoder.get_buffer("blind_grid").fill_(config.grid)

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
        g = self.config.grid
        obs, mask = batch[:, 0], batch[:, 1]
        x = fill_bands(obs, mask)
        phase = torch.randint(0, g * g, (), generator=generator)
        masked, hidden = blind_cube(x, g, int(phase))
        est = self.encoder.restore(masked)
        scored = hidden & (mask > 0)
        loss = ((est - obs) ** 2)[scored].mean()
        return {"loss": loss}


def build(encoder: Any, dataset: SSLDataset, **options: Any) -> Noise2SelfHSI:
    return Noise2SelfHSI(encoder, parse_options(Noise2SelfHSIConfig, options, NAME))
