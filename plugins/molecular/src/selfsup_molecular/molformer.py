"""A MoLFormer-style SMILES encoder: rotary position embeddings and linear attention.

Ross, Belgodere, Chenthamarakshan, Padhi, Mroueh & Das, "Large-scale chemical
language representations capture molecular structure and properties", Nature
Machine Intelligence 4, 1256-1264 (2022). MoLFormer is a BERT-style encoder over
SMILES tokens whose attention is the linear attention of Katharopoulos, Vyas,
Pappas & Fleuret, "Transformers are RNNs: Fast Autoregressive Transformers with
Linear Attention", ICML 2020, made position aware by the rotary embeddings of
Su, Lu, Pan, Murtadha, Wen & Liu, "RoFormer: Enhanced Transformer with Rotary
Position Embedding", arXiv:2104.09864 (2021). Its molecule embedding is the mean
of the last layer's token states over the real (non-padding) tokens.

Attention. With the feature map ``phi(x) = elu(x) + 1`` (Katharopoulos et al.,
Eq. 7) and the rotation ``R_m`` of position ``m``, the output at position ``m`` is
RoFormer's linear-attention form (Su et al., Eq. 19)::

    out_m = sum_n (R_m phi(q_m))^T (R_n phi(k_n)) v_n  /  sum_n phi(q_m)^T phi(k_n)

The numerator's score ``phi(q_m)^T R_{n-m} phi(k_n)`` depends on positions only
through ``n - m`` (exactly relative), and the normaliser stays positive because
it is not rotated. MoLFormer's released code rotates ``q`` and ``k`` before the
feature map instead; after a nonlinear ``phi`` that is only approximately
relative, so this module follows the RoFormer paper. Both sums are computed in
``O(L D^2)`` by first contracting keys with values. Padding is removed by zeroing
the padded keys' features, so a padded position contributes to no sum.

Faces (``selfsup.api``): ``embedding`` (:meth:`MolFormerEncoder.embed`, the
mean-pooled ``[B, D]`` molecule embedding, also ``forward``), ``tokens``
(:meth:`MolFormerEncoder.tokens`, the last layer's ``[B, L, D]`` token states with
the batch's attention mask), which token-level pretexts such as ``molecular.mlm``
train, and ``masked_tokens`` (:meth:`MolFormerEncoder.masked_tokens`: the same with
the hidden tokens' ids replaced by ``<mask>`` before the embedding lookup, so a
hidden token is the learned ``<mask>`` embedding that ``molecular.mlm`` also
trains, at its own position), which ``core.jepa`` trains. Changed in 0.2: ``tokens``
replaces the ``token_states`` method that pretexts probed for; ``token_states`` stays
as the computation the faces share.

Defaults are small so that pretraining runs on a laptop CPU: width 128, 4
layers of 4 heads, feed-forward width 256, dropout 0.1 (0.53M parameters
plus the embedding table). MoLFormer-XL is 768 wide with 12 layers and 12 heads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    SSLDataset,
    Tokens,
    fraction,
    option,
    parse_options,
    positive,
    positive_int,
)

#: The batch keys the encoder reads (see the dataset's ``collate``).
INPUT_IDS, ATTENTION_MASK = "input_ids", "attention_mask"


def _above_one(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and x > 1
    return None if ok else "be a number > 1"


@dataclass(frozen=True)
class MolFormerConfig:
    """Options of :func:`build` (``molecular.molformer``).

    ``embed_dim / n_heads`` must be even, since rotary embeddings rotate pairs of
    dimensions; the per-field checks run in :func:`build` (``parse_options``).
    """

    embed_dim: int = option(128, positive_int, "token and molecule embedding width")
    n_layers: int = option(4, positive_int, "transformer blocks")
    n_heads: int = option(4, positive_int, "attention heads (embed_dim / n_heads even)")
    ffn_dim: int = option(256, positive_int, "hidden width of the GELU feed-forward layer")
    dropout: float = option(0.1, fraction, "dropout on embeddings, attention and FFN outputs")
    rotary_base: float = option(10000.0, _above_one,
                                "RoFormer frequency base: theta_i = base^(-2i/d)")
    eps: float = option(1e-6, positive, "added to the attention normaliser")

    def __post_init__(self) -> None:
        heads, dim = self.n_heads, self.embed_dim
        if not (positive_int(heads) is None and positive_int(dim) is None):
            return  # parse_options reports the field itself
        if dim % heads or (dim // heads) % 2:
            raise ValueError(
                f"molecular.molformer: embed_dim={dim} must split into n_heads={heads} "
                "heads of even width (rotary embeddings rotate pairs); e.g. embed_dim=128 "
                "with n_heads=4 or 8"
            )


# -- rotary position embeddings ---------------------------------------------------------


def rotary_angles(
    positions: torch.Tensor, dim: int, base: float = 10000.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of the rotation angles ``m * theta_i``, each ``[L, dim]``.

    ``positions``: ``[L]`` (any real numbers). Frequencies ``theta_i =
    base^(-2i/dim)`` for ``i < dim/2`` (RoFormer, Eq. 15), each repeated for the two
    halves of the vector, the layout :func:`apply_rotary` rotates.
    """
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float32, device=positions.device)
                        / dim)
    angles = positions.float()[:, None] * inv_freq[None, :]
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs ``(x_i, x_{i + d/2})`` of ``x`` ``[..., L, d]`` by their angles.

    The "rotate half" layout: equal to RoFormer's interleaved pairs up to a fixed
    permutation of dimensions, so ``<R_m a, R_n b> = <a, R_{n-m} b>`` holds as in
    the paper.
    """
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


# -- linear attention -------------------------------------------------------------------


def feature_map(x: torch.Tensor) -> torch.Tensor:
    """``elu(x) + 1``: the positive feature map of Katharopoulos et al. (2020), Eq. 7."""
    return F.elu(x) + 1.0


def rotary_linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    key_mask: torch.Tensor | None,
    cos: torch.Tensor,
    sin: torch.Tensor,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Kernelised attention with rotary scores (module docstring), in ``O(L d^2)``.

    ``q, k, v``: ``[B, H, L, d]``; ``key_mask``: ``[B, L]``, True on real tokens
    (None: all real); ``cos, sin``: ``[L, d]`` from :func:`rotary_angles`.
    Returns ``[B, H, L, d]``.
    """
    phi_q = feature_map(q)
    phi_k = feature_map(k)
    if key_mask is not None:
        phi_k = phi_k * key_mask[:, None, :, None].to(phi_k.dtype)
    rot_q = apply_rotary(phi_q, cos, sin)
    rot_k = apply_rotary(phi_k, cos, sin)
    kv = torch.einsum("bhld,bhle->bhde", rot_k, v)  # sum over keys first: O(L d^2)
    numerator = torch.einsum("bhld,bhde->bhle", rot_q, kv)
    normaliser = torch.einsum("bhld,bhd->bhl", phi_q, phi_k.sum(dim=2))
    return numerator / (normaliser[..., None] + eps)


