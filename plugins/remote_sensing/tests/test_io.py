"""The SLC readers on real files written here, and the refusals, with file and reason."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from selfsup_remote_sensing.datasets.slc_folder import build as build_folder
from selfsup_remote_sensing.io.slc import SLCFileError, read_folder, read_slc

RNG = np.random.default_rng(0)
Z = (RNG.standard_normal((24, 32)) + 1j * RNG.standard_normal((24, 32))).astype(np.complex64)


def test_every_format_reads_the_same_image(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "complex.tif", Z)
    tifffile.imwrite(tmp_path / "bands.tiff", np.stack([Z.real, Z.imag]), photometric="minisblack",
                     planarconfig="separate")
    np.save(tmp_path / "complex.npy", Z)
    np.save(tmp_path / "last_axis.npy", np.stack([Z.real, Z.imag], axis=-1))
    with h5py.File(tmp_path / "parts.h5", "w") as f:
        f["real"], f["imag"] = Z.real, Z.imag
    with h5py.File(tmp_path / "one.hdf5", "w") as f:
        f["slc"] = Z
    for name in ("complex.tif", "bands.tiff", "complex.npy", "last_axis.npy", "parts.h5",
                 "one.hdf5"):
        got = read_slc(tmp_path / name)
        assert got.dtype == np.complex128 and got.shape == Z.shape, name
        assert np.allclose(got, Z), name


@pytest.mark.parametrize("name, write, reason", [
    ("nan.npy", lambda p: np.save(p, np.where(np.arange(24 * 32).reshape(24, 32) == 5, np.nan,
                                              Z)), "NaN/Inf"),
    ("zero.npy", lambda p: np.save(p, np.zeros((24, 32), np.complex64)), "all zero"),
    ("amplitude.npy", lambda p: np.save(p, np.abs(Z)), "not an SLC"),
    ("flags.npy", lambda p: np.save(p, np.ones((2, 24, 32), bool)), "not numeric"),
    ("cube.npy", lambda p: np.save(p, np.ones((3, 24, 32), np.complex64)), "2-D"),
    ("broken.tif", lambda p: p.write_bytes(b"II*\x00garbage"), "cannot be read"),
])
def test_bad_files_are_refused_with_the_reason(tmp_path: Path, name, write, reason) -> None:
    path = tmp_path / name
    write(path)
    with pytest.raises(SLCFileError, match=reason) as info:
        read_slc(path)
    assert str(path) in str(info.value)


def test_hdf5_parts_of_different_shapes_are_refused(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f["real"], f["imag"] = Z.real, Z.imag[:, :-1]
    with pytest.raises(SLCFileError, match="differ in shape"):
        read_slc(tmp_path / "bad.h5")
    with h5py.File(tmp_path / "nokeys.h5", "w") as f:
        f["amplitude"] = np.abs(Z)
    with pytest.raises(SLCFileError, match="real_key"):
        read_slc(tmp_path / "nokeys.h5")


def test_folder_keeps_good_files_and_lists_the_skipped(tmp_path: Path) -> None:
    big = (RNG.standard_normal((80, 72)) + 1j * RNG.standard_normal((80, 72))).astype(np.complex64)
    np.save(tmp_path / "a.npy", big)
    tifffile.imwrite(tmp_path / "b.tif", big)
    np.save(tmp_path / "c.npy", np.zeros((80, 72), np.complex64))
    (tmp_path / "notes.txt").write_text("ignored")
    good, skipped = read_folder(tmp_path)
    assert [n for n, _ in good] == ["a.npy", "b.tif"]
    assert len(skipped) == 1 and skipped[0][0].endswith("c.npy") and "all zero" in skipped[0][1]
    with pytest.warns(UserWarning, match="skipped 1 file"):
        ds = build_folder(root=str(tmp_path), patch_size=32, patch_overlap=8)
    assert ds.skipped == skipped and len(ds.scenes) == 2 and ds.task.kind == "none"
    assert all(p.shape == (2, 32, 32) for p in ds.pretrain_set())
    assert len(ds.pretrain_set()) == 2 * 3 * 3


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    np.save(tmp_path / "zero.npy", np.zeros((40, 40), np.complex64))
    with pytest.raises(ValueError, match="no usable SLC file"), pytest.warns(UserWarning):
        build_folder(root=str(tmp_path), patch_size=32, patch_overlap=8)
