"""The procedural shapes, the readers (real files written by open3d) and the views."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup_vision3d import geometry as g
from selfsup_vision3d.datasets import folder, shapes
from selfsup_vision3d.datasets.views import PointViews, apply_views
from selfsup_vision3d.io import BadFile, read_cloud, read_geometry

from .conftest import TINY_SHAPES
from .files import box_mesh, cloud, write_mesh, write_pcd_cloud


def test_shapes_have_ten_classes_or_more_and_are_deterministic(tmp_path: Path) -> None:
    a = shapes.build(**TINY_SHAPES, cache_dir=str(tmp_path / "a"))
    b = shapes.build(**TINY_SHAPES, cache_dir=str(tmp_path / "b"))
    assert len(a.classes) >= 10 and a.generated and b.generated
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert a.x.shape == (12 * 5, 64, 3) and torch.isfinite(a.x).all()
    c = shapes.build(**TINY_SHAPES, cache_dir=str(tmp_path / "a"))
    assert not c.generated and torch.equal(a.x, c.x)  # read from the cache
    d = shapes.build(**TINY_SHAPES, seed=1, cache_dir=str(tmp_path / "a"))
    assert d.generated and not torch.equal(a.x, d.x)
    assert set(a.split_indices("train")).isdisjoint(a.split_indices("test"))
    assert np.bincount(a.labels("train")).min() == 3  # stratified 60%


def test_partial_scans_see_one_side() -> None:
    rng = np.random.default_rng(0)
    pts = g.sample_surface(g.sphere(), 2000, rng)
    seen = pts[g.visible_from(pts, np.array([0.0, 0.0, 1.0]))]
    assert 0.3 < len(seen) / len(pts) < 0.7 and seen[:, 2].min() > -0.3


def test_area_weighted_sampling_is_uniform() -> None:
    rng = np.random.default_rng(0)
    mesh = g.merge(g.box((1, 1, 1)), g.transform(g.box((2, 2, 2)), offset=(5, 0, 0)))
    pts = g.sample_surface(mesh, 20000, rng)
    assert abs((pts[:, 0] > 2.5).mean() - 0.8) < 0.02  # the big box has 4x the area


@pytest.mark.parametrize("name,ascii", [("m.ply", True), ("m.ply", False), ("m.off", True),
                                        ("m.obj", True), ("m.stl", False), ("m.stl", True)])
def test_meshes_written_by_open3d_read_back(tmp_path: Path, name: str, ascii: bool) -> None:
    mesh = box_mesh(1.0, 0.5, 0.3)
    write_mesh(tmp_path / name, mesh, ascii)
    verts, faces = read_geometry(tmp_path / name)
    assert faces is not None and len(faces) == 12
    assert np.allclose(verts.max(0) - verts.min(0), [1.0, 0.5, 0.3], atol=1e-5)
    pts = read_cloud(tmp_path / name, 100, np.random.default_rng(0))
    assert pts.shape == (100, 3) and np.linalg.norm(pts, axis=1).max() <= 1 + 1e-5


@pytest.mark.parametrize("ascii", [True, False])
def test_pcd_written_by_open3d_reads_back(tmp_path: Path, ascii: bool) -> None:
    pts = cloud(50)
    write_pcd_cloud(tmp_path / "c.pcd", pts, ascii)
    verts, faces = read_geometry(tmp_path / "c.pcd")
    assert faces is None and np.allclose(verts, pts, atol=1e-5)


def test_bad_files_raise_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "e.xyz").write_text("")
    np.save(tmp_path / "n.npy", np.full((4, 3), np.nan))
    (tmp_path / "z.off").write_text("OFF\n3 1 0\n0 0 0\n1 0 0\n2 0 0\n3 0 1 2\n")
    (tmp_path / "x.abc").write_text("1 2 3")
    for name, why in (("e.xyz", "empty"), ("n.npy", "finite"), ("z.off", "degenerate"),
                      ("x.abc", "suffix")):
        with pytest.raises(BadFile, match=why):
            read_cloud(tmp_path / name, 10, np.random.default_rng(0))


def test_folder_reads_every_format_and_reports_bad_files(class_folder: Path) -> None:
    with pytest.warns(UserWarning, match="skipped 3 of 23"):
        ds = folder.build(path=str(class_folder), n_points=64)
    assert ds.classes == ["box", "sphere"] and ds.x.shape == (20, 64, 3)
    assert {Path(p).name for p, _ in ds.skipped} == {"empty.xyz", "broken.ply", "nan.npy"}


def test_modelnet_layout_gives_its_splits(tmp_path: Path) -> None:
    for cls, size in (("desk", (1, 1, 0.2)), ("shelf", (0.3, 1, 1))):
        for split, n in (("train", 5), ("test", 2)):
            (tmp_path / cls / split).mkdir(parents=True)
            for i in range(n):
                write_mesh(tmp_path / cls / split / f"{cls}_{i:04d}.off", box_mesh(*size))
    ds = folder.build(path=str(tmp_path), n_points=32)
    assert len(ds.split_indices("test")) == 4
    assert len(ds.split_indices("train")) + len(ds.split_indices("val")) == 10


def test_views_return_the_rotation_they_applied() -> None:
    x = torch.randn(6, 40, 3)
    plain = PointViews(scale_min=1.0, scale_max=1.0, jitter=0.0, dropout_max=0.0,
                       crop_prob=0.0)
    v, rot = apply_views(x, plain, torch.Generator().manual_seed(0))
    assert torch.allclose(v, x @ rot.transpose(1, 2), atol=1e-5)
    assert torch.allclose(rot @ rot.transpose(1, 2), torch.eye(3).expand(6, 3, 3), atol=1e-5)
    up, _ = apply_views(x, PointViews(**{**plain.__dict__, "rotation": "up"}),
                             torch.Generator().manual_seed(0))
    assert torch.allclose(up[..., 2], x[..., 2], atol=1e-5)  # the z axis stays
    a, _ = apply_views(x, PointViews(), torch.Generator().manual_seed(3))
    b, _ = apply_views(x, PointViews(), torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == x.shape


def test_crop_removes_a_cap() -> None:
    x = torch.randn(4, 200, 3)
    crop = PointViews(rotation="none", scale_min=1.0, scale_max=1.0, jitter=0.0,
                      dropout_max=0.0, crop_prob=1.0, crop_max=0.5)
    v, _ = apply_views(x, crop, torch.Generator().manual_seed(0))
    distinct = [len(torch.unique(c, dim=0)) for c in v]
    assert all(100 <= d <= 200 for d in distinct) and min(distinct) < 200