class RotaryLinearAttention(nn.Module):
    """Multi-head linear attention with rotary position embeddings: ``[B, L, D] -> [B, L, D]``."""

    def __init__(self, config: MolFormerConfig) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.head_dim = config.embed_dim // config.n_heads
        self.rotary_base = config.rotary_base
        self.eps = config.eps
        self.qkv = nn.Linear(config.embed_dim, 3 * config.embed_dim)
        self.out = nn.Linear(config.embed_dim, config.embed_dim)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``positions`` ``[L]`` defaults to ``0..L-1``; an offset leaves the output unchanged."""
        b, length, _ = x.shape
        q, k, v = (
            t.view(b, length, self.n_heads, self.head_dim).transpose(1, 2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        if positions is None:
            positions = torch.arange(length, device=x.device)
        cos, sin = rotary_angles(positions, self.head_dim, self.rotary_base)
        y = rotary_linear_attention(q, k, v, mask, cos, sin, self.eps)
        return self.out(y.transpose(1, 2).reshape(b, length, -1))


class Block(nn.Module):
    """A pre-norm transformer block: ``x + attn(LN(x))``, then ``x + FFN(LN(x))``."""

    def __init__(self, config: MolFormerConfig) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(config.embed_dim)
        self.attn = RotaryLinearAttention(config)
        self.norm2 = nn.LayerNorm(config.embed_dim)
        self.ffn = nn.Sequential(
            nn.Linear(config.embed_dim, config.ffn_dim),
            nn.GELU(),
            nn.Linear(config.ffn_dim, config.embed_dim),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), mask, positions))
        return x + self.dropout(self.ffn(self.norm2(x)))


# -- the encoder ------------------------------------------------------------------------


class MolFormerEncoder(nn.Module):
    """SMILES tokens ``[B, L]`` to molecule embeddings ``[B, embed_dim]``.

    Every face takes the dataset's collated batch (``input_ids`` ``[B, L]`` and
    ``attention_mask`` ``[B, L]``, True on real tokens). :meth:`embed` (and
    ``forward``) returns the masked mean of :meth:`token_states` over the real
    tokens; :meth:`tokens` returns the states with the mask. A molecule's embedding
    does not depend on how much padding its batch adds (padding is masked out of
    every key and out of the pool, and positions count from the first token).
    """

    def __init__(self, vocab_size: int, pad_id: int, config: MolFormerConfig,
                 mask_id: int | None = None) -> None:
        super().__init__()
        if vocab_size < 2:
            raise ValueError(f"MolFormerEncoder: vocab_size must be >= 2, got {vocab_size}")
        if not 0 <= pad_id < vocab_size:
            raise ValueError(f"MolFormerEncoder: pad_id {pad_id} is outside the vocabulary "
                             f"of {vocab_size} tokens")
        if mask_id is not None and not 0 <= mask_id < vocab_size:
            raise ValueError(f"MolFormerEncoder: mask_id {mask_id} is outside the vocabulary "
                             f"of {vocab_size} tokens")
        self.config = config
        self.vocab_size = vocab_size
        self.pad_id = pad_id
        self.mask_id = mask_id
        self.embed_dim: int = config.embed_dim
        self.token_embedding = nn.Embedding(vocab_size, config.embed_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.norm = nn.LayerNorm(config.embed_dim)
        self.apply(_init_weights)

    def token_states(
        self, batch: Mapping[str, Any], positions: torch.Tensor | None = None,
        hide: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last-layer token states ``[B, L, embed_dim]`` (padded positions included);
        ``hide`` ``[B, L]`` (bool) replaces those tokens by ``<mask>`` first."""
        ids, mask = _inputs(batch)
        if hide is not None:
            if self.mask_id is None:
                raise TypeError("MolFormerEncoder: hiding tokens needs the tokenizer's "
                                "mask_id; build the encoder with build(dataset)")
            if hide.shape != ids.shape or hide.dtype != torch.bool:
                raise ValueError(f"MolFormerEncoder: hide must be bool [B, L] = "
                                 f"{list(ids.shape)}, got {hide.dtype} {list(hide.shape)}")
            ids = ids.masked_fill(hide, self.mask_id)
        x = self.dropout(self.token_embedding(ids))
        for block in self.blocks:
            x = block(x, mask, positions)
        return self.norm(x)

    @staticmethod
    def pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean of ``states`` ``[B, L, D]`` over the positions where ``mask`` is True."""
        weights = mask.to(states.dtype).unsqueeze(-1)
        return (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)

    def embed(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The ``embedding`` face: mean of the token states over real tokens, ``[B, D]``."""
        _, mask = _inputs(batch)
        return self.pool(self.token_states(batch), mask)

    def tokens(self, batch: Mapping[str, Any]) -> Tokens:
        """The ``tokens`` face: states ``[B, L, D]`` and the batch's mask ``[B, L]``
        (True on real tokens, ``<bos>`` and ``<eos>`` included)."""
        _, mask = _inputs(batch)
        return Tokens(self.token_states(batch), mask)

    def masked_tokens(self, batch: Mapping[str, Any], hide: torch.Tensor) -> Tokens:
        """The ``masked_tokens`` face: :meth:`tokens` with the tokens where ``hide``
        ``[B, L]`` is True read as ``<mask>`` (their content reaches no state)."""
        _, mask = _inputs(batch)
        return Tokens(self.token_states(batch, hide=hide), mask)

    def forward(self, batch: Mapping[str, Any]) -> torch.Tensor:
        return self.embed(batch)


