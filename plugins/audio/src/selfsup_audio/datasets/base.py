"""What the plugin's datasets share: fixed-length clips turned into spectrograms.

A sample is a float32 spectrogram ``[n_mels, frames]`` (modality ``audio.mel``:
natural-log mel energies, frequency first; 1 s at 16 kHz gives 98 Kaldi frames or
101 centred STFT frames); a batch is ``[B, n_mels, frames]``. Features are
computed once when the dataset is built (:attr:`feature_seconds` says how long
that took); ``feature_mean``/``feature_std`` are the train split's statistics,
which the encoders normalise with (SSAST's ``(x - mean) / (2 std)``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from selfsup.api import SSLDataset, TaskSpec

from .. import features
from .views import AudioViews, apply_views, noise_waveforms

MEL = "audio.mel"


class _Unlabelled(Dataset[torch.Tensor]):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def extract(waves: torch.Tensor, kind: str, sample_rate: int, n_mels: int,
            batch_size: int = 256) -> torch.Tensor:
    """Features of ``[N, samples]`` float waveforms, in batches: ``[N, n_mels, frames]``."""
    out = [features.compute(waves[i:i + batch_size], kind, sample_rate, n_mels)
           for i in range(0, len(waves), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, n_mels, 0)


class SpectrogramDataset(SSLDataset):
    """Spectrograms of labelled clips, split by index lists (see the module).

    ``labels``: class indices ``[N]`` (task ``classification``) or multi-hot
    ``[N, classes]`` (task ``multilabel``).
    """

    def __init__(self, waves: torch.Tensor, labels: np.ndarray, splits: Mapping[str, np.ndarray],
                 classes: Sequence[str], *, sample_rate: int, kind: str, n_mels: int,
                 views: AudioViews, pretrain: np.ndarray | None = None) -> None:
        start = time.perf_counter()
        self.x = extract(waves, kind, sample_rate, n_mels)
        self.feature_seconds = time.perf_counter() - start
        self.classes = list(classes)
        if np.ndim(labels) == 2:  # multi-hot [N, classes]: several events per clip
            self.y = torch.as_tensor(labels, dtype=torch.float32)
            self.task = TaskSpec("multilabel", n_classes=len(self.classes))
        else:
            self.y = torch.as_tensor(labels, dtype=torch.long)
            self.task = TaskSpec("classification", n_classes=max(2, len(self.classes)))
        self._splits = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
        self.splits = tuple(k for k in ("train", "val", "test") if k in self._splits)
        self._pretrain = self._splits["train"] if pretrain is None else np.asarray(pretrain)
        self.views = views
        self.sample_rate, self.feature_kind, self.n_mels = sample_rate, kind, n_mels
        fit = self.x[torch.as_tensor(self._pretrain)]
        self.feature_mean = float(fit.mean()) if len(fit) else 0.0
        self.feature_std = float(fit.std()) if len(fit) > 1 else 1.0
        length = int(waves.shape[-1])
        self.noise = extract(noise_waveforms(16, length) * 0.1, kind, sample_rate, n_mels)

    def pretrain_set(self) -> Dataset[torch.Tensor]:
        return _Unlabelled(self.x[torch.as_tensor(self._pretrain)])

    def labelled_split(self, split: str) -> TensorDataset | None:
        idx = self._splits.get(split)
        if idx is None:
            return None
        i = torch.as_tensor(idx)
        return TensorDataset(self.x[i], self.y[i])

    def split_indices(self, split: str) -> np.ndarray:
        return self._splits[split]

    def input_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.flatten(1)

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return apply_views(batch, self.views, generator, self.noise)

    def describe(self) -> dict[str, Any]:
        return {"clips": int(self.x.shape[0]), "shape": list(self.x.shape[1:]),
                "classes": len(self.classes),
                **{f"n_{k}": len(v) for k, v in self._splits.items()},
                "feature_seconds": round(self.feature_seconds, 3)}
