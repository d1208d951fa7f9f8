"""Handwritten digits as flat vectors: core's built-in benchmark dataset.

The data are scikit-learn's copy of the UCI "Optical Recognition of Handwritten
Digits" test set (Alpaydin & Kaynak, 1998): 1,797 images of 8x8 pixels with 17
grey levels, 10 classes, shipped inside scikit-learn, so nothing is downloaded.
Samples are the 64 pixel values scaled to [0, 1].

Splits are stratified and seeded: 60% train (also the unlabelled pretraining
set, labels hidden), 20% validation, 20% test.

Views (:meth:`DigitsDataset.augment`), applied to a batch ``[B, 64]``:
a random translation of the 8x8 image by up to ``shift`` pixels (zero fill),
random masking of each pixel with probability ``mask_prob``, and additive Gaussian
noise of standard deviation ``noise_std``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from selfsup.components import SSLDataset, TaskSpec
from selfsup.options import Check, option, parse_options

SIDE = 8


def _within(lo: float, hi: float) -> Check:
    def check(x: Any) -> str | None:
        ok = isinstance(x, (int, float)) and not isinstance(x, bool) and lo <= x <= hi
        return None if ok else f"lie in [{lo}, {hi}]"

    return check


@dataclass(frozen=True)
class DigitsViews:
    """The digits' stochastic views (``[dataset.views]``), applied in this order."""


    shift: int = option(1, _within(0, 3), "random translation of the 8x8 image, pixels")
    mask_prob: float = option(0.2, _within(0.0, 0.95), "probability of zeroing each pixel")
    noise_std: float = option(0.1, _within(0.0, 10.0), "std of added Gaussian noise")


class DigitsDataset(SSLDataset):
    task = TaskSpec("classification", n_classes=10)

    def __init__(self, *, seed: int = 0, views: Mapping[str, Any] | None = None) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        v = parse_options(DigitsViews, views or {}, "core.digits views")
        self.noise_std, self.mask_prob = float(v.noise_std), float(v.mask_prob)
        self.shift = int(v.shift)
        bunch = load_digits()
        x = torch.as_tensor(bunch.data / 16.0, dtype=torch.float32)
        y = torch.as_tensor(bunch.target, dtype=torch.long)
        idx = np.arange(len(y))
        train, rest = train_test_split(idx, test_size=0.4, stratify=y.numpy(), random_state=seed)
        val, test = train_test_split(
            rest, test_size=0.5, stratify=y.numpy()[rest], random_state=seed
        )
        self._split_idx = {"train": train, "val": val, "test": test}
        self._x, self._y = x, y
        self._labelled = {s: TensorDataset(x[i], y[i]) for s, i in self._split_idx.items()}
        self.input_dim = x.shape[1]

    def pretrain_set(self) -> Dataset[Any]:
        return _Unlabelled(self._x[self._split_idx["train"]])

    def labelled_split(self, split: str) -> Dataset[Any] | None:
        return self._labelled.get(split)

    def labels(self, split: str) -> np.ndarray:
        return self._y[self._require_idx(split)].numpy()

    def _require_idx(self, split: str) -> np.ndarray:
        self._require_split(split)
        return self._split_idx[split]

    def input_features(self, batch: Any) -> torch.Tensor:
        return batch

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if batch.ndim != 2 or batch.shape[1] != SIDE * SIDE:
            raise ValueError(f"core.digits views expect [B, 64] batches, got {tuple(batch.shape)}")
        b, dev = batch.shape[0], batch.device
        x = batch
        if self.shift:
            x = _random_shift(x.view(b, SIDE, SIDE), self.shift, generator).reshape(b, -1)
        if self.mask_prob:
            keep = torch.rand(x.shape, generator=generator, device=dev) >= self.mask_prob
            x = x * keep
        if self.noise_std:
            x = x + self.noise_std * torch.randn(x.shape, generator=generator, device=dev)
        return x


class _Unlabelled(Dataset[torch.Tensor]):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def _random_shift(img: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image ``[B, H, W]`` by its own integer offset, filling with zeros."""
    b, h, w = img.shape
    pad = torch.nn.functional.pad(img, (max_shift,) * 4)
    offsets = torch.randint(0, 2 * max_shift + 1, (b, 2), generator=generator, device=img.device)
    rows = offsets[:, 0, None] + torch.arange(h, device=img.device)  # [B, H]
    cols = offsets[:, 1, None] + torch.arange(w, device=img.device)  # [B, W]
    batch_idx = torch.arange(b, device=img.device)[:, None, None]
    return pad[batch_idx, rows[:, :, None], cols[:, None, :]]


def build(**options: Any) -> DigitsDataset:
    return DigitsDataset(**options)
