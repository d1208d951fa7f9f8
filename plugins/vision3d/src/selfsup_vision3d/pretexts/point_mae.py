"""Point-MAE: masked autoencoding of point patches.

Pang, Wang, Tay, Liu, Tian & Yuan, "Masked Autoencoders for Point Cloud
Self-supervised Learning", ECCV 2022, arXiv:2203.06604. A cloud is cut into patches
(farthest-point-sampled centres and their nearest points, the encoder's
:meth:`~selfsup_vision3d.encoders.PointTransformer.group`); a random ``mask_ratio``
of the patches is hidden (the paper's best: 0.6, random rather than block masking);
a light transformer decoder, given the encoder's states and the positions of every
centre, predicts the points of each hidden patch (``group_size x 3`` coordinates
relative to its centre, by one linear layer); the loss is the L2 Chamfer distance
between predicted and true patches (:func:`~selfsup_vision3d.geometry.chamfer_l2`).

Where this differs from the authors' code (github.com/Pang-Yatian/Point-MAE,
``models/Point_MAE.py``), read for understanding, not copied:

- the encoder runs on every token through the ``masked_tokens`` face, a hidden
  patch's embedding replaced by a learned mask embedding (with its centre's position
  embedding added); the paper's encoder drops the hidden tokens and the decoder
  appends mask tokens. Same information reaches the decoder (visible content, every
  centre's position), at the cost of encoding the hidden tokens too;
- the decoder adds its own position embedding of the centres to its input once, not
  before every block;
- the mask is drawn from the trainer's generator, so a resumed run hides the same
  patches;
- sizes are the encoder's (CPU default 32 patches of 16 points, not 64 of 32) and the
  decoder is 2 blocks (the paper: 4) of the encoder's width.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import PretextTask, SSLDataset, option, parse_options, positive_int

from ..geometry import chamfer_l2

NAME = "vision3d.point_mae"


def _ratio(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1
    return None if ok else "be in (0, 1)"


@dataclass(frozen=True)
class PointMAEConfig:
    """Options of ``vision3d.point_mae``."""

    mask_ratio: float = option(0.6, _ratio, "share of patches hidden per cloud (paper: 0.6)")
    decoder_depth: int = option(2, positive_int, "decoder transformer blocks (paper: 4)")
    decoder_heads: int = option(4, positive_int, "decoder attention heads")


class PointMAE(nn.Module, PretextTask):
    """The Point-MAE pretext (see the module). ``forward`` returns ``loss`` (the Chamfer
    distance) and the ``embedding`` of the masked batch (mean of the token states)."""

    def __init__(self, encoder: nn.Module, config: PointMAEConfig) -> None:
        super().__init__()
        if not callable(getattr(encoder, "group", None)):
            raise TypeError(f"{NAME} needs an encoder with group(batch) -> (patches, centres) "
                            f"(vision3d.point_transformer); {type(encoder).__name__} has none")
        self.encoder = encoder
        self.config = config
        d = int(getattr(encoder, "embed_dim"))  # noqa: B009 - an nn.Module attribute
        if d % config.decoder_heads:
            raise ValueError(f"{NAME}: the encoder width {d} is not divisible by "
                             f"decoder_heads={config.decoder_heads}")
        self.decoder_pos = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, d))
        layer = nn.TransformerEncoderLayer(d, config.decoder_heads, 2 * d, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.decoder = nn.TransformerEncoder(layer, config.decoder_depth,
                                             enable_nested_tensor=False)
        self.decoder_norm = nn.LayerNorm(d)
        self.group_size = int(getattr(encoder, "config").group_size)  # noqa: B009
        self.predict = nn.Linear(d, 3 * self.group_size)

    def masks(self, b: int, g: int, generator: torch.Generator) -> torch.Tensor:
        n_hide = max(1, min(g - 1, round(self.config.mask_ratio * g)))
        noise = torch.rand(b, g, generator=generator, device=generator.device)
        order = noise.argsort(dim=1)
        hide = torch.zeros(b, g, dtype=torch.bool, device=generator.device)
        hide.scatter_(1, order[:, :n_hide], True)
        return hide

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        patches, centres = self.encoder.group(batch)
        b, g, k, _ = patches.shape
        hide = self.masks(b, g, generator).to(batch.device)
        states = self.encoder.masked_tokens(batch, hide).states
        h = self.decoder_norm(self.decoder(states + self.decoder_pos(centres)))
        n_hide = int(hide[0].sum())
        pred = self.predict(h[hide]).view(b * n_hide, -1, 3)[:, :k]
        target = patches[hide].view(b * n_hide, k, 3)
        loss = chamfer_l2(pred, target)
        return {"loss": loss, "embedding": states.mean(dim=1).detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> PointMAE:
    """``vision3d.point_mae`` factory; ``options`` are :class:`PointMAEConfig` fields."""
    return PointMAE(encoder, parse_options(PointMAEConfig, options, NAME))
