"""MERLIN: self-supervised despeckling from the real and imaginary parts of one SLC.

Dalsasso, Denis and Tupin, "As if by magic: self-supervised training of deep
despeckling networks with MERLIN", IEEE TGRS 60, 2022 (arXiv:2110.13148).

Under fully developed speckle the real part ``a`` and imaginary part ``b`` of an SLC
pixel are independent given its reflectivity ``R``, each ``N(0, R / 2)``. The network
``f`` reads ``log(2 a^2)`` and estimates ``log R``; since ``b`` is independent of
its input, ``f`` cannot learn ``b``'s speckle, and the negative log-likelihood of
``b`` under the estimate (the paper's co-log-likelihood loss)

    L(a -> b) = mean_pixels [ 1/2 log(pi R^) + b^2 / R^ ],   R^ = exp(f(log 2 a^2))

is minimised by ``R^ = R``. With ``symmetric=True`` (the default) the roles are also
swapped, ``L = (L(a -> b) + L(b -> a)) / 2``, as the paper does to use both parts.
Correlated speckle: with ``decorrelate=True`` (default) each SLC's spectrum is
re-centred on zero frequency before it is split (:func:`..speckle.recenter_spectrum`,
the paper's Sec. III-C and the authors' ``symetrisation_patch``), which makes ``a``
and ``b`` independent again for a symmetric transfer function; intensity is unchanged.

At inference the encoder reads the two parts the same way and averages the two
estimates in intensity (the authors' test code); the pretext sets this on the encoder
(:meth:`..encoders.LogDespeckler.set_input`), where it is saved with the weights.
Differs from the authors' code in that the log-intensity normalisation bounds are
the plugin's (``LOG_MIN``, ``LOG_MAX``) rather than those fitted to TerraSAR-X, and the
re-centring is done per training patch in torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import PretextTask, SSLDataset, boolean, option, parse_options

from ..speckle import log_part_intensities, recenter_spectrum

NAME = "remote_sensing.merlin"
HALF_LOG_PI = 0.5 * math.log(math.pi)


@dataclass(frozen=True)
class MerlinConfig:
    symmetric: bool = option(True, boolean, "also predict the real part from the imaginary")
    decorrelate: bool = option(True, boolean, "re-centre each SLC's spectrum before splitting "
                                              "it (the paper's step for correlated speckle)")


def co_log_likelihood(log_r: torch.Tensor, part: torch.Tensor) -> torch.Tensor:
    """Mean negative log-likelihood of ``part`` (a real or imaginary part, ``N(0, R / 2)``)
    under ``R = exp(log_r)``: ``1/2 log(pi R) + part^2 / R``; shapes ``[B, 1, H, W]``."""
    return (HALF_LOG_PI + 0.5 * log_r + part.square() * torch.exp(-log_r)).mean()


class Merlin(nn.Module, PretextTask):
    def __init__(self, encoder: Any, config: MerlinConfig) -> None:
        super().__init__()
        if not hasattr(encoder, "restore") or not hasattr(encoder, "set_input"):
            raise TypeError(f"{NAME} trains a log-intensity despeckler "
                            "(remote_sensing.merlin_unet or remote_sensing.dncnn), got "
                            f"{type(encoder).__name__}")
        self.encoder = encoder
        self.config = config
        encoder.set_input(parts=True, recenter=config.decorrelate)

    def forward(self, batch: torch.Tensor, generator: torch.Generator | None = None
                ) -> dict[str, torch.Tensor]:
        slc = recenter_spectrum(batch) if self.config.decorrelate else batch
        la, lb = log_part_intensities(slc)
        a, b = slc[:, :1], slc[:, 1:2]
        if self.config.symmetric:
            est_a, est_b = self.encoder.restore(torch.cat([la, lb])).chunk(2)
            a_to_b = co_log_likelihood(est_a, b)
            loss = 0.5 * (a_to_b + co_log_likelihood(est_b, a))
        else:
            a_to_b = loss = co_log_likelihood(self.encoder.restore(la), b)
        return {"loss": loss, "a_to_b": a_to_b.detach()}


def build(encoder: Any, dataset: SSLDataset, **options: Any) -> Merlin:
    return Merlin(encoder, parse_options(MerlinConfig, options, NAME))
