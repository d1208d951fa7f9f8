"""Collapse diagnostics for embeddings logged during pretraining.

A collapsing joint-embedding run shows up first as per-dimension standard
deviations falling to zero (complete collapse) or as a low effective rank of the
embedding matrix (dimensional collapse; Jing et al., "Understanding Dimensional
Collapse in Contrastive Self-supervised Learning", ICLR 2022). The effective rank
is the exponential of the Shannon entropy of the normalised singular values
(Roy & Vetterli, "The effective rank", EUSIPCO 2007).
"""

from __future__ import annotations

import torch


@torch.no_grad()
def effective_rank(z: torch.Tensor, eps: float = 1e-12) -> float:
    """Effective rank of ``z`` ``[N, D]`` after centring; between 1 and ``min(N, D)``."""
    if z.ndim != 2:
        raise ValueError(f"effective_rank expects [N, D] embeddings, got shape {tuple(z.shape)}")
    z = z.detach().float()
    z = z - z.mean(dim=0, keepdim=True)
    s = torch.linalg.svdvals(z)
    total = s.sum()
    if total <= eps:
        return 0.0
    p = s / total
    entropy = -(p * torch.log(p.clamp_min(eps))).sum()
    return float(torch.exp(entropy))


@torch.no_grad()
def embedding_stats(z: torch.Tensor) -> dict[str, float]:
    """Collapse diagnostics of one batch of embeddings ``[N, D]``.

    ``emb_std``: mean over dimensions of the per-dimension std of the
    L2-normalised embeddings (about ``1/sqrt(D)`` when spread out, 0 at collapse);
    ``emb_std_min``: the smallest per-dimension std; ``emb_rank``: effective rank.
    """
    if z.ndim != 2 or z.shape[0] < 2:
        raise ValueError(f"embedding_stats needs [N>=2, D] embeddings, got {tuple(z.shape)}")
    z = z.detach().float()
    zn = torch.nn.functional.normalize(z, dim=1)
    std = zn.std(dim=0)
    return {
        "emb_std": float(std.mean()),
        "emb_std_min": float(std.min()),
        "emb_rank": effective_rank(z),
    }
