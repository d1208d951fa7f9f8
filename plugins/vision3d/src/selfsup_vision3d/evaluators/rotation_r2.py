"""Rotation prediction R^2 from frozen embeddings (``vision3d.rotation_r2``).

How much of a rotation an encoder's embeddings keep: EquiCaps (Konstantinou et al.,
2025) and SIE (Garrido et al., 2023) report the R^2 of predicting the rotation
between two views of an object from the pair of their representations. Here, for
each cloud ``x`` of a split, a rotation ``R`` uniform on SO(3) is drawn (numpy
generator seeded by ``ctx.seeds``), both ``x`` and ``x R^T`` are embedded by the
frozen encoder, and an MLP (``[e(x), e(x R^T)] -> 256 -> ReLU -> 9``, standardised
inputs, Adam with weight decay, up to ``epochs`` full-batch steps, stopped at the
step of best ``val`` R^2, checked every 10) regresses the 9 entries of ``R``, fitted
on ``train`` and scored on ``test``:
``rotation_r2.r2 = 1 - sum (R - R_hat)^2 / sum (R - mean R)^2`` over the 9 entries.
A rotation-invariant encoder scores about 0; the entries of a uniform rotation have
mean 0 and variance 1/3, so predicting zeros also gives about 0.

Where it differs from the papers: they use 3DIEBench's rendered image pairs and
regress quaternions; this evaluates point clouds and regresses the matrix (no sign
ambiguity), with ``pairs_per_cloud`` draws per cloud.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    EvalContext,
    Evaluator,
    SSLDataset,
    option,
    parse_options,
    positive_int,
    require_seeds,
    summarise_seeds,
)

from ..geometry import random_rotation_np

NAME = "rotation_r2"


@dataclass(frozen=True)
class RotationR2Config:
    """Options of ``vision3d.rotation_r2``."""

    pairs_per_cloud: int = option(2, positive_int, "rotations drawn per cloud")
    epochs: int = option(300, positive_int, "full-batch Adam steps of the MLP")
    hidden: int = option(256, positive_int, "hidden width of the MLP")


@torch.no_grad()
def rotated_pairs(encoder: nn.Module, dataset: SSLDataset, split: str, ctx: EvalContext,
                  pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features ``[M, 2 D]`` of (cloud, rotated cloud) and the rotations ``[M, 9]``."""
    was_training = encoder.training
    encoder.eval().to(ctx.device)
    embed: Any = getattr(encoder, "embed")  # noqa: B009 - the embedding face
    feats, targets = [], []
    try:
        for x, _, _ in dataset.labelled_batches(split, ctx.batch_size):
            x = x.to(ctx.device).float()
            base = embed(x)
            for _ in range(pairs):
                rot = np.stack([random_rotation_np(rng) for _ in range(len(x))])
                r = torch.as_tensor(rot, dtype=x.dtype, device=x.device)
                feats.append(torch.cat([base, embed(x @ r.transpose(1, 2))], 1).cpu())
                targets.append(torch.as_tensor(rot.reshape(len(x), 9)))
    finally:
        encoder.train(was_training)
    return torch.cat(feats).double().numpy(), torch.cat(targets).double().numpy()


def _r2(target: np.ndarray, pred: np.ndarray) -> float:
    sse = ((target - pred) ** 2).sum()
    sst = ((target - target.mean(0)) ** 2).sum()
    return float(1 - sse / max(sst, 1e-12))


def fit_r2(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
           test: tuple[np.ndarray, np.ndarray], config: RotationR2Config, seed: int) -> float:
    """Test R^2 of the MLP at the step of best validation R^2."""
    mu, sd = train[0].mean(0), train[0].std(0) + 1e-8

    def inputs(f: np.ndarray) -> torch.Tensor:
        return torch.as_tensor((f - mu) / sd, dtype=torch.float32)

    a, v, b = inputs(train[0]), inputs(val[0]), inputs(test[0])
    ya = torch.as_tensor(train[1], dtype=torch.float32)
    torch.manual_seed(seed)
    mlp = nn.Sequential(nn.Linear(a.shape[1], config.hidden), nn.ReLU(),
                        nn.Linear(config.hidden, 9))
    opt = torch.optim.Adam(mlp.parameters(), 1e-3, weight_decay=1e-3)
    best_val, best_test = -np.inf, 0.0
    for step in range(1, config.epochs + 1):
        opt.zero_grad()
        nn.functional.mse_loss(mlp(a), ya).backward()
        opt.step()
        if step % 10 == 0 or step == config.epochs:
            with torch.no_grad():
                score = _r2(val[1], mlp(v).double().numpy())
                if score > best_val:
                    best_val, best_test = score, _r2(test[1], mlp(b).double().numpy())
    return best_test


def build(**options: Any) -> Evaluator:
    """``vision3d.rotation_r2`` factory; ``options`` are :class:`RotationR2Config` fields."""
    config = parse_options(RotationR2Config, options, f"vision3d.{NAME}")

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        sample = dataset.pretrain_set()[0]
        if not isinstance(sample, torch.Tensor) or sample.ndim != 2 or sample.shape[1] != 3:
            raise TypeError(f"vision3d.{NAME} rotates point clouds [N, 3]; dataset "
                            f"{dataset.name!r} gives {type(sample).__name__}")
        per_seed = []
        for seed in require_seeds(ctx, NAME):
            rng = np.random.default_rng([seed, 104729])
            pairs = {split: rotated_pairs(encoder, dataset, split, ctx, config.pairs_per_cloud,
                                          rng) for split in ("train", "val", "test")}
            per_seed.append({f"{NAME}.r2": fit_r2(pairs["train"], pairs["val"], pairs["test"],
                                                  config, seed)})
        return summarise_seeds(per_seed)

    return evaluate
