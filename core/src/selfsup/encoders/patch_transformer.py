"""A small transformer over patches of a flat ``vector`` sample ``[B, F]``.

Core's token encoder for vectors, so that token-level pretexts (``core.jepa``) run
on ``core.digits``. A sample of ``F`` features is cut into ``T = F / patch_size``
contiguous patches (features ``0..p-1``, ``p..2p-1``, ...); each patch is one token.
On ``core.digits`` (8x8 images stored row by row) ``patch_size=4`` makes 16 tokens,
each the left or right half of one image row, a 1x4 strip: one-dimensional patching
keeps the encoder free of any image layout, at the price of strips rather than the
2x2 squares a vision transformer would cut.

Architecture: a linear patch embedding ``p -> D``, learned position embeddings
``[T, D]``, a pre-norm ``nn.TransformerEncoder`` (``depth`` layers of ``n_heads``
heads, feed-forward ``mlp_ratio * D``, GELU) and a final LayerNorm. Every token is
real (no padding).

Faces: ``embedding`` (``embed``: the mean of the token states, ``[B, D]``; also
``forward``), ``tokens`` (``[B, T, D]`` states and an all-True mask) and
``masked_tokens`` (``masked_tokens(batch, hide)``: the patch embedding of each
hidden token is replaced by a learned mask embedding before the position is added
and before any attention, so no state depends on a hidden patch's features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.components import SSLDataset, Tokens
from selfsup.options import fraction, option, parse_options, positive, positive_int

NAME = "core.patch_transformer"


@dataclass(frozen=True)
class PatchTransformerConfig:
    """Options of ``core.patch_transformer``; ``embed_dim`` must split into ``n_heads``."""

    patch_size: int = option(4, positive_int, "features per patch (token); must divide F")
    embed_dim: int = option(64, positive_int, "token width D")
    depth: int = option(2, positive_int, "transformer layers")
    n_heads: int = option(4, positive_int, "attention heads")
    mlp_ratio: float = option(2.0, positive, "feed-forward width as a multiple of D")
    dropout: float = option(0.0, fraction, "dropout in the transformer layers")

    def __post_init__(self) -> None:
        if positive_int(self.embed_dim) or positive_int(self.n_heads):
            return  # parse_options reports the field itself
        if self.embed_dim % self.n_heads:
            raise ValueError(f"{NAME}: embed_dim={self.embed_dim} must be divisible by "
                             f"n_heads={self.n_heads}")


class PatchTransformer(nn.Module):
    """Patches of a ``[B, F]`` vector -> token states ``[B, F / patch_size, embed_dim]``."""

    def __init__(self, in_dim: int, config: PatchTransformerConfig | None = None) -> None:
        super().__init__()
        config = config or PatchTransformerConfig()
        patch_size, embed_dim = config.patch_size, config.embed_dim
        if in_dim < 1 or in_dim % patch_size:
            divisors = [d for d in range(1, in_dim + 1) if in_dim % d == 0]
            raise ValueError(
                f"{NAME}: patch_size={patch_size} does not cut the dataset's {in_dim} "
                f"features into whole patches; choose a patch_size among {divisors}"
            )
        self.config = config
        self.in_dim, self.patch_size = in_dim, patch_size
        self.n_tokens = in_dim // patch_size
        self.embed_dim: int = embed_dim
        self.patch_embedding = nn.Linear(patch_size, embed_dim)
        self.positions = nn.Parameter(torch.zeros(self.n_tokens, embed_dim))
        self.mask_embedding = nn.Parameter(torch.zeros(embed_dim))
        nn.init.trunc_normal_(self.positions, std=0.02)
        nn.init.trunc_normal_(self.mask_embedding, std=0.02)
        layer = nn.TransformerEncoderLayer(
            embed_dim, config.n_heads, dim_feedforward=max(1, round(config.mlp_ratio * embed_dim)),
            dropout=config.dropout, activation="gelu", batch_first=True, norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The ``embedding`` face: the mean of the token states, ``[B, embed_dim]``."""
        return self._states(x, None).mean(dim=1)

    def tokens(self, x: torch.Tensor) -> Tokens:
        """The ``tokens`` face: states ``[B, T, embed_dim]``, every token real."""
        states = self._states(x, None)
        return Tokens(states, states.new_ones(states.shape[:2], dtype=torch.bool))

    def masked_tokens(self, x: torch.Tensor, hide: torch.Tensor) -> Tokens:
        """The ``masked_tokens`` face: as :meth:`tokens`, with the patches where ``hide``
        ``[B, T]`` is True replaced by the mask embedding before anything mixes them."""
        if hide.shape != (x.shape[0], self.n_tokens) or hide.dtype != torch.bool:
            raise ValueError(f"{NAME}: hide must be bool [B, T] = [{x.shape[0]}, "
                             f"{self.n_tokens}], got {hide.dtype} {tuple(hide.shape)}")
        states = self._states(x, hide)
        return Tokens(states, states.new_ones(states.shape[:2], dtype=torch.bool))

    def _states(self, x: torch.Tensor, hide: torch.Tensor | None) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(f"{NAME} expects [B, {self.in_dim}] inputs, got {tuple(x.shape)}")
        h = self.patch_embedding(x.view(x.shape[0], self.n_tokens, self.patch_size))
        if hide is not None:
            h = torch.where(hide[..., None], self.mask_embedding.to(h.dtype), h)
        return self.norm(self.blocks(h + self.positions))  # type: ignore[no-any-return]


def build(dataset: SSLDataset, **options: Any) -> PatchTransformer:
    """``core.patch_transformer`` factory: the feature count from ``dataset.input_dim``."""
    in_dim = getattr(dataset, "input_dim", None)
    if not isinstance(in_dim, int):
        raise TypeError(f"{NAME} needs a vector dataset with an integer 'input_dim'; "
                        f"{dataset.name!r} has none")
    return PatchTransformer(in_dim, parse_options(PatchTransformerConfig, options, NAME))
