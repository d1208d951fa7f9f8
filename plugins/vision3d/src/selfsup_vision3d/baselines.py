"""The field's classical shape descriptors as baselines (``register_baselines``).

Each reads the batch ``[B, N, 3]`` itself, fits nothing and has no parameters; with
``core.linear_probe`` (multinomial logistic regression on standardised features) it
is "descriptor + linear classifier", the classical protocol (an SVM in the papers).

- ``vision3d.d2``: the D2 shape distribution (Osada, Funkhouser, Chazelle & Dobkin,
  "Shape distributions", TOG 2002): the histogram of distances between random point
  pairs, distances divided by their mean (scale invariance), ``bins`` bins on
  ``[0, 3]``; the pairs are the same fixed index pairs for every cloud (seeded);
  plus the A3 distribution (angles at random point triples) in as many bins.
  Rotation invariant.
- ``vision3d.pca_box``: the cloud in its PCA frame (principal axes sorted by
  variance): the extents along the axes and their ratios, the eigenvalues, per-axis
  absolute skewness and kurtosis, and a ``bins``-bin histogram of ``|coordinate|``
  along each axis. Rotation invariant (up to the axes' sign, which it removes).
- ``vision3d.fpfh``: Fast Point Feature Histograms (Rusu, Blodow & Beetz, ICRA 2009)
  by open3d: normals from ``normal_radius`` neighbourhoods oriented away from the
  centroid, 33-bin FPFH per point with ``feature_radius``, pooled as mean and
  standard deviation over the points (66 numbers). Needs open3d (open3d-cpu and the
  Debian package libusb-1.0-0); without it the bench skips the row, naming them.
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
    option,
    parse_options,
    positive,
    positive_int,
)

from .open3d_support import Open3DMissing, require_open3d


def _check_points(dataset: SSLDataset, key: str) -> None:
    x = dataset.pretrain_set()[0]
    if not isinstance(x, torch.Tensor) or x.ndim != 2 or x.shape[-1] != 3:
        raise NotApplicable(f"{key} reads point clouds [N, 3]; dataset {dataset.name!r} gives "
                            f"{type(x).__name__} of shape {getattr(x, 'shape', '?')}")


class _Fixed(nn.Module):
    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


@dataclass(frozen=True)
class D2Options:
    """Options of ``vision3d.d2``."""

    bins: int = option(32, positive_int, "histogram bins of D2 and of A3")
    pairs: int = option(4096, positive_int, "point pairs (and triples) per cloud")
    seed: int = option(0, lambda x: None if isinstance(x, int) and x >= 0 else "be an int >= 0",
                       "which pairs")


class D2(_Fixed):
    """D2 and A3 shape distributions: ``[B, 2 bins]`` (see the module)."""

    def __init__(self, n_points: int, config: D2Options) -> None:
        super().__init__()
        self.bins = config.bins
        g = torch.Generator().manual_seed(config.seed)
        self.register_buffer("idx", torch.randint(n_points, (3, config.pairs), generator=g),
                             persistent=False)
        self.embed_dim = 2 * config.bins

    def _hist(self, v: torch.Tensor, hi: float) -> torch.Tensor:
        b = v.shape[0]
        pos = (v / hi * self.bins).long().clamp(0, self.bins - 1)
        out = torch.zeros(b, self.bins, device=v.device)
        out.scatter_add_(1, pos, torch.ones_like(v))
        return out / v.shape[1]

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.float()
        idx: torch.Tensor = self.get_buffer("idx")
        i, j, k = (t % x.shape[1] for t in idx)
        d = (x[:, i] - x[:, j]).norm(dim=-1)
        d = d / d.mean(dim=1, keepdim=True).clamp(min=1e-9)
        u, v = x[:, i] - x[:, k], x[:, j] - x[:, k]
        cos = (u * v).sum(-1) / (u.norm(dim=-1) * v.norm(dim=-1)).clamp(min=1e-9)
        angle = torch.arccos(cos.clamp(-1, 1))
        return torch.cat([self._hist(d, 3.0), self._hist(angle, float(np.pi))], 1)


@dataclass(frozen=True)
class PCABoxOptions:
    """Options of ``vision3d.pca_box``."""

    bins: int = option(8, positive_int, "histogram bins of |coordinate| per principal axis")


class PCABox(_Fixed):
    """PCA-aligned bounding-box statistics: ``[B, 14 + 3 bins]`` (see the module)."""

    def __init__(self, config: PCABoxOptions) -> None:
        super().__init__()
        self.bins = config.bins
        self.embed_dim = 14 + 3 * config.bins

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.double()
        x = x - x.mean(dim=1, keepdim=True)
        cov = x.transpose(1, 2) @ x / x.shape[1]
        evals, evecs = torch.linalg.eigh(cov)  # ascending
        evals, evecs = evals.flip(-1), evecs.flip(-1)
        p = x @ evecs  # [B, N, 3], axis 0 the widest
        lo, hi = p.min(dim=1).values, p.max(dim=1).values
        ext = hi - lo
        ratios = torch.stack([ext[:, 1] / ext[:, 0], ext[:, 2] / ext[:, 0],
                              ext[:, 2] / ext[:, 1].clamp(min=1e-9)], 1)
        std = p.std(dim=1).clamp(min=1e-9)
        z = p / std[:, None]
        skew = (z ** 3).mean(dim=1).abs()
        kurt = (z ** 4).mean(dim=1)
        a = p.abs() / (ext[:, None] / 2).clamp(min=1e-9)
        pos = (a * self.bins).long().clamp(0, self.bins - 1)  # [B, N, 3]
        hist = torch.zeros(p.shape[0], 3, self.bins, dtype=p.dtype, device=p.device)
        hist.scatter_add_(2, pos.transpose(1, 2), torch.ones_like(pos.transpose(1, 2),
                                                                  dtype=p.dtype))
        hist = hist.flatten(1) / p.shape[1]
        feats = [ext, ratios, evals / evals.sum(1, keepdim=True).clamp(min=1e-12),
                 skew, kurt[:, :2], hist]
        return torch.cat(feats, 1).float()


@dataclass(frozen=True)
class FPFHOptions:
    """Options of ``vision3d.fpfh`` (radii in the unit-sphere scale of the clouds)."""

    normal_radius: float = option(0.15, positive, "neighbourhood radius of the normals")
    feature_radius: float = option(0.3, positive, "neighbourhood radius of the FPFH")
    max_nn: int = option(50, positive_int, "neighbours at most in each radius search")


class FPFH(_Fixed):
    """Mean and std of open3d's per-point FPFH: ``[B, 66]`` (see the module)."""

    def __init__(self, config: FPFHOptions) -> None:
        super().__init__()
        self.config = config
        self.o3d = require_open3d("vision3d.fpfh")
        self.embed_dim = 66

    def describe(self, points: np.ndarray) -> np.ndarray:
        o3d, c = self.o3d, self.config
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points.astype(np.float64)))
        pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(c.normal_radius, c.max_nn))
        n = np.asarray(pcd.normals)
        flip = ((points - points.mean(0)) * n).sum(1) < 0
        n[flip] *= -1
        pcd.normals = o3d.utility.Vector3dVector(n)
        f = o3d.pipelines.registration.compute_fpfh_feature(
            pcd, o3d.geometry.KDTreeSearchParamHybrid(c.feature_radius, c.max_nn))
        h = np.asarray(f.data).T / 100.0  # each of the three 11-bin parts sums to 100
        return np.concatenate([h.mean(0), h.std(0)])

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = batch.detach().cpu().double().numpy()
        out = np.stack([self.describe(p) for p in x])
        return torch.as_tensor(out, dtype=torch.float32, device=batch.device)


def build_d2(dataset: SSLDataset, context: BaselineContext, **options: Any) -> D2:
    """``vision3d.d2``; ``options`` are :class:`D2Options` fields."""
    config = parse_options(D2Options, options, "vision3d.d2")
    _check_points(dataset, "vision3d.d2")
    return D2(int(dataset.pretrain_set()[0].shape[0]), config)


def build_pca_box(dataset: SSLDataset, context: BaselineContext, **options: Any) -> PCABox:
    """``vision3d.pca_box``; ``options`` are :class:`PCABoxOptions` fields."""
    config = parse_options(PCABoxOptions, options, "vision3d.pca_box")
    _check_points(dataset, "vision3d.pca_box")
    return PCABox(config)


def build_fpfh(dataset: SSLDataset, context: BaselineContext, **options: Any) -> FPFH:
    """``vision3d.fpfh``; ``options`` are :class:`FPFHOptions` fields."""
    config = parse_options(FPFHOptions, options, "vision3d.fpfh")
    _check_points(dataset, "vision3d.fpfh")
    try:
        return FPFH(config)
    except Open3DMissing as err:
        raise NotApplicable(str(err)) from err
