"""A blind-spot SAR despeckler trained on one look: the learned peer of MERLIN.

In the spirit of Speckle2Void (Molini, Valsesia, Fracastoro and Magli, "Speckle2Void:
deep self-supervised SAR despeckling with blind-spot convolutional neural networks",
IEEE TGRS 60, 2022) with the masking of Noise2Self (Batson and Royer, ICML 2019):
each step hides a grid of pixels (every ``grid``-th pixel in both directions, at a
random phase), replaces each hidden pixel's log-intensity by the mean of its four
neighbours, and scores the network's estimate ``log R^`` at the hidden pixels with
the single-look intensity likelihood ``I ~ Exponential(mean R)``:

    L = mean_hidden [ log R^ + I / R^ ],   I = |z|^2,

minimised by ``R^ = E[I | neighbours] = R`` when speckle is spatially white.
Differs from Speckle2Void in that it masks the input rather than using a blind-spot
architecture, and does not form the Bayesian posterior that combines the prior with
the hidden pixel's own value (the output is the estimate from the neighbours alone).
Spatially correlated speckle breaks the blind-spot assumption (the neighbours carry
the hidden pixel's speckle); Speckle2Void whitens it first, this task does not.
The encoder reads ``log |z|^2`` (``reads_parts = 0``) and, at inference, runs the same
masking over all ``grid^2`` phases (``blind_grid``, :class:`..encoders.LogDespeckler`):
run on the unmasked image, the trained network is another function and ends below
the noisy input (9 dB against 11.5 dB amplitude PSNR at the benchmark's budget; 23 dB
with the masked inference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import PretextTask, SSLDataset, option, parse_options, positive_int

from ..encoders import blind_input
from ..speckle import log_intensity

NAME = "remote_sensing.blind_spot"


@dataclass(frozen=True)
class BlindSpotConfig:
    grid: int = option(4, positive_int, "hide every grid-th pixel in both directions")


def exponential_nll(log_r: torch.Tensor, intensity: torch.Tensor) -> torch.Tensor:
    """``log R + I / R`` per pixel: the single-look intensity negative log-likelihood."""
    return log_r + intensity * torch.exp(-log_r)


class BlindSpot(nn.Module, PretextTask):
    def __init__(self, encoder: Any, config: BlindSpotConfig) -> None:
        super().__init__()
        if not hasattr(encoder, "restore") or not hasattr(encoder, "set_input"):
            raise TypeError(f"{NAME} trains a log-intensity despeckler "
                            "(remote_sensing.merlin_unet or remote_sensing.dncnn), got "
                            f"{type(encoder).__name__}")
        if config.grid < 2:
            raise ValueError(f"{NAME}: grid must be >= 2 (1 would hide every pixel)")
        self.encoder = encoder
        self.config = config
        encoder.set_input(parts=False, blind_grid=config.grid)

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
        g = self.config.grid
        log_i = log_intensity(batch)
        phase = torch.randint(0, g * g, (), generator=generator, device=batch.device)
        masked, mask = blind_input(log_i, g, int(phase))
        est = self.encoder.restore(masked)
        intensity = log_i.exp()
        loss = exponential_nll(est[mask], intensity[mask]).mean()
        return {"loss": loss}


def build(encoder: Any, dataset: SSLDataset, **options: Any) -> BlindSpot:
    return BlindSpot(encoder, parse_options(BlindSpotConfig, options, NAME))
