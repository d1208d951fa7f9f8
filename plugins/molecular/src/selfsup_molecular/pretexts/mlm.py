"""Masked language modelling on SMILES tokens, as MoLFormer pretrains.

Ross, Belgodere, Chenthamarakshan, Padhi, Mroueh & Das, "Large-scale chemical
language representations capture molecular structure and properties", Nature
Machine Intelligence 4, 1256-1264 (2022), which takes the masking recipe of
BERT (Devlin, Chang, Lee & Toutanova, NAACL 2019, §3.1): 15% of the tokens are
chosen for prediction; of those, 80% are replaced by ``<mask>``, 10% by a random
token and 10% are kept; the loss is the cross entropy of the original token at
the chosen positions only.

Here the 15% are drawn among the molecule's own tokens: padding, ``<bos>``,
``<eos>``, ``<mask>`` and ``<unk>`` are never chosen (an ``<unk>`` target teaches
nothing), and random replacements are drawn from the non-special tokens. All
randomness comes from the trainer's generator, so a resumed run masks the same
positions. If a batch has no chosen position at all (short molecules, bad luck),
one maskable position is chosen so the loss stays defined.

Head: BERT's and MoLFormer's ``Linear -> GELU -> LayerNorm -> Linear`` on the
encoder's token states, read through the ``tokens`` face (``encoder.tokens(batch)``;
changed in 0.2: the task declares ``face="tokens"`` and the runner checks the
encoder before training, where it used to probe for a ``token_states`` method).
Its output layer is *untied* from the token embedding by default: MoLFormer's
language-model head is a separate layer, and at the small widths of a CPU run the
few thousand extra parameters cost nothing.
``tie_weights=True`` shares the embedding matrix instead (BERT's choice).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import PretextTask, SSLDataset, boolean, encoder_dim, option, parse_options

NAME = "molecular.mlm"


def _share(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 <= x <= 1
    return None if ok else "be in [0, 1]"


def _positive_share(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1
    return None if ok else "be in (0, 1]"


@dataclass(frozen=True)
class MLMConfig:
    """Options of :func:`build` (``molecular.mlm``); of the chosen tokens, the share
    ``1 - replace_mask - replace_random`` is kept."""

    mask_prob: float = option(0.15, _positive_share, "share of maskable tokens chosen")
    replace_mask: float = option(0.8, _share, "share of the chosen replaced by <mask>")
    replace_random: float = option(0.1, _share, "share of the chosen replaced by a random token")
    tie_weights: bool = option(False, boolean,
                               "share the output layer with the token embedding (BERT)")

    def __post_init__(self) -> None:
        if _share(self.replace_mask) or _share(self.replace_random):
            return  # parse_options reports the field itself
        if self.replace_mask + self.replace_random > 1:
            raise ValueError(
                f"{NAME}: replace_mask + replace_random = "
                f"{self.replace_mask + self.replace_random} must be <= 1 (the rest is kept)"
            )


def special_ids(tokenizer: Any) -> list[int]:
    """The ids never chosen for prediction nor drawn as random replacements."""
    names = ("pad_id", "unk_id", "bos_id", "eos_id", "mask_id")
    return sorted({int(getattr(tokenizer, n)) for n in names if hasattr(tokenizer, n)})


def mask_tokens(
    input_ids: torch.Tensor,
    maskable: torch.Tensor,
    generator: torch.Generator,
    *,
    mask_id: int,
    random_ids: torch.Tensor,
    config: MLMConfig,
) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking of ``input_ids`` ``[B, L]``: the corrupted ids and the chosen positions.

    ``maskable`` ``[B, L]`` (bool): positions that may be chosen. ``random_ids``:
    the token ids a random replacement is drawn from. Returns ``(corrupted, chosen)``
    with ``chosen`` a bool ``[B, L]`` holding at least one True when any position
    is maskable.
    """
    device = input_ids.device
    draw = torch.rand(input_ids.shape, generator=generator, device=generator.device).to(device)
    chosen = (draw < config.mask_prob) & maskable
    if not chosen.any() and maskable.any():
        flat = maskable.flatten().nonzero().squeeze(1)
        pick = torch.randint(len(flat), (1,), generator=generator, device=generator.device)
        chosen = chosen.flatten().clone()
        chosen[flat[pick.to(device)]] = True
        chosen = chosen.view_as(maskable)
    action = torch.rand(input_ids.shape, generator=generator, device=generator.device).to(device)
    to_mask = chosen & (action < config.replace_mask)
    to_random = chosen & (action >= config.replace_mask) & (
        action < config.replace_mask + config.replace_random
    )
    which = torch.randint(
        len(random_ids), input_ids.shape, generator=generator, device=generator.device
    ).to(device)
    corrupted = input_ids.clone()
    corrupted[to_mask] = mask_id
    corrupted[to_random] = random_ids.to(device)[which[to_random]]
    return corrupted, chosen


