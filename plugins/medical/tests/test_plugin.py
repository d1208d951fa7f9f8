"""The plugin as users meet it: conformance kit, registration cost, `selfsup run`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from selfsup.api import Registry, check_plugin
from selfsup.api import cli_main as main

torch.set_num_threads(1)

TINY = {
    "medical.mri_recon": {"image_size": 32},
    "medical.ct_denoise": {"image_size": 32},
    "medical.synthetic_seg2d": {"n_images": 12, "size": 32},
    "medical.synthetic_seg3d": {"n_volumes": 6, "size": 32},
    "medical.brain_tissue3d": {"stride": 32},
}
SMALL_2D = {"features": [4, 4, 8, 8, 16, 4]}
# Datasets that read user files (medical.fastmri, medical.volumes, medical.images)
# need a root; test_readers.py builds them from files it writes.
USER_FILES = ("medical.fastmri", "medical.volumes", "medical.images")
BASELINES = (
    "medical.zero_filled",
    "medical.tv_cs",
    "medical.identity",
    "medical.tv_denoise",
    "medical.nlm",
    "medical.bilateral",
)


def test_conformance() -> None:
    reg = check_plugin(
        "medical",
        dataset_options=TINY,
        encoder_options={
            "medical.unet": SMALL_2D,
            "medical.unet_encoder": SMALL_2D,
            "medical.recon_unet": SMALL_2D,
            "medical.score_unet": SMALL_2D,
        },
        skip=USER_FILES,
    )
    assert {"medical.mri4x", "medical.ct_denoise", "medical.seg3d"} <= set(reg.keys("benchmark"))
    assert set(BASELINES) == set(reg.keys("baseline")) - {
        k for k in reg.keys("baseline") if k.startswith("core.")
    }
    assert all(reg.get("baseline", k).faces == ("dense",) for k in BASELINES)


def test_pretexts_that_need_their_own_network_declare_its_face() -> None:
    reg = Registry(plugins=["medical"], strict=True)
    reg.load()
    bench = reg.get("benchmark", "medical.ct_denoise")
    for pretext, network in (
        ("medical.cbsn", "medical.cbsn_net"),
        ("medical.noise2score", "medical.score_unet"),
        ("medical.filter2noise", "medical.agbf"),
    ):
        face = reg.get("pretext", pretext).face
        offering = [e.name for e in reg.specs("encoder") if e.offers(face)]
        assert offering == [network] and not reg.get("encoder", bench.encoder).offers(face)
        assert reg.get("encoder", network).offers("dense")  # the restoration evaluator reads it


def test_registering_imports_no_domain_library() -> None:
    code = (
        "import sys; from selfsup.api import Registry; "
        "r = Registry(plugins=['medical'], strict=True); r.load(); "
        "print(sorted(m for m in ('monai', 'nibabel', 'pydicom', 'h5py', 'skimage', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_pretext_refuses_an_encoder_without_its_face(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "pretrain",
            "--dataset",
            "medical.ct_denoise",
            "--encoder",
            "medical.unet",
            "--pretext",
            "medical.cbsn",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    assert code != 0
    err = capsys.readouterr().err
    assert "'medical.blind_spot_net' face" in err
    fitting = [key.strip() for key in err.split("offer 'medical.blind_spot_net':")[1].split(",")]
    assert fitting == ["medical.cbsn_net"]


def test_selfsup_run_denoises_low_dose_ct(tmp_path: Path) -> None:
    toml = tmp_path / "n2s.toml"
    toml.write_text(
        'name = "n2s-ct"\n'
        '[dataset]\nname = "medical.ct_denoise"\nimage_size = 32\n'
        '[encoder]\nname = "medical.unet"\nfeatures = [4, 4, 8, 8, 16, 4]\n'
        '[pretext]\nname = "medical.blind_spot"\n'
        "[training]\nsteps = 5\nbatch_size = 4\nprogress = false\n"
        '[[evaluators]]\nname = "medical.restoration"\n'
        "[evaluation]\nseeds = [0]\n",
        encoding="utf-8",
    )
    assert main(["run", str(toml), "--run-dir", str(tmp_path / "run")]) == 0
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "restoration.psnr" in summary and "restoration.ssim" in summary
    assert (tmp_path / "run" / "encoder.safetensors").is_file()


def test_report_draws_the_ct_panels_from_a_bench_folder(tmp_path: Path) -> None:
    """``BenchmarkSpec.figures``: the report shows one test slice through every method."""
    from selfsup_medical import figures

    assert main(["bench", "--benchmark", "medical.ct_denoise", "--steps", "2", "--seeds", "0",
                 "--pretext", "medical.blind_spot", "--baseline", "medical.identity",
                 "--set", "training.batch_size=2", "--out", str(tmp_path)]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    [(title, fig)] = figures.ct_denoise(tmp_path, rows)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert "PSNR" in title and len(titles) == 4  # input, blind spot, identity, reference
    assert titles[1].startswith("medical.blind_spot\n") and titles[1].endswith(" dB")
    page = (tmp_path / "report.html").read_text()
    assert "One CT test slice through every method" in page
