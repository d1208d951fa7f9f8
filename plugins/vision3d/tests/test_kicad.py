"""``vision3d.kicad`` and the VRML reader, on KiCad-layout files the tests write."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from selfsup_vision3d.datasets.kicad import build
from selfsup_vision3d.io import BadFile, read_cloud, read_wrl

from .files import write_kicad_library, write_vrml_box


def test_vrml_shapes_are_read_and_concatenated(tmp_path: Path) -> None:
    verts, faces = read_wrl(write_vrml_box(tmp_path / "m.wrl", (2.0, 1.0, 0.5), pins=3))
    assert verts.shape == (32, 3) and faces is not None and faces.shape == (48, 3)
    # the pins' faces index their own vertices, after the body's 8
    assert faces[12:].min() == 8 and faces.max() == 31
    assert np.allclose(verts[:8].max(0), [2.0, 1.0, 0.5])
    cloud = read_cloud(tmp_path / "m.wrl", 256, np.random.default_rng(0))
    assert cloud.shape == (256, 3) and np.isfinite(cloud).all()


def test_bad_vrml_names_the_reason(tmp_path: Path) -> None:
    (tmp_path / "a.wrl").write_text("solid x")
    with pytest.raises(BadFile, match="not a VRML file"):
        read_wrl(tmp_path / "a.wrl")
    (tmp_path / "b.wrl").write_text("#VRML V2.0 utf8\nShape { geometry Box { size 1 1 1 } }")
    with pytest.raises(BadFile, match="no IndexedFaceSet"):
        read_wrl(tmp_path / "b.wrl")


def test_kicad_families_are_classes_and_bad_models_are_skipped(tmp_path: Path) -> None:
    root = write_kicad_library(tmp_path / "3dmodels")
    with pytest.warns(UserWarning, match=r"skipped 1 of 21 file\(s\): .*DIP-broken.wrl"):
        ds = build(path=str(root), n_points=128)
    assert ds.classes == ["Package_DIP", "Resistor_SMD"]  # Tiny has 1 model < min_per_class
    assert ds.skipped[0][0].endswith("DIP-broken.wrl")
    assert sum(len(ds.split_indices(s)) for s in ("train", "val", "test")) == 20
    capped = build(path=str(root), n_points=64, n_per_class=4)  # the first 4 of each
    assert len(capped.split_indices("train")) + len(capped.split_indices("test")) < 8
    assert sum(len(capped.split_indices(s)) for s in ("train", "val", "test")) == 8
    # the largest family alone is not a classification task
    with pytest.raises(ValueError, match=r"1 famil\(ies\) with at least 10"):
        build(path=str(root), n_points=64, max_classes=1)


def test_missing_library_names_the_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="apt-get install kicad-packages3d"):
        build(path=str(tmp_path / "absent"))
