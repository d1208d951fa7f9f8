"""Encoders, Point-MAE, the geometry they use and the baselines."""

from __future__ import annotations

import numpy as np
import torch

from selfsup_vision3d import geometry as g
from selfsup_vision3d.baselines import D2, FPFH, D2Options, FPFHOptions, PCABox, PCABoxOptions
from selfsup_vision3d.encoders import PointTransformer, PointTransformerConfig
from selfsup_vision3d.pretexts.point_mae import PointMAE, PointMAEConfig


def test_fps_spreads_and_knn_is_exact() -> None:
    x = torch.rand(2, 100, 3)
    idx = g.farthest_point_sample(x, 10)
    assert idx.shape == (2, 10) and all(len(set(r.tolist())) == 10 for r in idx)
    nn = g.knn(x[:, :5], x, 4)
    brute = torch.cdist(x[:, :5], x).argsort(-1)[..., :4]
    assert torch.equal(nn, brute) and torch.equal(nn[..., 0], torch.arange(5).expand(2, 5))


def test_chamfer_is_zero_on_equal_sets_and_symmetric() -> None:
    a, b = torch.rand(3, 20, 3), torch.rand(3, 15, 3)
    assert g.chamfer_l2(a, a[:, torch.randperm(20)]).item() < 1e-10
    assert torch.isclose(g.chamfer_l2(a, b), g.chamfer_l2(b, a))


def test_masked_tokens_ignore_the_hidden_patches_content() -> None:
    torch.manual_seed(0)
    enc = PointTransformer(PointTransformerConfig(n_patches=8, group_size=8, embed_dim=16,
                                                  depth=2, n_heads=2)).eval()
    x = torch.rand(1, 64, 3)
    idx, centres = enc.group_indices(x, 8, 8)
    own = [set(r.tolist()) for r in idx[0]]
    assert all(a.isdisjoint(b) for i, a in enumerate(own) for b in own[i + 1:])
    hide = torch.zeros(1, 8, dtype=torch.bool)
    hide[0, 3] = True
    members = idx[0, 3][idx[0, 3] != idx[0, 3, 0]]  # patch 3's points but its centre
    y = x.clone()
    y[0, members] = 0.95 * y[0, members] + 0.05 * centres[0, 3]  # closer: same cell
    assert torch.equal(enc.group_indices(y, 8, 8)[0], idx)
    assert torch.allclose(enc.masked_tokens(x, hide).states, enc.masked_tokens(y, hide).states,
                          atol=1e-6)
    assert not torch.allclose(enc.tokens(x).states, enc.tokens(y).states)
    assert torch.allclose(enc.masked_tokens(x, hide & False).states, enc.tokens(x).states)


