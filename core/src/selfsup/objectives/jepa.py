"""JEPA: predict an EMA target encoder's token states of hidden blocks from the rest.

Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun & Ballas,
"Self-Supervised Learning from Images with a Joint-Embedding Predictive
Architecture" (I-JEPA), CVPR 2023 (arXiv:2301.08243). A context encoder sees a
sample with some target blocks of tokens hidden; a predictor regresses, at each
hidden position, the token state that a target encoder (an exponential moving
average of the context encoder, no gradient) gives for the full sample, layer-normed
over the feature dimension (paper §3 and Eq. 1: the average L2 distance between
predicted and target representations of the target blocks). Nothing is reconstructed
in input space and no views are drawn: the loss lives in representation space.

Littwin, Saremi, Advani, Thilak, Nakkiran, Huang & Susskind, "How JEPA Avoids
Noisy Features: The Implicit Bias of Deep Linear Self Distillation Networks",
NeurIPS 2024 (arXiv:2407.03475), explain what this buys: in deep linear networks,
self-distillation with a stop-gradient target learns first the features that are
*predictive* (high regression coefficient between the visible and hidden parts),
while reconstruction (MAE) learns first those of high variance, noisy ones
included. ``core/tests/test_jepa.py`` reproduces that ordering.

The flow of one step (:class:`JEPA`):

1. ``target_encoder.tokens(batch)`` (no gradient, eval mode) -> ``[B, T, D]``
   targets, layer-normed over ``D`` without affine parameters (as I-JEPA's code).
2. :func:`sample_block_mask`: ``n_blocks`` contiguous spans, each of
   ``round(block_fraction * n)`` of a sample's ``n`` real tokens (counted in the
   order of ``tokens(batch)``, padding skipped), at uniform random starts; blocks
   may overlap, and a block that would hide more than ``max_ratio * n`` tokens is
   skipped (the first is always kept). Every sample with at least two real tokens
   keeps at least one hidden and one visible token; a sample with fewer hides none.
3. ``encoder.masked_tokens(batch, hide)``: the online (context) encoder's states,
   in which no state depends on a hidden token's content.
4. :class:`JEPAPredictor`: the online states projected to ``predictor_dim``, a
   learned mask token *added* at the hidden positions (where the online state
   carries the position and the visible context, but no content), then a small
   pre-norm transformer over all real tokens (``predictor="transformer"``, the
   default, as I-JEPA's narrow ViT predictor) or a per-token MLP
   (``predictor="mlp"``), projected back to ``D``.
5. :class:`JEPALoss`: the squared error averaged over the hidden real tokens of the
   batch and over ``D`` (``loss="l2"``; the paper's squared L2 distance divided by
   ``D``, so its scale does not grow with the width), or the smooth-L1 loss of
   I-JEPA's released code (``loss="smooth_l1"``).
6. After each optimiser step the target moves towards the online encoder by BYOL's
   EMA, ``tau`` rising from ``tau_base`` to 1 on a cosine schedule
   (:func:`selfsup.objectives.byol.target_momentum`).

Where this differs from I-JEPA, and why:

* The context encoder sees *every* token, with a learned mask embedding in place of
  each hidden token's input embedding, instead of dropping the hidden tokens (and
  those outside the context block) from its input. That is closer to data2vec's
  input masking (Baevski et al., ICML 2022) than to I-JEPA. The reason is the
  generic face: ``masked_tokens(batch, hide)`` keeps ``T`` and the padding of
  ``tokens(batch)`` so that one objective runs on spectrogram and point patches,
  SMILES tokens and graph nodes alike, where dropping tokens would need each
  modality's own re-batching. It costs the compute I-JEPA saves by not encoding
  masked tokens, and the predictor sees the hidden positions through the online
  states rather than through positional embeddings of its own (which a graph's
  nodes do not have).
* There is one mask per sample (hidden target blocks; the context is everything
  else) rather than a separately sampled context block; block lengths are a fixed
  share of the sample's real tokens, in one dimension (the order of the tokens),
  not 2-D blocks of random scale and aspect ratio.
* The EMA schedule is BYOL's cosine rise to 1 (core's ``target_momentum``), not
  I-JEPA's linear one; the target encoder runs in eval mode (no dropout; its
  buffers, e.g. BatchNorm statistics, are copied from the online encoder at each
  update), and the exported encoder is the online one (``task.encoder``), where
  I-JEPA evaluates the target encoder.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import PretextTask, SSLDataset, Tokens
from selfsup.objectives.byol import target_momentum
from selfsup.objectives.projection import encoder_dim
from selfsup.options import (
    fraction,
    one_of,
    open_unit,
    option,
    parse_options,
    positive_int,
    unit_interval,
)

NAME = "core.jepa"
PREDICTORS: tuple[str, ...] = ("transformer", "mlp")
LOSSES: tuple[str, ...] = ("l2", "smooth_l1")


@dataclass(frozen=True)
class JEPAConfig:
    """``core.jepa`` options; ``build(..., **options)`` accepts these field names.

    I-JEPA hides 4 target blocks of 15-20% of the image each and keeps ``tau_base``
    0.996; its predictor is a narrow ViT (width 384, depth 6-12), here a small one
    sized for a CPU.
    """

    tau_base: float = option(
        0.996, fraction, "EMA momentum of the target encoder at step 0 (cosine to 1)")
    n_blocks: int = option(4, positive_int, "hidden target blocks per sample")
    block_fraction: float = option(
        0.15, open_unit, "length of each block, a share of the sample's real tokens")
    max_ratio: float = option(
        0.75, unit_interval, "at most this share of a sample's real tokens is hidden "
        "(a block that would exceed it is skipped; the first is always kept)")
    predictor: str = option("transformer", one_of(*PREDICTORS),
                            "predictor over tokens: transformer or per-token mlp")
    predictor_dim: int = option(64, positive_int, "width of the predictor")
    predictor_depth: int = option(2, positive_int, "transformer layers of the predictor")
    predictor_heads: int = option(4, positive_int, "attention heads of the predictor")
    loss: str = option("l2", one_of(*LOSSES),
                       "l2 (squared error, the paper) or smooth_l1 (I-JEPA's code)")

    def __post_init__(self) -> None:
        if positive_int(self.predictor_dim) or positive_int(self.predictor_heads):
            return  # parse_options reports the field itself
        if self.predictor == "transformer" and self.predictor_dim % self.predictor_heads:
            raise ValueError(
                f"{NAME}: predictor_dim={self.predictor_dim} must be divisible by "
                f"predictor_heads={self.predictor_heads}"
            )


# -- masks ------------------------------------------------------------------------------


def block_mask(
    mask: torch.Tensor, draws: torch.Tensor, block_fraction: float, max_ratio: float
) -> torch.Tensor:
    """The hidden tokens ``[B, T]`` (bool) for given uniform ``draws`` ``[n_blocks, B]``.

    ``mask`` ``[B, T]``: the real tokens. For a sample of ``n >= 2`` real tokens, block
    ``k`` has length ``L = min(max(round(block_fraction * n), 1), n - 1)`` and starts
    at real token ``floor(draws[k] * (n - L + 1))`` (counting real tokens only); it is
    added unless the union would then hide more than
    ``cap = min(max(floor(max_ratio * n), 1), n - 1)`` tokens (block 0 is always
    added). A sample with fewer than two real tokens hides none.
    """
    if mask.ndim != 2 or mask.dtype != torch.bool:
        raise ValueError(f"{NAME}: the token mask must be bool [B, T], got {mask.dtype} "
                         f"{tuple(mask.shape)}")
    if draws.ndim != 2 or draws.shape[1] != mask.shape[0]:
        raise ValueError(f"{NAME}: draws must be [n_blocks, B={mask.shape[0]}], got "
                         f"{tuple(draws.shape)}")
    n = mask.sum(dim=1).double()  # [B]
    rank = (mask.long().cumsum(dim=1) - 1).double()  # position among the real tokens
    eligible = n >= 2
    length = torch.minimum(torch.round(block_fraction * n).clamp_min(1), (n - 1).clamp_min(1))
    cap = torch.minimum(torch.floor(max_ratio * n).clamp_min(1), (n - 1).clamp_min(1))
    hide = torch.zeros_like(mask)
    for k, u in enumerate(draws.to(mask.device).double()):
        start = torch.floor(u * (n - length + 1))
        block = mask & (rank >= start[:, None]) & (rank < (start + length)[:, None])
        grown = hide | block
        keep = eligible & ((grown.sum(dim=1) <= cap) if k else torch.ones_like(eligible))
        hide = torch.where(keep[:, None], grown, hide)
    return hide


def sample_block_mask(
    mask: torch.Tensor, generator: torch.Generator, n_blocks: int, block_fraction: float,
    max_ratio: float,
) -> torch.Tensor:
    """:func:`block_mask` with ``draws`` from ``generator`` (on the generator's device)."""
    draws = torch.rand(n_blocks, mask.shape[0], generator=generator, device=generator.device)
    return block_mask(mask, draws, block_fraction, max_ratio)


# -- predictor and loss -----------------------------------------------------------------


class JEPAPredictor(nn.Module):
    """Online token states ``[B, T, D]`` -> predicted target states ``[B, T, D]``.

    ``x = Linear(D -> P)(states) + hide * mask_token``, then (``transformer``) a
    pre-norm ``nn.TransformerEncoder`` over the real tokens, or (``mlp``) nothing that
    mixes tokens; then LayerNorm and ``Linear(P -> D)`` (with a GELU before it for the
    MLP). Only the hidden positions' outputs enter the loss.
    """

    def __init__(self, dim: int, config: JEPAConfig) -> None:
        super().__init__()
        width = config.predictor_dim
        self.kind = config.predictor
        self.embed = nn.Linear(dim, width)
        self.mask_token = nn.Parameter(torch.zeros(width))
        nn.init.trunc_normal_(self.mask_token, std=0.02)
        self.blocks: nn.Module | None = None
        if self.kind == "transformer":
            layer = nn.TransformerEncoderLayer(
                width, config.predictor_heads, dim_feedforward=2 * width, dropout=0.0,
                activation="gelu", batch_first=True, norm_first=True,
            )
            self.blocks = nn.TransformerEncoder(layer, config.predictor_depth,
                                                enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, states: torch.Tensor, hide: torch.Tensor,
                mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(states) + hide[..., None].to(states.dtype) * self.mask_token
        if self.blocks is not None:
            x = self.blocks(x, src_key_padding_mask=~mask)
            return self.out(self.norm(x))  # type: ignore[no-any-return]
        return self.out(F.gelu(self.norm(x)))  # type: ignore[no-any-return]


class JEPALoss(nn.Module):
    """Regression of the target states at the hidden real tokens.

    ``forward(pred, target, hide)``: ``pred`` and ``target`` ``[B, T, D]``, ``hide``
    ``[B, T]`` bool (hidden real tokens). ``l2``: ``mean_{(b,t) hidden} mean_d (pred -
    target)^2``; ``smooth_l1``: the same mean of ``F.smooth_l1_loss`` (beta 1). The
    target is detached.
    """

    def __init__(self, kind: Literal["l2", "smooth_l1"] | str = "l2") -> None:
        super().__init__()
        if kind not in LOSSES:
            raise ValueError(f"{NAME}: loss={kind!r} must be one of {LOSSES}")
        self.kind = kind

    def forward(self, pred: torch.Tensor, target: torch.Tensor,
                hide: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape or pred.ndim != 3 or hide.shape != pred.shape[:2]:
            raise ValueError(
                f"JEPALoss expects pred and target [B, T, D] and hide [B, T], got "
                f"{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(hide.shape)}"
            )
        if not hide.any():
            raise ValueError(
                "JEPALoss: no token is hidden; every sample has fewer than two real tokens "
                "(one must stay visible and one be hidden)"
            )
        p, t = pred[hide], target[hide].detach()
        if self.kind == "l2":
            return F.mse_loss(p, t)
        return F.smooth_l1_loss(p, t, beta=1.0)


# -- the pretext task -------------------------------------------------------------------


class JEPA(nn.Module, PretextTask):
    """The JEPA pretext task on an encoder offering ``tokens`` and ``masked_tokens``.

    ``target_encoder`` is a copy of the online encoder made at construction, with
    ``requires_grad=False``, kept in eval mode. ``forward(batch, generator)`` returns
    ``{"loss", "embedding", "tau", "hidden"}``: ``embedding`` is the mean of the online
    masked states over real tokens ``[B, D]`` (detached, for the collapse
    diagnostics), ``hidden`` the share of real tokens hidden.
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: JEPAConfig) -> None:
        super().__init__()
        for method in ("tokens", "masked_tokens"):
            if not callable(getattr(encoder, method, None)):
                raise TypeError(
                    f"{NAME} needs an encoder offering the 'tokens' and 'masked_tokens' "
                    f"faces; {type(encoder).__name__} has no {method}(batch...) method"
                )
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        dim = encoder_dim(encoder, NAME)
        self.predictor = JEPAPredictor(dim, config)
        self.target_encoder: Any = copy.deepcopy(encoder)
        self.target_encoder.requires_grad_(False)
        self.target_encoder.eval()
        self.criterion = JEPALoss(config.loss)
        self.tau = config.tau_base

    def train(self, mode: bool = True) -> JEPA:
        super().train(mode)
        self.target_encoder.eval()  # targets without dropout, in every mode
        return self

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            full: Tokens = self.target_encoder.tokens(batch)
            target = F.layer_norm(full.states, full.states.shape[-1:])
        c = self.config
        hide = sample_block_mask(full.mask, generator, c.n_blocks, c.block_fraction,
                                 c.max_ratio)
        online: Tokens = self.encoder.masked_tokens(batch, hide)
        pred = self.predictor(online.states, hide, full.mask)
        loss = self.criterion(pred, target, hide)
        weights = full.mask.to(online.states.dtype).unsqueeze(-1)
        embedding = (online.states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        hidden = hide.sum() / full.mask.sum().clamp_min(1)
        return {"loss": loss, "embedding": embedding.detach(),
                "tau": loss.new_tensor(self.tau), "hidden": hidden.detach().to(loss.dtype)}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """EMA update of the target after optimiser step ``step`` of ``total_steps``
        (BYOL's cosine schedule, :func:`selfsup.objectives.byol.target_momentum`)."""
        self.tau = target_momentum(step, total_steps, self.config.tau_base)
        self.update_target(self.tau)

    @torch.no_grad()
    def update_target(self, tau: float) -> None:
        """``target <- tau * target + (1 - tau) * online`` for every parameter; buffers
        (e.g. BatchNorm statistics) are copied, the target running in eval mode."""
        target_params = list(self.target_encoder.parameters())
        online_params = list(self.encoder.parameters())
        if len(target_params) != len(online_params):
            raise RuntimeError(
                f"{NAME}: the online encoder's parameters changed after the target was "
                "copied; build the pretext task after modifying the encoder"
            )
        for t, o in zip(target_params, online_params, strict=True):
            t.lerp_(o.detach(), 1 - tau)
        for tb, ob in zip(self.target_encoder.buffers(), self.encoder.buffers(), strict=True):
            tb.copy_(ob)


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> JEPA:
    """``core.jepa`` factory; ``options`` are :class:`JEPAConfig` fields."""
    return JEPA(encoder, dataset, parse_options(JEPAConfig, options, NAME))
