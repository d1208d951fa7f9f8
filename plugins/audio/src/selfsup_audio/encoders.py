"""Encoders of log-mel spectrograms ``[B, F, T]`` (modality ``audio.mel``).

- :class:`AudioSpectrogramTransformer` (``audio.ast``): the Audio Spectrogram
  Transformer (Gong, Chung & Glass, "AST: Audio Spectrogram Transformer",
  Interspeech 2021) with SSAST's tokenisations (Gong, Lai, Chung & Glass, "SSAST:
  Self-Supervised Audio Spectrogram Transformer", AAAI 2022): ``"patch"`` cuts the
  spectrogram into non-overlapping ``patch_freq x patch_time`` patches (SSAST's 16 x
  16), ``"frame"`` into full-height strips of ``frame_time`` frames (SSAST's 128 x 2).
  Each patch is linearly embedded (a strided convolution), a learned position
  embedding is added, pre-norm transformer blocks mix the tokens, and a final
  LayerNorm gives the token states; the embedding is their mean (SSAST's
  ``ft_avgtok``: pretraining supervises every token, not a [CLS]). Frames left
  over at the end (``T mod patch_time``) are dropped. Unlike SSAST there is no
  [CLS]/distillation token and no ImageNet initialisation. Faces: ``embedding``,
  ``tokens`` and ``masked_tokens`` (a hidden token's patch embedding is replaced by
  a learned mask embedding before the position embedding is added, as SSAST does).
- :class:`LogMelCNN` (``audio.cnn``): four conv-BN-ReLU blocks with 2x2 pooling, then
  mean over frequency and time (the layout of BYOL-A's encoder, Niizumi et al.
  2021, narrower). Face: ``embedding``.

Both normalise their input with the dataset's ``feature_mean``/``feature_std`` as
SSAST does, ``(x - mean) / (2 std)``, stored as buffers so an exported encoder
carries them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import SSLDataset, Tokens, one_of, option, parse_options, positive_int


def _stats(dataset: SSLDataset, name: str) -> tuple[int, int, float, float]:
    x = dataset.pretrain_set()[0]
    if not isinstance(x, torch.Tensor) or x.ndim != 2:
        raise TypeError(f"{name} reads spectrograms [n_mels, frames] (modality audio.mel); "
                        f"dataset {dataset.name!r} gives {type(x).__name__}")
    mean = float(getattr(dataset, "feature_mean", 0.0))
    std = float(getattr(dataset, "feature_std", 1.0)) or 1.0
    return int(x.shape[0]), int(x.shape[1]), mean, std


class _Normalise(nn.Module):
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: float, std: float) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / (2 * self.std)


@dataclass(frozen=True)
class ASTConfig:
    """Options of ``audio.ast``."""

    tokenization: str = option("patch", one_of("patch", "frame"),
                               "SSAST's square patches or full-height frames")
    patch_freq: int = option(16, positive_int, "patch height in mel bins (patch)")
    patch_time: int = option(16, positive_int, "patch width in frames (patch)")
    frame_time: int = option(2, positive_int, "frames per token (frame)")
    embed_dim: int = option(192, positive_int, "token width (SSAST-Tiny: 192)")
    depth: int = option(4, positive_int, "transformer blocks (SSAST: 12)")
    n_heads: int = option(3, positive_int, "attention heads")
    mlp_ratio: int = option(4, positive_int, "MLP width over embed_dim")


class AudioSpectrogramTransformer(nn.Module):
    """AST with SSAST tokenisation (see the module); input ``[B, F, T]``."""

    def __init__(self, n_mels: int, frames: int, mean: float, std: float,
                 config: ASTConfig) -> None:
        super().__init__()
        if config.embed_dim % config.n_heads:
            raise ValueError(f"audio.ast: embed_dim={config.embed_dim} must be divisible by "
                             f"n_heads={config.n_heads}")
        if config.tokenization == "patch":
            self.patch = (config.patch_freq, config.patch_time)
        else:
            self.patch = (n_mels, config.frame_time)
        if self.patch[0] > n_mels or self.patch[1] > frames:
            raise ValueError(f"audio.ast: a {self.patch} patch does not fit a {n_mels} x "
                             f"{frames} spectrogram; lower patch_freq/patch_time")
        self.grid = (n_mels // self.patch[0], frames // self.patch[1])
        self.n_tokens = self.grid[0] * self.grid[1]
        self.embed_dim = config.embed_dim
        self.normalise = _Normalise(mean, std)
        self.patch_embed = nn.Conv2d(1, config.embed_dim, self.patch, stride=self.patch)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.n_tokens, config.embed_dim))
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, config.embed_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.xavier_normal_(self.mask_embed)
        layer = nn.TransformerEncoderLayer(config.embed_dim, config.n_heads,
                                           config.mlp_ratio * config.embed_dim, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, config.depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(config.embed_dim)

    def patchify(self, batch: torch.Tensor) -> torch.Tensor:
        """The normalised input of each token, flattened: ``[B, T, patch_f * patch_t]``,
        in the token order of :meth:`tokens` (frequency-major, as ``nn.Unfold``)."""
        x = self.normalise(batch)[:, None]
        patches = nn.functional.unfold(x, self.patch, stride=self.patch)  # [B, P, T]
        return patches.transpose(1, 2)

    def _embed_patches(self, batch: torch.Tensor, hide: torch.Tensor | None) -> Tokens:
        x = self.patch_embed(self.normalise(batch)[:, None]).flatten(2).transpose(1, 2)
        if hide is not None:
            x = torch.where(hide[..., None], self.mask_embed.to(x.dtype), x)
        states = self.norm(self.blocks(x + self.pos_embed))
        mask = torch.ones(states.shape[:2], dtype=torch.bool, device=states.device)
        return Tokens(states, mask)

    def tokens(self, batch: torch.Tensor) -> Tokens:
        return self._embed_patches(batch, None)

    def masked_tokens(self, batch: torch.Tensor, hide: torch.Tensor) -> Tokens:
        return self._embed_patches(batch, hide.bool())

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.tokens(batch).states.mean(dim=1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


def build_ast(dataset: SSLDataset, **options: Any) -> AudioSpectrogramTransformer:
    """``audio.ast`` factory; ``options`` are :class:`ASTConfig` fields."""
    config = parse_options(ASTConfig, options, "audio.ast")
    n_mels, frames, mean, std = _stats(dataset, "audio.ast")
    return AudioSpectrogramTransformer(n_mels, frames, mean, std, config)


@dataclass(frozen=True)
class CNNConfig:
    """Options of ``audio.cnn``."""

    width: int = option(32, positive_int, "channels of the first block (doubling to 4x)")
    embed_dim: int = option(128, positive_int, "embedding width")


class LogMelCNN(nn.Module):
    """A small CNN on log-mel spectrograms (see the module); input ``[B, F, T]``."""

    def __init__(self, mean: float, std: float, config: CNNConfig) -> None:
        super().__init__()
        w = config.width
        chans = [1, w, 2 * w, 4 * w, 4 * w]
        blocks: list[nn.Module] = []
        for i in range(4):
            blocks += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 3:
                blocks.append(nn.MaxPool2d(2))
        self.normalise = _Normalise(mean, std)
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(4 * w, config.embed_dim)
        self.embed_dim = config.embed_dim

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        h = self.features(self.normalise(batch)[:, None])
        return self.head(h.mean(dim=(2, 3)))  # type: ignore[no-any-return]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


def build_cnn(dataset: SSLDataset, **options: Any) -> LogMelCNN:
    """``audio.cnn`` factory; ``options`` are :class:`CNNConfig` fields."""
    config = parse_options(CNNConfig, options, "audio.cnn")
    _, _, mean, std = _stats(dataset, "audio.cnn")
    return LogMelCNN(mean, std, config)


# -- audio / score pairs (audio.score_pair) ------------------------------------------------

@dataclass(frozen=True)
class ScorePairConfig:
    """Options of ``audio.score_pair``."""

    audio_width: int = option(16, positive_int, "first-block channels of the audio CNN")
    score_width: int = option(16, positive_int, "first-block channels of the score CNN")
    embed_dim: int = option(128, positive_int, "width of the shared embedding space")


class PianoRollCNN(nn.Module):
    """A small CNN on piano-roll images ``[B, pitches, steps]``: three conv-BN-ReLU
    blocks (the first two followed by 2x2 max pooling), mean over pitch and time, and a
    linear map into the shared space. The input is already in [0, 1]: no normalisation."""

    def __init__(self, width: int, embed_dim: int) -> None:
        super().__init__()
        chans = [1, width, 2 * width, 4 * width]
        blocks: list[nn.Module] = []
        for i in range(3):
            blocks += [nn.Conv2d(chans[i], chans[i + 1], 3, padding=1),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i < 2:
                blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Linear(4 * width, embed_dim)

    def forward(self, roll: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(roll[:, None]).mean(dim=(2, 3)))  # type: ignore[no-any-return]


class ScoreAudioPair(nn.Module):
    """The two pathways of audio-score retrieval, exported together.

    ``audio``: an ``audio.cnn`` (:class:`LogMelCNN`) on the batch's ``"audio"`` log-mel;
    ``score``: a :class:`PianoRollCNN` on its ``"score"`` piano roll. Both end in a
    linear map to ``embed_dim``: that is the shared space the pretext
    ``audio.score_contrast`` aligns and ``audio.retrieval`` searches. Faces:
    ``embedding`` (``embed(batch)``: the audio side) and the plugin face
    ``audio.score`` (``embed_score(batch)``: the score side). Keeping both pathways in
    one module lets the trainer export, and an evaluator or a baseline (``core.random_init``
    builds this untrained pair) reach, both sides through core's one-encoder contract.
    """

    def __init__(self, mean: float, std: float, config: ScorePairConfig) -> None:
        super().__init__()
        self.audio = LogMelCNN(mean, std, CNNConfig(config.audio_width, config.embed_dim))
        self.score = PianoRollCNN(config.score_width, config.embed_dim)
        self.embed_dim = config.embed_dim

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.audio.embed(batch["audio"])

    def embed_score(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.score(batch["score"])  # type: ignore[no-any-return]

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.embed(batch)


def build_score_pair(dataset: SSLDataset, **options: Any) -> ScoreAudioPair:
    """``audio.score_pair`` factory; ``options`` are :class:`ScorePairConfig` fields."""
    config = parse_options(ScorePairConfig, options, "audio.score_pair")
    sample = dataset.pretrain_set()[0]
    if not isinstance(sample, dict) or set(sample) != {"audio", "score"}:
        raise TypeError("audio.score_pair reads {'audio': log-mel, 'score': piano roll} "
                        f"pairs (modality audio.score_pair); dataset {dataset.name!r} gives "
                        f"{type(sample).__name__}")
    mean = float(getattr(dataset, "feature_mean", 0.0))
    std = float(getattr(dataset, "feature_std", 1.0)) or 1.0
    return ScoreAudioPair(mean, std, config)
