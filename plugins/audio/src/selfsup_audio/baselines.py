"""The field's classical features as baselines (``register_baselines``).

- ``audio.logmel_stats``: per mel bin, the mean and standard deviation over time of
  the log-mel spectrogram and of its deltas (``4 x n_mels`` numbers a clip);
- ``audio.mfcc``: ``n_mfcc`` MFCCs (orthonormal DCT-II of the log-mel, as Kaldi and
  torchaudio compute them, without liftering) with deltas and delta-deltas, each
  summarised by mean and standard deviation over time (``6 x n_mfcc``).

With ``core.linear_probe`` (multinomial logistic regression on standardised
features) they are the classic "MFCC + logistic regression" keyword spotter. They
read the batch itself, fit nothing and have no parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import BaselineContext, SSLDataset, option, parse_options, positive_int

from .features import deltas, mfcc


def _summary(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x.mean(dim=-1), x.std(dim=-1)], dim=1)


class LogMelStats(nn.Module):
    """Mean and std over time of the log-mel and its deltas: ``[B, 4 F]``."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.embed_dim = 4 * n_mels

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float()
        return torch.cat([_summary(x), _summary(deltas(x))], dim=1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


class MFCCStats(nn.Module):
    """Mean and std over time of MFCCs, deltas and delta-deltas: ``[B, 6 n_mfcc]``."""

    def __init__(self, n_mfcc: int) -> None:
        super().__init__()
        self.n_mfcc = n_mfcc
        self.embed_dim = 6 * n_mfcc

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        c = mfcc(batch.float(), self.n_mfcc)
        d = deltas(c)
        return torch.cat([_summary(c), _summary(d), _summary(deltas(d))], dim=1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


@dataclass(frozen=True)
class MFCCOptions:
    """Options of ``audio.mfcc``."""

    n_mfcc: int = option(20, positive_int, "cepstral coefficients kept")


def _n_mels(dataset: SSLDataset) -> int:
    x = dataset.pretrain_set()[0]
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise TypeError(f"audio baselines read spectrograms [n_mels, frames]; dataset "
                        f"{dataset.name!r} gives {type(x).__name__}")
    return int(x.shape[0])


def build_logmel_stats(dataset: SSLDataset, context: BaselineContext) -> LogMelStats:
    """``audio.logmel_stats``."""
    return LogMelStats(_n_mels(dataset))


def build_mfcc(dataset: SSLDataset, context: BaselineContext, **options: Any) -> MFCCStats:
    """``audio.mfcc``; ``options`` are :class:`MFCCOptions` fields."""
    config = parse_options(MFCCOptions, options, "audio.mfcc")
    n_mels = _n_mels(dataset)
    if config.n_mfcc > n_mels:
        raise ValueError(f"audio.mfcc: option n_mfcc={config.n_mfcc} exceeds the dataset's "
                         f"{n_mels} mel bins")
    return MFCCStats(config.n_mfcc)
