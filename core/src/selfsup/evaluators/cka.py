"""Linear centred kernel alignment (CKA) between representations.

Kornblith, Norouzi, Lee & Hinton, "Similarity of Neural Network Representations
Revisited", ICML 2019, eq. (5): for column-centred ``X`` ``[N, D1]`` and ``Y``
``[N, D2]`` (one row per sample in both),

    CKA(X, Y) = ||Y^T X||_F^2 / (||X^T X||_F * ||Y^T Y||_F),

the normalised Hilbert-Schmidt independence criterion (Gretton et al., ALT 2005)
of linear kernels. It is 1 for identical representations, invariant to
orthogonal transforms and isotropic scaling of either, and not to arbitrary
invertible linear maps, which is what makes it meaningful for wide layers.

The evaluator measures how far training moved the encoder: CKA between its
test-split embeddings and those of a fresh, untrained encoder of the same
architecture built by ``ctx.encoder_factory`` (one per seed of ``ctx.seeds``,
since the initialisation is random). A value near 1 means the representation
is still close to a random projection of the input.

Metric keys: ``cka.vs_random_init`` and ``cka.vs_random_init_std``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    extract_embeddings,
    require_seeds,
    summarise_seeds,
)
from selfsup.options import (
    option,
    parse_options,
    split_name,
)

NAME = "cka"


def linear_cka(x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> float:
    """Linear CKA of ``x`` ``[N, D1]`` and ``y`` ``[N, D2]`` (rows are the same samples).

    Computed in float64 from the feature-space form above, which costs
    ``O(N * D1 * D2)`` rather than the ``O(N^2)`` memory of Gram matrices. Returns
    NaN when either representation is constant over the samples (a collapsed
    encoder), where CKA is undefined.
    """
    xa = _as_float64(x, "x")
    ya = _as_float64(y, "y")
    if xa.shape[0] != ya.shape[0]:
        raise ValueError(
            f"linear_cka needs the same samples in both: x has {xa.shape[0]} rows, "
            f"y has {ya.shape[0]}"
        )
    xa = xa - xa.mean(axis=0, keepdims=True)
    ya = ya - ya.mean(axis=0, keepdims=True)
    cross = np.linalg.norm(ya.T @ xa, "fro") ** 2
    norm_x = np.linalg.norm(xa.T @ xa, "fro")
    norm_y = np.linalg.norm(ya.T @ ya, "fro")
    if norm_x == 0.0 or norm_y == 0.0:
        return float("nan")
    return float(cross / (norm_x * norm_y))


def _as_float64(a: np.ndarray | torch.Tensor, name: str) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().double().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"linear_cka expects {name} of shape [N>=2, D], got {arr.shape}")
    return arr


@dataclass(frozen=True)
class CKAConfig:
    """Options of :func:`build`."""

    split: str = option("test", split_name, "labelled split whose samples both encoders embed")


def build(**options: Any) -> Evaluator:
    """The CKA-versus-random-init evaluator; options are the fields of :class:`CKAConfig`."""
    config = parse_options(CKAConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        if ctx.encoder_factory is None:
            raise ValueError(
                f"{NAME} compares the encoder with a fresh untrained one, but "
                "EvalContext.encoder_factory is None; pass encoder_factory=a callable "
                "that builds the same architecture untrained"
            )
        seeds = require_seeds(ctx, NAME)
        if config.split not in dataset.splits:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r} has no labelled split {config.split!r}; "
                f"pass one of {list(dataset.splits)}"
            )
        z_trained, _ = extract_embeddings(encoder, dataset, config.split, ctx)
        per_seed = []
        for seed in seeds:
            # Seed the initialisation without disturbing the caller's global RNG stream.
            with torch.random.fork_rng():
                torch.manual_seed(seed)
                fresh = ctx.encoder_factory()
            z_fresh, _ = extract_embeddings(fresh, dataset, config.split, ctx)
            per_seed.append({f"{NAME}.vs_random_init": linear_cka(z_trained, z_fresh)})
        return summarise_seeds(per_seed)

    return evaluate
