"""Audio-sheet music contrastive retrieval: a symmetric InfoNCE between two pathways.

After Dorfer, Hajič, Arzt, Frostel & Widmer, "Learning audio-sheet music
correspondences for cross-modal retrieval and piece identification", Transactions of
the International Society for Music Information Retrieval (TISMIR) 1(1), 2018: one
network per modality (an audio spectrogram excerpt, a sheet-music snippet) maps into
a shared embedding space where a snippet of audio lies near the score snippet it
sounds, so either side retrieves the other.

Here the encoder is ``audio.score_pair`` (:class:`selfsup_audio.encoders.ScoreAudioPair`:
a log-mel CNN and a piano-roll CNN, each ending in a linear map to the shared space).
For a batch of B matching pairs, with ``a_i``/``s_i`` the L2-normalised audio/score
embeddings and ``tau`` the temperature, the loss is CLIP's symmetric InfoNCE:

``loss = (CE(a s^T / tau, I) + CE(s a^T / tau, I)) / 2``

every other snippet of the batch being a negative (gathered over ranks under DDP).

Where this differs from the paper (read for understanding; no code copied):

- the loss: the paper trains a pairwise ranking (hinge) loss on cosine similarities
  with a margin against sampled contrastive pairs, on embeddings passed through a CCA
  projection layer; here InfoNCE over the batch's negatives, with no CCA layer;
- the data: the paper pairs engraved sheet-music images (LilyPond) with audio
  rendered from MIDI with several soundfonts and tempi; here a piano roll of the
  score window (no engraving offline) and one additive synthesiser at one tempo
  (``audio.score_pairs``), so the audio varies less than real recordings would;
- the networks: small CNNs (``audio.cnn`` and a three-block piano-roll CNN), not the
  paper's VGG-style pathways.

Snippets of the same piece can repeat a phrase, so a batch may hold a false
negative; nothing here removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import PretextTask, SSLDataset, gather_with_grad, option, parse_options, positive

NAME = "audio.score_contrast"


@dataclass(frozen=True)
class ScoreContrastConfig:
    """Options of ``audio.score_contrast``."""

    temperature: float = option(0.1, positive, "softmax temperature tau of the InfoNCE")


class ScoreContrast(nn.Module, PretextTask):
    """Symmetric InfoNCE between a pair encoder's audio and score embeddings."""

    def __init__(self, encoder: nn.Module, config: ScoreContrastConfig) -> None:
        super().__init__()
        if not callable(getattr(encoder, "embed_score", None)):
            raise TypeError(f"{NAME} trains an encoder offering the 'audio.score' face "
                            f"(audio.score_pair); {type(encoder).__name__} does not")
        self.encoder = encoder
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor], generator: torch.Generator
                ) -> dict[str, torch.Tensor]:
        audio = self.encoder.embed(batch)
        a = gather_with_grad(F.normalize(audio, dim=-1))
        s = gather_with_grad(F.normalize(self.encoder.embed_score(batch), dim=-1))
        logits = a @ s.T / self.config.temperature
        target = torch.arange(len(a), device=a.device)
        a2s = F.cross_entropy(logits, target)
        s2a = F.cross_entropy(logits.T, target)
        accuracy = (logits.argmax(1) == target).float().mean()
        return {"loss": (a2s + s2a) / 2, "a2s": a2s.detach(), "s2a": s2a.detach(),
                "a2s_accuracy": accuracy.detach(), "embedding": audio.detach()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> ScoreContrast:
    """``audio.score_contrast`` factory; ``options`` are :class:`ScoreContrastConfig` fields."""
    return ScoreContrast(encoder, parse_options(ScoreContrastConfig, options, NAME))