def _inputs(batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, Mapping) or INPUT_IDS not in batch:
        raise TypeError(
            "MolFormerEncoder expects a collated SMILES batch, a dict with 'input_ids' "
            f"[B, L] and 'attention_mask' [B, L]; got {type(batch).__name__}. Collate "
            "samples with the dataset's collate()"
        )
    ids = batch[INPUT_IDS]
    mask = batch.get(ATTENTION_MASK)
    if mask is None:
        mask = torch.ones_like(ids, dtype=torch.bool)
    return ids, mask.bool()


def _init_weights(module: nn.Module) -> None:
    # BERT's initialisation (normal, std 0.02), which MoLFormer inherits.
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()


def build(dataset: SSLDataset, **options: Any) -> MolFormerEncoder:
    """``molecular.molformer`` factory; ``options`` are :class:`MolFormerConfig` fields.

    The vocabulary size, padding and ``<mask>`` ids come from ``dataset.tokenizer``.
    """
    tokenizer = getattr(dataset, "tokenizer", None)
    if tokenizer is None:
        raise TypeError(
            f"molecular.molformer needs a SMILES dataset with a 'tokenizer' attribute "
            f"(vocab_size, pad_id); dataset {dataset.name!r} ({type(dataset).__name__}) "
            "has none. Use a molecular.* dataset"
        )
    config = parse_options(MolFormerConfig, options, "molecular.molformer")
    mask_id = getattr(tokenizer, "mask_id", None)
    return MolFormerEncoder(int(tokenizer.vocab_size), int(tokenizer.pad_id), config,
                            None if mask_id is None else int(mask_id))
