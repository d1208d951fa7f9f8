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
The encoder reads ``log |z|^2`` (``reads_parts = 0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import PretextTask, SSLDataset, option, parse_options, positive_int

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
        encoder.set_input(parts=False)
        kernel = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])
        self.register_buffer("kernel", kernel[None, None], persistent=False)

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
        g = self.config.grid
        log_i = log_intensity(batch)
        phase = torch.randint(0, g * g, (), generator=generator, device=batch.device)
        dy, dx = int(phase) // g, int(phase) % g
        mask = torch.zeros_like(log_i, dtype=torch.bool)
        mask[..., dy::g, dx::g] = True
        neighbours = F.conv2d(F.pad(log_i, (1, 1, 1, 1), mode="reflect"), self.get_buffer("kernel"))
        est = self.encoder.restore(torch.where(mask, neighbours, log_i))
        intensity = log_i.exp()
        loss = exponential_nll(est[mask], intensity[mask]).mean()
        return {"loss": loss}


def build(encoder: Any, dataset: SSLDataset, **options: Any) -> BlindSpot:
    return BlindSpot(encoder, parse_options(BlindSpotConfig, options, NAME))