class MLMHead(nn.Module):
    """``Linear -> GELU -> LayerNorm -> Linear``: token states ``[..., D]`` to logits."""

    def __init__(self, dim: int, vocab_size: int, tied: nn.Embedding | None = None) -> None:
        super().__init__()
        self.transform = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.decoder = nn.Linear(dim, vocab_size)
        if tied is not None:
            if tied.weight.shape != self.decoder.weight.shape:
                raise ValueError(
                    f"{NAME}: cannot tie a [{vocab_size}, {dim}] output layer to an embedding "
                    f"of shape {list(tied.weight.shape)}; set tie_weights=False"
                )
            self.decoder.weight = tied.weight

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(states))  # type: ignore[no-any-return]


class MaskedLanguageModel(nn.Module, PretextTask):
    """MLM pretext: corrupt the tokens, predict the originals at the chosen positions.

    ``forward(batch, generator)`` returns ``{"loss", "embedding", "accuracy"}``:
    the cross entropy over chosen positions, the encoder's pooled ``[B, D]``
    embedding of the corrupted batch (detached, for the collapse diagnostics),
    and the share of chosen positions predicted correctly.
    """

    special: torch.Tensor
    random_ids: torch.Tensor

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: MLMConfig) -> None:
        super().__init__()
        tokenizer = getattr(dataset, "tokenizer", None)
        if tokenizer is None or not hasattr(tokenizer, "mask_id"):
            raise TypeError(
                f"{NAME} needs a SMILES dataset whose 'tokenizer' has vocab_size and the "
                f"special ids (pad, unk, bos, eos, mask); dataset {dataset.name!r} has none"
            )
        self.encoder = encoder
        self.config = config
        vocab_size = int(tokenizer.vocab_size)
        specials = special_ids(tokenizer)
        self.mask_id = int(tokenizer.mask_id)
        ordinary = [i for i in range(vocab_size) if i not in specials]
        if not ordinary:
            raise ValueError(f"{NAME}: the vocabulary holds special tokens only")
        self.register_buffer("special", torch.tensor(specials, dtype=torch.long),
                             persistent=False)
        self.register_buffer("random_ids", torch.tensor(ordinary, dtype=torch.long),
                             persistent=False)
        # tying is an option of this task, not a face: it needs the encoder's input
        # embedding matrix, which molecular.molformer keeps as 'token_embedding'
        tied = getattr(encoder, "token_embedding", None) if config.tie_weights else None
        if config.tie_weights and not isinstance(tied, nn.Embedding):
            raise TypeError(f"{NAME}: tie_weights=True needs an encoder attribute "
                            "'token_embedding' (nn.Embedding); set tie_weights=False")
        self.head = MLMHead(encoder_dim(encoder, NAME), vocab_size, tied)

    def forward(self, batch: dict[str, Any], generator: torch.Generator) -> dict[str, torch.Tensor]:
        ids = batch["input_ids"]
        mask = batch["attention_mask"].bool()
        maskable = mask & ~torch.isin(ids, self.special)
        corrupted, chosen = mask_tokens(
            ids, maskable, generator, mask_id=self.mask_id, random_ids=self.random_ids,
            config=self.config,
        )
        tokens = self.encoder.tokens({**batch, "input_ids": corrupted})
        states = tokens.states
        logits = self.head(states[chosen])
        targets = ids[chosen]
        loss = F.cross_entropy(logits, targets)
        accuracy = (logits.argmax(dim=-1) == targets).float().mean()
        # the encoder's masked mean pool, over the real tokens of the batch
        weights = tokens.mask.to(states.dtype).unsqueeze(-1)
        embedding = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return {"loss": loss, "embedding": embedding.detach(), "accuracy": accuracy.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> MaskedLanguageModel:
    """``molecular.mlm`` factory; ``options`` are :class:`MLMConfig` fields."""
    return MaskedLanguageModel(encoder, dataset, parse_options(MLMConfig, options, NAME))
