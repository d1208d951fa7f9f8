"""Cross-modal retrieval metrics (``audio.retrieval``): audio -> score and score -> audio.

Each held-out query (an audio snippet, or a score snippet) ranks every candidate of
the other modality in the same split by cosine similarity; its one relevant
candidate is its own pair. Reported per direction: recall@1 and recall@10 (share of
queries whose pair ranks first / in the first ten) and the mean reciprocal rank.
A candidate scored equal to the pair counts as ranked above it (ties never help: a
model that embeds everything alike gets the worst rank, not the best). With N
candidates, chance gives recall@k = k/N and MRR = H_N / N.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import EvalContext, SSLDataset, option, parse_options, split_name

NAME = "audio.retrieval"


def ranks(similarity: torch.Tensor) -> torch.Tensor:
    """1-based rank of each row's diagonal entry among that row (ties count against)."""
    own = similarity.diagonal()[:, None]
    return (similarity >= own).sum(dim=1)


def retrieval_metrics(queries: torch.Tensor, candidates: torch.Tensor, prefix: str
                      ) -> dict[str, float]:
    """Recall@1/10 and MRR of ``queries[i]`` retrieving ``candidates[i]`` by cosine."""
    if queries.shape != candidates.shape or queries.ndim != 2:
        raise ValueError(f"queries {tuple(queries.shape)} and candidates "
                         f"{tuple(candidates.shape)} must both be [N, D]")
    sim = F.normalize(queries.double(), dim=1) @ F.normalize(candidates.double(), dim=1).T
    r = ranks(sim).double()
    return {f"{prefix}_r1": float((r <= 1).double().mean()),
            f"{prefix}_r10": float((r <= 10).double().mean()),
            f"{prefix}_mrr": float((1.0 / r).mean())}


@dataclass(frozen=True)
class RetrievalConfig:
    """Options of ``audio.retrieval``."""

    split: str = option("test", split_name, "held-out split whose pairs are searched")


def embed_pairs(model: nn.Module, dataset: SSLDataset, split: str, ctx: EvalContext
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Audio and score embeddings ``[N, D]`` of every pair of ``split``, in order."""
    from ..datasets.score_pairs import ScorePairs
    from ..encoders import ScoreAudioPair

    if not isinstance(dataset, ScorePairs):
        raise TypeError(f"{NAME} reads audio/score pairs (audio.score_pairs), not "
                        f"{type(dataset).__name__}")
    if not isinstance(model, ScoreAudioPair):
        raise TypeError(f"{NAME} needs the 'audio.score' face of an audio.score_pair "
                        f"encoder; got {type(model).__name__}")
    pairs = dataset.pairs(split)
    model.eval()
    audio, score = [], []
    with torch.no_grad():
        for i in range(0, len(pairs), ctx.batch_size):
            batch = {"audio": pairs.audio[i:i + ctx.batch_size].to(ctx.device),
                     "score": pairs.score[i:i + ctx.batch_size].to(ctx.device)}
            audio.append(model.embed(batch).cpu())
            score.append(model.embed_score(batch).cpu())
    return torch.cat(audio), torch.cat(score)


def build(**options: Any) -> Any:
    """``audio.retrieval`` factory; ``options`` are :class:`RetrievalConfig` fields."""
    config = parse_options(RetrievalConfig, options, NAME)

    def evaluate(model: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        audio, score = embed_pairs(model, dataset, config.split, ctx)
        n = len(audio)
        return {f"retrieval.{k}": v for k, v in {
            **retrieval_metrics(audio, score, "a2s"),
            **retrieval_metrics(score, audio, "s2a"),
            "chance_mrr": float(np.sum(1.0 / np.arange(1, n + 1)) / n),
            "n_candidates": float(n)}.items()}

    return evaluate