def test_point_mae_learns_to_reconstruct() -> None:
    torch.manual_seed(0)
    enc = PointTransformer(PointTransformerConfig(n_patches=8, group_size=8, embed_dim=32,
                                                  depth=1, n_heads=2))
    task = PointMAE(enc, PointMAEConfig(decoder_depth=1, decoder_heads=2))
    rng = np.random.default_rng(0)
    x = torch.as_tensor(np.stack([g.normalise(g.sample_surface(g.sphere(), 64, rng))
                                  for _ in range(8)]), dtype=torch.float32)
    opt = torch.optim.Adam(task.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(40):
        out = task(x, gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert out["embedding"].shape == (8, 32)


def _rotated(x: torch.Tensor) -> torch.Tensor:
    rot = g.random_rotations(x.shape[0], torch.Generator().manual_seed(1))
    return x @ rot.transpose(1, 2)


def test_descriptors_are_rotation_invariant() -> None:
    rng = np.random.default_rng(0)
    x = torch.as_tensor(np.stack([g.normalise(g.sample_surface(g.box((1, 0.6, 0.3)), 256, rng))
                                  for _ in range(3)]), dtype=torch.float32)
    d2 = D2(256, D2Options(bins=16, pairs=2048))
    assert torch.allclose(d2.embed(x), d2.embed(_rotated(x)), atol=1e-5)
    pca = PCABox(PCABoxOptions(bins=4))
    f = pca.embed(x)
    assert f.shape == (3, pca.embed_dim) and torch.allclose(f, pca.embed(_rotated(x)), atol=1e-3)
    fpfh = FPFH(FPFHOptions())
    h = fpfh.embed(x)
    assert h.shape == (3, 66) and torch.isfinite(h).all()
    # invariant up to open3d's radius searches and normal signs at edges: nearly equal
    r = fpfh.embed(_rotated(x))
    assert torch.nn.functional.cosine_similarity(h, r).min() > 0.97


def test_descriptors_tell_shapes_apart() -> None:
    rng = np.random.default_rng(0)
    ball = g.normalise(g.sample_surface(g.sphere(), 256, rng))
    stick = g.normalise(g.sample_surface(g.cylinder(0.1, 3.0), 256, rng))
    x = torch.as_tensor(np.stack([ball, stick]), dtype=torch.float32)
    e = PCABox(PCABoxOptions()).embed(x)
    assert e[0, 3] > 0.8 and e[1, 3] < 0.2  # second extent over the first


def test_equivariant_objective_uses_the_views_relative_rotation() -> None:
    from selfsup_vision3d.datasets.base import PointCloudDataset
    from selfsup_vision3d.datasets.views import PointViews
    from selfsup_vision3d.encoders import PointNet, PointNetConfig
    from selfsup_vision3d.pretexts.equivariant import Equivariant, EquivariantConfig

    x = np.random.default_rng(0).standard_normal((8, 32, 3)).astype(np.float32)
    only_rotation = PointViews(scale_min=1.0, scale_max=1.0, jitter=0.0, dropout_max=0.0,
                               crop_prob=0.0)
    ds = PointCloudDataset(x, np.arange(8) % 2, {"train": np.arange(8)}, ["a", "b"],
                           only_rotation)
    gen = torch.Generator().manual_seed(0)
    v1, r1 = ds.augment_with_rotation(torch.as_tensor(x), gen)
    v2, r2 = ds.augment_with_rotation(torch.as_tensor(x), gen)
    rel = r2 @ r1.transpose(1, 2)
    assert torch.allclose(v1 @ rel.transpose(1, 2), v2, atol=1e-4)
    task = Equivariant(PointNet(PointNetConfig(embed_dim=16, width=8)), ds,
                       EquivariantConfig(n_invariant=8, n_vectors=4, proj_hidden_dim=16))
    out = task(torch.as_tensor(x), gen)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["equivariant"] > 0


def test_depth_views_see_the_near_side() -> None:
    # a flat square at z = 0.5 above a wider one at z = -0.5: seen from +z only the
    # upper one shows where they overlap
    rng = np.random.default_rng(0)
    top = np.c_[rng.uniform(-0.3, 0.3, (400, 2)), np.full(400, 0.5)]
    bottom = np.c_[rng.uniform(-0.6, 0.6, (1600, 2)), np.full(1600, -0.5)]
    x = torch.as_tensor(np.concatenate([top, bottom])[None], dtype=torch.float32)
    img = g.render_depth(x, torch.eye(3)[None, None], size=32)[0, 0]
    assert img.shape == (32, 32)
    assert torch.isclose(img[16, 16], torch.tensor(0.75))  # (0.5 + 1) / 2
    assert torch.isclose(img[16, 8], torch.tensor(0.25)) and img[0, 0] == 0
    flipped = torch.diag(torch.tensor([1.0, -1.0, -1.0]))[None, None]  # seen from -z
    assert torch.isclose(g.render_depth(x, flipped, size=32)[0, 0, 16, 16], torch.tensor(0.75))


def test_depth_contrast_trains_both_branches() -> None:
    from selfsup_vision3d.datasets.base import PointCloudDataset
    from selfsup_vision3d.datasets.views import PointViews
    from selfsup_vision3d.encoders import PointNet, PointNetConfig
    from selfsup_vision3d.pretexts.depth_contrast import DepthContrast, DepthContrastConfig

    x = np.random.default_rng(0).uniform(-0.5, 0.5, (8, 64, 3)).astype(np.float32)
    ds = PointCloudDataset(x, np.arange(8) % 2, {"train": np.arange(8)}, ["a", "b"],
                           PointViews())
    task = DepthContrast(PointNet(PointNetConfig(embed_dim=16, width=8)), ds,
                         DepthContrastConfig(image_size=32, depth_dim=16, proj_hidden_dim=16,
                                             proj_out_dim=8))
    out = task(torch.as_tensor(x), torch.Generator().manual_seed(0))
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and out["inter"] > 0 and out["intra"] > 0
    assert all(p.grad is not None for p in task.depth.parameters())
    assert all(p.grad is not None for p in task.encoder.deep.parameters())
