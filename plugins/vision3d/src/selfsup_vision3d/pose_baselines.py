"""Category-level pose baselines (``register_baselines``), offering ``vision3d.pose``.

- ``vision3d.pose_registration``: classical registration of each observation to its
  category's mean-shape prior, with open3d's pipelines (Rusu et al., "Fast Point
  Feature Histograms (FPFH) for 3D registration", ICRA 2009; Besl & McKay, ICP,
  1992). The prior (canonical, unit box diagonal) is scaled to the category's mean
  size over the synthetic train split; both clouds are voxel-downsampled (``voxel``
  metres), given normals and FPFH features; RANSAC on feature matches (open3d's
  ``registration_ransac_based_on_feature_matching``, edge-length and distance
  checkers, ``ransac_iterations``; open3d's random seed fixed) gives a rigid
  alignment, which point-to-point ICP with scale (``with_scaling=True``) refines.
  The observation is the source and the complete prior the target (every observed
  point has a counterpart on the prior; the converse fails for a partial view). The
  result ``q = s R p + t`` is inverted into the object's pose in the camera frame
  and its size (the prior's extents divided by ``s``). Needs open3d.
- ``vision3d.pose_synthetic_only``: the benchmark's pose network (``vision3d.dpdn``)
  trained with Self-DPDN's supervised loss on the synthetic labels alone (no
  real-like scene), for ``steps`` steps at ``batch_size`` and ``lr`` with the core
  trainer's recipe: the "synthetic-only" row that self-supervised adaptation must
  beat. ``BaselineContext.steps`` (``selfsup bench --steps``) caps the steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.api import (
    BaselineContext,
    NotApplicable,
    SSLDataset,
    non_negative_int,
    option,
    parse_options,
    positive,
    positive_int,
)

from .open3d_support import Open3DMissing, require_open3d
from .pretexts.self_dpdn import DPDN, category_mean_sizes, train_synthetic


def _pose_dataset(dataset: SSLDataset, key: str) -> Any:
    if not hasattr(dataset, "priors") or not hasattr(dataset, "indices"):
        raise NotApplicable(f"{key} needs a category-level pose dataset with shape priors "
                            f"(vision3d.pose_objects), not {dataset.name!r}")
    return dataset


@dataclass(frozen=True)
class RegistrationConfig:
    """Options of ``vision3d.pose_registration``."""

    voxel: float = option(0.01, positive, "voxel size (metres) of the downsampling")
    ransac_iterations: int = option(20000, positive_int, "RANSAC iterations")
    icp_iterations: int = option(50, positive_int, "ICP iterations")
    seed: int = option(0, non_negative_int, "open3d's random seed")


class PriorRegistration(nn.Module):
    """FPFH-RANSAC then ICP with scale to the category prior (see the module)."""

    def __init__(self, priors: np.ndarray, mean_sizes: np.ndarray,
                 config: RegistrationConfig, o3d: Any) -> None:
        super().__init__()
        self.config, self.o3d = config, o3d
        diag = np.linalg.norm(mean_sizes, axis=1)
        self.priors = [p * d for p, d in zip(priors, diag, strict=True)]  # metres
        self.extents = [(p.max(0) - p.min(0)) for p in self.priors]
        self.embed_dim = 3
        self._prior_features = [self._features(p) for p in self.priors]

    def _features(self, points: np.ndarray) -> tuple[Any, Any]:
        o3d, v = self.o3d, self.config.voxel
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        cloud = cloud.voxel_down_sample(v)
        cloud.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2.5 * v, max_nn=30))
        fpfh = o3d.pipelines.registration.compute_fpfh_feature(
            cloud, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * v, max_nn=100))
        return cloud, fpfh

    def register(self, points: np.ndarray, category: int) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
        """Rotation, translation and size of one observation."""
        o3d, c = self.o3d, self.config
        reg = o3d.pipelines.registration
        mean = points.mean(0)  # registration starts from the centroids' offset
        src, src_f = self._features(points - mean)
        dst, dst_f = self._prior_features[category]
        dist = 1.5 * c.voxel
        coarse = reg.registration_ransac_based_on_feature_matching(
            src, dst, src_f, dst_f, False, dist,
            reg.TransformationEstimationPointToPoint(False), 3,
            [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9),
             reg.CorrespondenceCheckerBasedOnDistance(dist)],
            reg.RANSACConvergenceCriteria(c.ransac_iterations, 0.999))
        fine = reg.registration_icp(
            src, dst, 2 * c.voxel, coarse.transformation,
            reg.TransformationEstimationPointToPoint(with_scaling=True),
            reg.ICPConvergenceCriteria(max_iteration=c.icp_iterations))
        m = np.asarray(fine.transformation)
        if not np.isfinite(m).all() or not 0.2 < np.cbrt(np.linalg.det(m[:3, :3])) < 5:
            m = np.asarray(coarse.transformation)  # ICP with scale collapsed: keep RANSAC's
        sr = m[:3, :3]
        s = float(np.cbrt(np.linalg.det(sr)))
        t = m[:3, 3] - sr @ mean  # q = s r (p - mean) + t' = s r p + (t' - s r mean)
        r = sr / s  # observation -> prior: q = s r p + t; the object's pose inverts it
        rotation = r.T
        translation = -rotation @ t / s
        size = self.extents[category] / s
        return rotation, translation, size

    @torch.no_grad()
    def pose(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.o3d.utility.random.seed(self.config.seed)
        pts = batch["points"].detach().cpu().numpy().astype(np.float64)
        cats = batch["category"].cpu().numpy()
        out = [self.register(p, int(k)) for p, k in zip(pts, cats, strict=True)]
        dev = batch["points"].device
        return {k: torch.as_tensor(np.stack([o[j] for o in out]), dtype=torch.float32,
                                   device=dev)
                for j, k in enumerate(("rotation", "translation", "size"))}

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return self.pose(batch)


def build_registration(dataset: SSLDataset, context: BaselineContext,
                       **options: Any) -> PriorRegistration:
    """``vision3d.pose_registration`` factory."""
    key = "vision3d.pose_registration"
    config = parse_options(RegistrationConfig, options, key)
    ds = _pose_dataset(dataset, key)
    try:
        o3d = require_open3d(key)
    except Open3DMissing as err:
        raise NotApplicable(str(err)) from err
    return PriorRegistration(ds.priors.numpy(), category_mean_sizes(ds).numpy(), config, o3d)


@dataclass(frozen=True)
class SyntheticOnlyConfig:
    """Options of ``vision3d.pose_synthetic_only``."""

    steps: int = option(600, positive_int, "optimiser steps on synthetic batches")
    batch_size: int = option(32, positive_int, "synthetic scenes per step")
    lr: float = option(2e-3, positive, "peak learning rate (AdamW, cosine)")
    warmup_steps: int = option(60, non_negative_int, "linear warm-up steps")


def build_synthetic_only(dataset: SSLDataset, context: BaselineContext,
                         **options: Any) -> DPDN:
    """``vision3d.pose_synthetic_only`` factory: the benchmark's encoder, trained."""
    key = "vision3d.pose_synthetic_only"
    config = parse_options(SyntheticOnlyConfig, options, key)
    ds = _pose_dataset(dataset, key)
    model = context.encoder_factory()
    if not isinstance(model, DPDN):
        raise NotApplicable(f"{key} trains the vision3d.dpdn network; the benchmark's "
                            f"encoder is a {type(model).__name__}")
    steps = min(config.steps, context.steps) if context.steps else config.steps
    return train_synthetic(model, ds, steps, config.batch_size, config.lr, seed=context.seed,
                           device=context.eval.device,
                           warmup_steps=min(config.warmup_steps, steps // 10))
