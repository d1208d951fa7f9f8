"""What the plugin's datasets share: labelled clouds of a fixed point count.

A sample is a float32 cloud ``[N, 3]`` (modality ``pointcloud``: xyz, centred and
scaled into the unit sphere); a batch is ``[B, N, 3]``. Labelled splits are index
lists into one array; the unlabelled pretraining set is the train split (its labels
are never read by a pretext).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from selfsup.api import SSLDataset, TaskSpec

from .views import PointViews, apply_views

POINTCLOUD = "pointcloud"


class _Unlabelled(Dataset[torch.Tensor]):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


class PointCloudDataset(SSLDataset):
    """Clouds ``[M, N, 3]`` with class labels, split by index lists."""

    def __init__(self, points: np.ndarray, labels: np.ndarray,
                 splits: Mapping[str, np.ndarray], classes: Sequence[str],
                 views: PointViews) -> None:
        self.x = torch.as_tensor(np.ascontiguousarray(points), dtype=torch.float32)
        self.y = torch.as_tensor(labels, dtype=torch.long)
        self.classes = list(classes)
        self.task = TaskSpec("classification", n_classes=max(2, len(self.classes)))
        self._splits = {k: np.asarray(v, dtype=np.int64) for k, v in splits.items()}
        self.splits = tuple(k for k in ("train", "val", "test") if k in self._splits)
        self.views = views

    @property
    def n_points(self) -> int:
        return int(self.x.shape[1])

    def pretrain_set(self) -> Dataset[torch.Tensor]:
        return _Unlabelled(self.x[torch.as_tensor(self._splits["train"])])

    def labelled_split(self, split: str) -> TensorDataset | None:
        idx = self._splits.get(split)
        if idx is None:
            return None
        i = torch.as_tensor(idx)
        return TensorDataset(self.x[i], self.y[i])

    def split_indices(self, split: str) -> np.ndarray:
        return self._splits[split]

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return apply_views(batch, self.views, generator)[0]

    def augment_with_rotation(self, batch: torch.Tensor, generator: torch.Generator
                              ) -> tuple[torch.Tensor, torch.Tensor]:
        """A view and the rotation ``[B, 3, 3]`` it applied (equivariant objectives)."""
        return apply_views(batch, self.views, generator)

    def describe(self) -> dict[str, Any]:
        return {"clouds": int(self.x.shape[0]), "points": self.n_points,
                "classes": len(self.classes),
                **{f"n_{k}": len(v) for k, v in self._splits.items()}}
