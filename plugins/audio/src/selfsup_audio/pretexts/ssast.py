"""SSAST: joint discriminative and generative masked spectrogram patch modelling.

Gong, Lai, Chung & Glass, "SSAST: Self-Supervised Audio Spectrogram Transformer",
AAAI 2022, arXiv:2110.09784. A share of the spectrogram's tokens (patches or
frames) is hidden: their patch embedding is replaced by a learned mask embedding
before the transformer (the encoder's ``masked_tokens`` face). From the output
state of each hidden token two heads (``Linear -> ReLU -> Linear``) predict:

- *discriminative* (masked patch classification): a vector ``c_i`` scored against
  the true (normalised, flattened) content ``x_j`` of every hidden patch of the
  same clip; InfoNCE ``-log softmax_j(x_j . c_i)[i]`` picks the right one;
- *generative* (masked patch reconstruction): the patch content itself, by MSE.

``loss = nce + generative_weight * mse`` (the paper's lambda = 10). Masking follows
the paper: in patch tokenisation, clusters of adjacent patches (a random square of
side 3-5 patches, SSAST's ``gen_maskid_patch``) until ``mask_ratio`` of the tokens
are hidden; in frame tokenisation, tokens drawn uniformly (clustering frames hurt).

Where this differs from the authors' code (github.com/YuanGongND/ssast,
``src/models/ast_models.py``), read for understanding, not copied:

- one forward pass with one mask feeds both heads; the authors' ``pretrain_joint``
  runs the discriminative and the generative pass separately, each with its own
  mask (twice the compute);
- the softmax of the InfoNCE runs over the candidate patches for each prediction,
  as the paper's equation (1) writes it; the code's softmax runs over predictions
  for each patch (the difference the authors discuss in their issue #13);
- the mask is a share of the tokens (the clips here are 1 s: 48 patches, not the
  paper's 512 with 400 hidden), drawn from the trainer's generator, so a resumed run
  hides the same tokens;
- the discriminative head maps to the patch's own size, not to a fixed 256.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import PretextTask, SSLDataset, non_negative, option, parse_options, positive

NAME = "audio.ssast"


def _ratio(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x < 1
    return None if ok else "be in (0, 1)"


@dataclass(frozen=True)
class SSASTConfig:
    """Options of ``audio.ssast``."""

    mask_ratio: float = option(0.5, _ratio, "share of tokens hidden per clip")
    generative_weight: float = option(10.0, non_negative,
                                      "weight of the reconstruction MSE (paper: 10)")
    discriminative_weight: float = option(1.0, non_negative, "weight of the InfoNCE")
    temperature: float = option(1.0, positive, "InfoNCE temperature (paper: 1)")


def cluster_mask(grid: tuple[int, int], n_hide: int, generator: torch.Generator) -> torch.Tensor:
    """SSAST's patch masking for one clip: ``[F' * T']`` bool, ``n_hide`` True.

    Squares of side 3-5 patches (one side per clip) at random corners are added until
    ``n_hide`` tokens are covered; the overshoot of the last square is trimmed at random.
    """
    rows, cols = grid
    hidden = torch.zeros(rows, cols, dtype=torch.bool)
    side = int(torch.randint(3, 6, (), generator=generator))
    while int(hidden.sum()) < n_hide:
        r = int(torch.randint(rows, (), generator=generator))
        c = int(torch.randint(cols, (), generator=generator))
        hidden[r:r + side, c:c + side] = True
    flat = hidden.flatten()
    extra = int(flat.sum()) - n_hide
    if extra > 0:
        on = flat.nonzero().flatten()
        drop = on[torch.randperm(len(on), generator=generator)[:extra]]
        flat[drop] = False
    return flat


def random_mask(n_tokens: int, n_hide: int, generator: torch.Generator) -> torch.Tensor:
    flat = torch.zeros(n_tokens, dtype=torch.bool)
    flat[torch.randperm(n_tokens, generator=generator)[:n_hide]] = True
    return flat


def _head(dim: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))


class SSAST(nn.Module, PretextTask):
    """The SSAST pretext (see the module). ``forward`` returns ``loss``, ``nce``,
    ``mse``, ``accuracy`` (the share of hidden patches the discriminative head
    picks out) and the encoder's ``embedding`` of the masked batch."""

    def __init__(self, encoder: nn.Module, config: SSASTConfig) -> None:
        super().__init__()
        patchify = getattr(encoder, "patchify", None)
        grid = getattr(encoder, "grid", None)
        if not callable(patchify) or grid is None:
            raise TypeError(f"{NAME} needs an encoder with patchify(batch) and a token grid "
                            f"(audio.ast); {type(encoder).__name__} has neither")
        self.encoder = encoder
        self.config = config
        self.grid = tuple(grid)
        self.cluster = self.grid[0] > 1  # patches tile frequency; frames span it
        dim = int(getattr(encoder, "embed_dim"))  # noqa: B009 - an nn.Module attribute
        patch = getattr(encoder, "patch")  # noqa: B009
        size = int(patch[0] * patch[1])
        self.discriminative = _head(dim, size)
        self.generative = _head(dim, size)

    def masks(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        n_tokens = self.grid[0] * self.grid[1]
        n_hide = max(2, min(n_tokens - 1, round(self.config.mask_ratio * n_tokens)))
        g = torch.Generator().manual_seed(
            int(torch.randint(2**62, (), generator=generator, device=generator.device)))
        make = (lambda: cluster_mask(self.grid, n_hide, g)) if self.cluster else (
            lambda: random_mask(n_tokens, n_hide, g))
        return torch.stack([make() for _ in range(batch_size)])

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, torch.Tensor]:
        hide = self.masks(batch.shape[0], generator).to(batch.device)
        target = self.encoder.patchify(batch).detach()  # [B, T, P]
        states = self.encoder.masked_tokens(batch, hide).states
        b, n_hide = hide.shape[0], int(hide[0].sum())
        h = states[hide].view(b, n_hide, -1)  # every clip hides the same count
        x = target[hide].view(b, n_hide, -1)
        c = self.discriminative(h)
        scores = torch.einsum("bip,bjp->bij", c, x) / self.config.temperature
        labels = torch.arange(n_hide, device=batch.device).expand(b, -1)
        nce = F.cross_entropy(scores.flatten(0, 1), labels.flatten())
        mse = F.mse_loss(self.generative(h), x)
        loss = self.config.discriminative_weight * nce + self.config.generative_weight * mse
        accuracy = (scores.argmax(-1) == labels).float().mean()
        return {"loss": loss, "nce": nce.detach(), "mse": mse.detach(),
                "accuracy": accuracy.detach(), "embedding": states.mean(dim=1).detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> SSAST:
    """``audio.ssast`` factory; ``options`` are :class:`SSASTConfig` fields."""
    return SSAST(encoder, parse_options(SSASTConfig, options, NAME))
