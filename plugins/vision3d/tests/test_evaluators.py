"""The few-shot and rotation-prediction evaluators on known encoders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from selfsup.api import EvalContext
from selfsup_vision3d.baselines import D2, D2Options, PCABox, PCABoxOptions
from selfsup_vision3d.datasets import shapes
from selfsup_vision3d.datasets.base import PointCloudDataset
from selfsup_vision3d.datasets.views import PointViews
from selfsup_vision3d.evaluators import few_shot, linear_svm, rotation_r2


class FirstPoints(nn.Module):
    """Rotation-equivariant toy encoder: the coordinates of the first three points."""

    embed_dim = 9

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, :3].flatten(1)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


def test_few_shot_beats_chance_with_a_shape_descriptor(shapes_cache: Path) -> None:
    ds = shapes.build(n_per_class=25, n_points=64, partial=0.0, cache_dir=str(shapes_cache))
    evaluate = few_shot.build(n_way=5, k_shot=3, n_query=2, episodes=50)
    out = evaluate(PCABox(PCABoxOptions()), ds, EvalContext(seeds=(0, 1)))
    assert out["few_shot.accuracy"] > 0.4  # chance: 0.2 and "few_shot.accuracy_std" in out
    assert 0 < out["few_shot.accuracy_ci95"] < 0.2


def test_rotation_r2_separates_invariant_from_equivariant() -> None:
    rng = np.random.default_rng(0)
    one = rng.standard_normal((32, 3)).astype(np.float32)
    clouds = np.repeat(one[None], 60, 0)
    labels = np.arange(60) % 2
    splits = {"train": np.arange(40), "val": np.arange(40, 50), "test": np.arange(50, 60)}
    ds = PointCloudDataset(clouds, labels, splits, ["a", "b"], PointViews())
    evaluate = rotation_r2.build(pairs_per_cloud=4, epochs=300)
    ctx = EvalContext(seeds=(0,))
    assert evaluate(FirstPoints(), ds, ctx)["rotation_r2.r2"] > 0.7
    assert evaluate(D2(32, D2Options(pairs=256)), ds, ctx)["rotation_r2.r2"] < 0.1


def test_linear_svm_reads_a_descriptor(shapes_cache: Path) -> None:
    ds = shapes.build(n_per_class=25, n_points=64, partial=0.0, cache_dir=str(shapes_cache))
    evaluate = linear_svm.build(label_fractions=[1.0, 0.2])
    out = evaluate(PCABox(PCABoxOptions()), ds, EvalContext(seeds=(0,)))
    assert out["linear_svm.accuracy"] > 0.3  # chance: 1/12
    assert {"linear_svm.accuracy@20%", "linear_svm.f1_macro"} <= set(out)
