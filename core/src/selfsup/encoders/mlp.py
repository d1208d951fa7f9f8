"""A multilayer perceptron encoder for flat ``vector`` samples ``[B, F] -> [B, D]``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from selfsup.components import SSLDataset

NORMS = ("batch", "layer", "none")


class MLPEncoder(nn.Module):
    """Linear -> norm -> ReLU blocks, then a linear map to ``embed_dim``.

    Offers the ``embedding`` face and the ``stages`` face (each block's output).
    """

    def __init__(
        self, in_dim: int, hidden_dims: Sequence[int] = (256, 256), embed_dim: int = 128,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        if norm not in NORMS:
            raise ValueError(f"core.mlp: norm={norm!r} must be one of {NORMS}")
        if in_dim < 1 or embed_dim < 1 or any(h < 1 for h in hidden_dims):
            raise ValueError(
                f"core.mlp: dimensions must be positive (in_dim={in_dim}, "
                f"hidden_dims={list(hidden_dims)}, embed_dim={embed_dim})"
            )
        layers: list[nn.Module] = []
        prev = in_dim
        for h in hidden_dims:
            layers.append(nn.Linear(prev, h))
            if norm == "batch":
                layers.append(nn.BatchNorm1d(h))
            elif norm == "layer":
                layers.append(nn.LayerNorm(h))
            layers.append(nn.ReLU(inplace=True))
            prev = h
        layers.append(nn.Linear(prev, embed_dim))
        self.net = nn.Sequential(*layers)
        self.embed_dim = embed_dim
        self.in_dim = in_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B, embed_dim]`` of flat inputs ``[B, in_dim]``."""
        self._check(x)
        return self.net(x)

    def stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The output of each hidden block (after its ReLU) and the embedding, in order.

        ``[B, hidden_dims[0]], ..., [B, hidden_dims[-1]], [B, embed_dim]``.
        """
        self._check(x)
        out = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                out.append(x)
        return [*out, x]

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"core.mlp expects [B, {self.in_dim}] inputs, got {tuple(x.shape)}"
            )


def build(dataset: SSLDataset, **options: Any) -> MLPEncoder:
    in_dim = getattr(dataset, "input_dim", None)
    if not isinstance(in_dim, int):
        raise TypeError(
            f"core.mlp needs a dataset with an integer 'input_dim'; {dataset.name!r} has none"
        )
    return MLPEncoder(in_dim, **options)
