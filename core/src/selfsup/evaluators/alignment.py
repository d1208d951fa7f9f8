"""Representational alignment of two encoders on the same inputs: CKA and RSA.

``selfsup compare RUN_A RUN_B`` embeds one labelled split with the two exported
encoders and reports, for each measure, its value and a permutation p-value:

- ``linear_cka`` and ``rbf_cka``: centred kernel alignment (Kornblith, Norouzi,
  Lee & Hinton, "Similarity of Neural Network Representations Revisited", ICML
  2019) with a linear kernel, and with a Gaussian kernel whose bandwidth is a
  fraction (``sigma``, 0.5 here) of the median pairwise distance, as the paper
  sets it;
- ``rsa``: representational similarity analysis (Kriegeskorte, Mur & Bandettini,
  "Representational similarity analysis", Frontiers 2008): the Spearman
  correlation of the two representational dissimilarity matrices (1 - Pearson
  correlation between the samples' embeddings), upper triangles only. Unlike
  CKA it is not invariant to rotations of a representation (the correlation
  distance centres each sample's features), only to scaling.

The p-value of each measure is ``(1 + #{permutations >= observed}) / (1 + n)``
over ``n`` random re-pairings of B's rows with A's (the null hypothesis that the
two representations are unrelated sample by sample; Phipson & Smyth,
"Permutation P-values Should Never Be Zero", 2010).

``selfsup compare RUN_A RUN_B --layers`` compares layer by layer instead, through
the ``stages`` face both encoders offer (:func:`extract_stages`): the ``L_A x L_B``
matrix of one measure between every stage of A and every stage of B
(:func:`layer_matrix`; linear CKA, as Kornblith et al. plot it in their Figures
2-5, and RSA on request). ``selfsup compare RUN_A --layers`` gives the
within-encoder ``L_A x L_A`` matrix, whose diagonal is 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from selfsup.evaluators.cka import linear_cka

if TYPE_CHECKING:
    from torch import nn

    from selfsup.components import EvalContext, SSLDataset

Measure = Callable[[np.ndarray, np.ndarray], float]


def rbf_cka(x: np.ndarray, y: np.ndarray, sigma: float = 0.5) -> float:
    """CKA with Gaussian kernels of bandwidth ``sigma`` x the median pairwise distance."""
    kx, ky = _centred(_rbf_gram(x, sigma)), _centred(_rbf_gram(y, sigma))
    hsic_xy, hsic_xx, hsic_yy = (kx * ky).sum(), (kx * kx).sum(), (ky * ky).sum()
    if hsic_xx == 0.0 or hsic_yy == 0.0:
        return float("nan")
    return float(hsic_xy / np.sqrt(hsic_xx * hsic_yy))


def rsa(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman correlation of the upper triangles of the two RDMs (1 - Pearson r)."""
    from scipy.stats import spearmanr

    upper = np.triu_indices(len(x), k=1)
    rdm_x = 1.0 - np.asarray(np.corrcoef(np.asarray(x, dtype=np.float64)))[upper]
    rdm_y = 1.0 - np.asarray(np.corrcoef(np.asarray(y, dtype=np.float64)))[upper]
    return float(spearmanr(rdm_x, rdm_y).statistic)


def _rbf_gram(x: np.ndarray, sigma: float) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    sq = np.sum(x * x, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    median = np.median(np.sqrt(d2[np.triu_indices(len(x), k=1)]))
    width = sigma * median if median > 0 else 1.0
    return np.exp(-d2 / (2 * width**2))  # type: ignore[no-any-return]


def _centred(k: np.ndarray) -> np.ndarray:
    n = k.shape[0]
    h = np.eye(n) - 1.0 / n
    return h @ k @ h  # type: ignore[no-any-return]


MEASURES: dict[str, Measure] = {"linear_cka": linear_cka, "rbf_cka": rbf_cka, "rsa": rsa}


@dataclass(frozen=True)
class Alignment:
    measure: str
    value: float
    p_value: float


def compare_representations(
    x: np.ndarray, y: np.ndarray, *, permutations: int = 200, seed: int = 0,
    measures: dict[str, Measure] | None = None,
) -> list[Alignment]:
    """Each measure of ``x`` ``[N, D1]`` against ``y`` ``[N, D2]`` with its permutation p-value."""
    if len(x) != len(y):
        raise ValueError(f"compare needs the same samples in both: {len(x)} and {len(y)} rows")
    if len(x) < 4:
        raise ValueError(f"compare needs at least 4 samples, got {len(x)}")
    rng = np.random.default_rng(seed)
    orders = [rng.permutation(len(y)) for _ in range(permutations)]
    out = []
    for name, measure in (measures or MEASURES).items():
        observed = measure(x, y)
        null = np.array([measure(x, y[order]) for order in orders])
        p = (1 + int(np.sum(null >= observed))) / (1 + permutations)
        out.append(Alignment(name, observed, p))
    return out


def layer_matrix(
    xs: Sequence[np.ndarray], ys: Sequence[np.ndarray], measure: Measure = linear_cka
) -> np.ndarray:
    """``measure(xs[i], ys[j])`` for every pair of stages: ``[len(xs), len(ys)]``."""
    if not xs or not ys:
        raise ValueError("layer_matrix needs at least one stage on each side")
    rows = {len(x) for x in (*xs, *ys)}
    if len(rows) != 1:
        raise ValueError(f"layer_matrix needs the same samples in every stage, got row "
                         f"counts {sorted(rows)}")
    return np.array([[measure(x, y) for y in ys] for x in xs], dtype=np.float64)


def extract_stages(
    encoder: nn.Module, dataset: SSLDataset, split: str, ctx: EvalContext,
    indices: Sequence[int] | None = None,
) -> list[np.ndarray]:
    """Each stage of the ``stages`` face over a labelled split: a list of ``[N, D_l]``.

    Like :func:`selfsup.evaluators.embeddings.extract_embeddings` (eval mode, no
    gradients, the labelled ``rows`` of each batch), stage by stage.
    """
    import torch

    from selfsup.batching import move_to

    device = torch.device(ctx.device)
    was_training = encoder.training
    encoder.to(device)
    encoder.eval()
    per_batch: list[list[np.ndarray]] = []
    try:
        with torch.no_grad():
            for batch, _, rows in dataset.labelled_batches(split, ctx.batch_size,
                                                           indices=indices):
                stages = _stages(encoder, move_to(batch, device))
                if rows is not None:
                    stages = [s[rows.to(s.device)] for s in stages]
                per_batch.append([s.detach().float().cpu().numpy() for s in stages])
    finally:
        encoder.train(was_training)
    if not per_batch:
        raise ValueError(f"dataset {dataset.name!r}, split {split!r} has no labelled samples")
    return [np.concatenate([b[i] for b in per_batch]) for i in range(len(per_batch[0]))]


def _stages(encoder: Any, batch: Any) -> list[Any]:
    """The stages face (typed Any: faces are declared on the EncoderSpec)."""
    return list(encoder.stages(batch))
