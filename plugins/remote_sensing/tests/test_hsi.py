"""Hyperspectral: the ENVI/GeoTIFF readers on files written here, earthlib's library read
through the ENVI reader, the synthetic cubes and their noise, the metrics, the baselines,
Noise2Self on cubes and DDS2M."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from selfsup_remote_sensing.evaluators.hsi import HSIConfig, band_psnr, hsi_metrics, sam_degrees
from selfsup_remote_sensing.hyperspectral import (
    CLASSES,
    abundances,
    degrade,
    fill_missing_bands,
    library_files,
)
from selfsup_remote_sensing.io.hsi import HSIFileError, read_cube, read_spectral_library

RNG = np.random.default_rng(0)
CUBE = RNG.uniform(0, 1, (5, 6, 7)).astype(np.float32)  # [bands, H, W]


def _write_envi(path: Path, cube: np.ndarray, interleave: str, extra: str = "",
                dtype: str = "<f4", code: int = 4, byte_order: int = 0) -> Path:
    arr = {"bsq": cube, "bil": cube.transpose(1, 0, 2),
           "bip": cube.transpose(1, 2, 0)}[interleave].astype(dtype)
    arr.tofile(path)
    b, h, w = cube.shape
    Path(str(path) + ".hdr").write_text(
        f"ENVI\nsamples = {w}\nlines = {h}\nbands = {b}\nheader offset = 0\n"
        f"data type = {code}\ninterleave = {interleave}\nbyte order = {byte_order}\n"
        f"wavelength units = Micrometers\nwavelength = {{ {', '.join(str(0.4 + 0.1 * i) for i in range(b))} }}\n"  # noqa: E501
        + extra)
    return path


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_envi_cubes_read_back_in_every_interleave(tmp_path: Path, interleave: str) -> None:
    path = _write_envi(tmp_path / f"cube.{interleave}", CUBE, interleave)
    cube = read_cube(path)
    assert cube.data.shape == (5, 6, 7) and np.allclose(cube.data, CUBE)
    assert cube.wavelengths is not None and np.allclose(cube.wavelengths, [400, 500, 600, 700,
                                                                           800])
    assert np.allclose(read_cube(Path(str(path) + ".hdr")).data, CUBE)  # the header works too


def test_envi_big_endian_integers_and_geotiff(tmp_path: Path) -> None:
    ints = (CUBE * 1000).astype(np.int16)
    path = _write_envi(tmp_path / "ints.img", ints, "bsq", dtype=">i2", code=2, byte_order=1)
    assert np.array_equal(read_cube(path).data, ints)
    tifffile.imwrite(tmp_path / "planar.tif", CUBE, photometric="minisblack")
    tifffile.imwrite(tmp_path / "last.tif", CUBE.transpose(1, 2, 0), photometric="minisblack",
                     planarconfig="contig")
    assert np.allclose(read_cube(tmp_path / "planar.tif").data, CUBE)
    assert np.allclose(read_cube(tmp_path / "last.tif").data, CUBE)


@pytest.mark.parametrize("case, reason", [
    ("no_header", "no ENVI header"),
    ("short", "bytes, but the header"),
    ("nan", "NaN/Inf"),
    ("zero", "all zero"),
    ("complex", "not supported"),
    ("missing_field", "lacks 'bands'"),
])
def test_bad_cubes_are_refused_with_file_and_reason(tmp_path: Path, case: str, reason: str
                                                   ) -> None:
    path = tmp_path / "bad.img"
    if case == "no_header":
        CUBE.tofile(path)
    elif case == "short":
        _write_envi(path, CUBE, "bsq")
        path.write_bytes(path.read_bytes()[:-8])
    elif case == "nan":
        _write_envi(path, np.where(CUBE > 0.9, np.nan, CUBE), "bsq")
    elif case == "zero":
        _write_envi(path, np.zeros_like(CUBE), "bsq")
    elif case == "complex":
        _write_envi(path, CUBE, "bsq", code=6)
    else:
        _write_envi(path, CUBE, "bsq")
        hdr = Path(str(path) + ".hdr")
        hdr.write_text(hdr.read_text().replace("bands = 5\n", ""))
    with pytest.raises(HSIFileError, match=reason) as info:
        read_cube(path)
    assert "bad.img" in str(info.value)


def _library_or_skip() -> None:
    if library_files() is None:
        pytest.skip("earthlib is not installed (pip install --no-deps earthlib: data only)")


def test_earthlib_library_reads_through_the_envi_reader() -> None:
    _library_or_skip()
    from selfsup_remote_sensing.hyperspectral import load_library

    sli, _ = library_files()  # type: ignore[misc]
    spectra, wavelengths, names = read_spectral_library(sli)
    assert spectra.shape == (7261, 180) and len(names) == 7261
    assert wavelengths is not None and wavelengths[0] == pytest.approx(400)
    lib = load_library()
    for name in CLASSES:
        assert len(lib.of_class(name)) >= 20, name
    veg = lib.spectra[lib.of_class("vegetation")].mean(0)
    red, nir = veg[np.argmin(abs(wavelengths - 670))], veg[np.argmin(abs(wavelengths - 850))]
    assert nir > 2.5 * red  # the red edge of green vegetation
    assert not lib.measured[lib.of_class("vegetation")].any()  # PROSAIL-simulated: say so
    assert lib.measured[lib.of_class("built")].all()


def test_abundances_are_a_partition_following_the_picture() -> None:
    img = np.zeros((32, 32, 3))
    img[:, 16:] = [1.0, 0.5, 0.0]
    a = abundances(img, 2, np.random.default_rng(0))
    assert a.shape == (32, 32, 2) and np.allclose(a.sum(-1), 1) and (a >= 0).all()
    left, right = a[:, :8].mean((0, 1)), a[:, -8:].mean((0, 1))
    assert np.argmax(left) != np.argmax(right) and left.max() > 0.95


def test_noise_levels_are_as_stated() -> None:
    clean = np.full((20, 64, 64), 0.5)
    noisy, mask = degrade(clean, np.random.default_rng(0), sigma=0.1)
    assert abs((noisy - clean).std() - 0.1) < 0.005 and mask.all()
    striped, _ = degrade(clean, np.random.default_rng(1), sigma=0.0, stripes=0.5)
    hit = np.abs(striped - clean).reshape(20, -1).max(1) > 0
    assert hit.sum() == 10
    col = (striped - clean)[np.flatnonzero(hit)[0]]
    assert np.allclose(col, col[:1])  # a stripe is constant along its column
    dead, _ = degrade(clean, np.random.default_rng(2), sigma=0.0, deadlines=0.25)
    assert ((dead == 0).all(axis=1).any(axis=1)).sum() == 5
    _, mask = degrade(clean, np.random.default_rng(3), sigma=0.0, missing=0.2)
    gone = np.flatnonzero(mask.reshape(20, -1).max(1) == 0)
    assert len(gone) == 4 and 0 not in gone and 19 not in gone
    filled = fill_missing_bands(np.where(mask > 0, clean, 0.0), mask.reshape(20, -1).max(1) > 0)
    assert np.allclose(filled, clean)


def test_metrics_on_known_cubes() -> None:
    ref = np.random.default_rng(0).uniform(0.1, 1, (4, 8, 8))
    assert band_psnr(ref + 0.1, ref) == pytest.approx(np.full(4, 20.0))
    assert sam_degrees(2 * ref, ref) == pytest.approx(0.0, abs=1e-5)  # scale-invariant
    other = ref.copy()
    other[0] = 0.0
    assert 0 < sam_degrees(other, ref) < 90


@pytest.fixture(scope="module")
def dataset():
    _library_or_skip()
    from selfsup_remote_sensing.datasets.hsi_synthetic import build

    ds = build(image_size=24, bands=8, patch_size=12, patch_overlap=4, sigma=0.1, missing=0.25)
    ds.name = "remote_sensing.hsi_synthetic"
    return ds


def test_synthetic_cubes_have_the_stated_structure(dataset) -> None:
    sample, clean = dataset.labelled_split("test")[0]
    assert sample.shape == (2, 8, 24, 24) and clean.shape == (8, 24, 24)
    assert float(clean.max()) == pytest.approx(1.0) and float(clean.min()) >= 0
    s = np.linalg.svd(clean.reshape(8, -1).double().numpy(), compute_uv=False)
    assert s[len(CLASSES)] < 1e-4 * s[0]  # linear mixing of 5 endmembers: rank <= 5
    assert (sample[1].flatten(1).amax(1) == 0).sum() == 2
    assert len(dataset.pretrain_set()) == 8 * 9 and dataset.pretrain_set()[0].shape == (
        2, 8, 12, 12)


def test_baselines_choose_on_val_and_beat_the_input(dataset) -> None:
    from selfsup_remote_sensing.hsi_baselines import build_lowrank, build_noisy, build_tv

    noisy = hsi_metrics(build_noisy(dataset), dataset, HSIConfig())
    assert "hsi.mpsnr_missing" in noisy
    for build in (build_tv, build_lowrank):
        module = build(dataset)
        assert module.chosen["selected_on"] == "val"
        got = hsi_metrics(module, dataset, HSIConfig())
        assert got["hsi.mpsnr"] > noisy["hsi.mpsnr"] + 2 and got["hsi.sam"] < noisy["hsi.sam"]


def test_noise2self_hides_all_bands_of_the_grid_and_learns(dataset) -> None:
    from selfsup_remote_sensing.hsi_baselines import build_noisy
    from selfsup_remote_sensing.hsi_encoders import SpatialSpectralNet, blind_cube
    from selfsup_remote_sensing.pretexts.noise2self_hsi import Noise2SelfHSI, Noise2SelfHSIConfig

    x = torch.randn(1, 4, 9, 9)
    masked, hidden = blind_cube(x, 3, 4)
    assert hidden.sum() == 9 and not torch.equal(masked[..., 1, 1], x[..., 1, 1])
    assert torch.equal(masked[..., 0, 0], x[..., 0, 0])
    torch.manual_seed(0)
    enc = SpatialSpectralNet(width=6, depth=3)
    task = Noise2SelfHSI(enc, Noise2SelfHSIConfig(grid=3))
    assert int(enc.blind_grid) == 3
    opt = torch.optim.Adam(enc.parameters(), 3e-3)
    data = torch.stack(dataset.pretrain_set())
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        loss = task(data[torch.randint(0, len(data), (4,), generator=g)], g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    got = hsi_metrics(enc, dataset, HSIConfig())
    noisy = hsi_metrics(build_noisy(dataset), dataset, HSIConfig())
    assert got["hsi.mpsnr"] > noisy["hsi.mpsnr"] + 1
    # J-invariant inference: no output pixel depends on its own input
    sample = dataset.labelled_split("test")[0][0][None].clone()
    changed = sample.clone()
    changed[0, 0, :, 5, 7] += 1.0
    with torch.no_grad():
        a, b = enc.dense(sample), enc.dense(changed)
    assert torch.allclose(a[0, :, 5, 7], b[0, :, 5, 7], atol=1e-6)


def test_dds2m_restores_one_cube_better_than_the_input(dataset) -> None:
    from selfsup_remote_sensing.dds2m import DDS2MConfig, dds2m_restore

    ref = dataset.labelled_split("test")[0][1].double().numpy()
    obs, _ = degrade(ref, np.random.default_rng(0), sigma=0.1)
    config = DDS2MConfig(steps=40, iterations=5, rank=6)
    out = dds2m_restore(obs, np.ones(len(obs), bool), config)
    assert out.shape == ref.shape and math.isfinite(float(out.sum()))
    assert band_psnr(out, ref).mean() > band_psnr(obs.clip(0, 1), ref).mean() + 3
    assert np.array_equal(out, dds2m_restore(obs, np.ones(len(obs), bool), config))  # seeded


def test_hsi_folder_reads_envi_and_geotiff_and_reports_the_bad_files(tmp_path: Path) -> None:
    from selfsup_remote_sensing.datasets.hsi_folder import build as build_folder

    rng = np.random.default_rng(1)
    cube = rng.uniform(0, 200, (5, 12, 10)).astype(np.float32)
    _write_envi(tmp_path / "a.img", cube, "bil")
    tifffile.imwrite(tmp_path / "b.tif", cube * 2, photometric="minisblack")
    _write_envi(tmp_path / "nan.img", np.where(cube > 190, np.nan, cube), "bsq")
    cube.tofile(tmp_path / "headless.dat")
    tifffile.imwrite(tmp_path / "bands.tif", cube[:3], photometric="minisblack")
    tifffile.imwrite(tmp_path / "small.tif", cube[:, :6, :6], photometric="minisblack")
    (tmp_path / "notes.txt").write_text("not a cube")
    with pytest.warns(UserWarning, match="skipped 4 file"):
        ds = build_folder(root=str(tmp_path), patch_size=8, patch_overlap=4)
    reasons = dict(ds.skipped)
    assert sorted(Path(f).name for f in reasons) == ["bands.tif", "headless.dat", "nan.img",
                                                     "small.tif"]
    assert "NaN/Inf" in reasons[str(tmp_path / "nan.img")]
    assert "no ENVI header" in reasons[str(tmp_path / "headless.dat")]
    assert "3 bands" in reasons[str(tmp_path / "bands.tif")]
    assert "smaller than patch_size" in reasons[str(tmp_path / "small.tif")]
    assert [name for name, _ in ds.cubes] == ["a.img", "b.tif"]
    for _, sample in ds.cubes:  # each scaled by its largest value, all bands observed
        assert sample.shape == (2, 5, 12, 10) and float(sample[0].max()) == pytest.approx(1.0)
        assert torch.equal(sample[1], torch.ones_like(sample[1]))
    assert torch.allclose(ds.cubes[0][1][0], ds.cubes[1][1][0])  # same cube, scale removed
    assert ds.wavelengths is not None and ds.wavelengths[0] == pytest.approx(400)
    assert ds.task.kind == "none" and not ds.splits
    assert len(ds.pretrain_set()) == 2 * 4 and ds.pretrain_set()[0].shape == (2, 5, 8, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no usable cube"):
        build_folder(root=str(tmp_path / "empty"), patch_size=8, patch_overlap=4)
