"""What selfsup-medical registers with selfsup (entry point ``medical``).

Factories are ``"module:function"`` strings: importing this module imports
neither torch nor MONAI nor any image reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup import hookimpl
from selfsup.components import (
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    PretextSpec,
)

Register = Callable[[Any], None]
IMAGE = ("image2d",)
IMAGES = ("image2d", "volume3d")
VOLUME = ("volume3d",)
KSPACE = ("kspace",)
VIEWS = {"crop": 0.8, "flip": 0.5, "rotate": 0.2, "scale": 0.1, "intensity": 0.1}
M = "selfsup_medical"


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        DatasetSpec(
            "medical.mri_recon",
            f"{M}.datasets.mri:build",
            KSPACE,
            "single-coil MRI reconstruction from simulated Cartesian undersampling of real "
            "anatomical images shipped in installed wheels; 4x/8x, random or equispaced masks",
            options={
                "acceleration": 4,
                "mask": "random",
                "center_fraction": 0.08,
                "snr_db": None,
                "n_supervised": 0,
                "image_size": 128,
                "seed": 0,
                "smooth_phase": True,
            },
        )
    )
    register(
        DatasetSpec(
            "medical.fastmri",
            f"{M}.datasets.fastmri:build",
            KSPACE,
            "your fastMRI-style single-coil HDF5 files ('kspace' complex array, optional "
            "'reconstruction_esc'/'reconstruction_rss' reference), undersampled on the fly; "
            "needs root=",
            options={
                "root": None,
                "acceleration": 4,
                "mask": "random",
                "center_fraction": 0.08,
                "snr_db": None,
                "n_supervised": 0,
                "seed": 0,
            },
            offline=True,
        )
    )
    register(
        DatasetSpec(
            "medical.ct_denoise",
            f"{M}.datasets.ct:build",
            IMAGE,
            "low-dose CT denoising: real CT/MR slices shipped in installed wheels, low dose "
            "simulated by Poisson noise on the Radon sinogram",
            options={"photons": 1e4, "image_size": 128, "views": 180, "seed": 0, **VIEWS},
        )
    )
    register(
        DatasetSpec(
            "medical.synthetic_seg3d",
            f"{M}.datasets.synthetic_seg:build_3d",
            VOLUME,
            "MONAI's synthetic 3D volumes with sphere label maps, at a noise level where an "
            "intensity threshold no longer segments them",
            options={"n_volumes": 40, "size": 32, "n_classes": 3, "noise": 1.5, "seed": 0, **VIEWS},
        )
    )
    register(
        DatasetSpec(
            "medical.brain_tissue3d",
            f"{M}.datasets.brain_tissue:build",
            VOLUME,
            "3D cubes of the MNI152 T1 brain template (shipped in nilearn's wheel), labelled "
            "grey matter / white matter / other by its tissue maps; splits by coronal band",
            options={"patch": 32, "stride": 8, "min_foreground": 0.25, **VIEWS},
        )
    )
    register(
        DatasetSpec(
            "medical.synthetic_seg2d",
            f"{M}.datasets.synthetic_seg:build_2d",
            IMAGE,
            "MONAI's synthetic 2D images with circle label maps, at a noise level where an "
            "intensity threshold no longer segments them",
            options={"n_images": 200, "size": 64, "n_classes": 3, "noise": 1.5, "seed": 0, **VIEWS},
        )
    )
    register(
        DatasetSpec(
            "medical.volumes",
            f"{M}.datasets.folder:build_volumes",
            VOLUME,
            "your NIfTI/DICOM volumes from a folder (label maps paired by name, optional); "
            "unreadable files are skipped and reported; needs root=",
            options={
                "root": None,
                "labels": None,
                "size": 64,
                "n_classes": None,
                "seed": 0,
                **VIEWS,
            },
        )
    )
    register(
        DatasetSpec(
            "medical.images",
            f"{M}.datasets.folder:build_images",
            IMAGE,
            "your 2D NIfTI/DICOM images (or slices of volumes) from a folder, label maps paired "
            "by name, optional; unreadable files are skipped and reported; needs root=",
            options={
                "root": None,
                "labels": None,
                "size": 128,
                "n_classes": None,
                "seed": 0,
                **VIEWS,
            },
        )
    )


@hookimpl
def register_encoders(register: Register) -> None:
    register(
        EncoderSpec(
            "medical.unet",
            f"{M}.models:build_unet",
            IMAGES,
            "MONAI BasicUNet, 2D or 3D, CPU-sized widths; dense output (restoration, segmentation)",
            options={"features": None, "out_channels": None, "dropout": 0.0},
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.unet_encoder",
            f"{M}.models:build_unet_encoder",
            IMAGES,
            "the contracting path of medical.unet, globally pooled: embeddings for probes",
            options={"features": None, "dropout": 0.0},
        )
    )
    register(
        EncoderSpec(
            "medical.recon_unet",
            f"{M}.models:build_recon_unet",
            KSPACE,
            "residual 2D U-Net on the zero-filled complex image, hard data consistency on the "
            "acquired columns; complex output [B, 2, H, W]",
            options={"features": None, "data_consistency": True},
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.cbsn_net",
            f"{M}.pretexts.cbsn:build_encoder",
            IMAGE,
            "C-BSN's conditional blind-spot network (blind spot on in training, off at inference)",
            options={"channels": 32, "blocks": 4},
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.score_unet",
            f"{M}.pretexts.noise2score:build_encoder",
            IMAGE,
            "U-Net score model with Tweedie's formula: forward gives the denoised image",
            options={"features": None, "noise": "gaussian", "noise_level": None},
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.agbf",
            f"{M}.pretexts.filter2noise:build_encoder",
            IMAGE,
            "attention-guided bilateral filter with per-pixel parameters from a small network",
            options={
                "n_stages": 2,
                "patch_size": 8,
                "hidden_dim": 8,
                "max_sigma": 6.0,
                "kernel_size": 7,
            },
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.zero_filled",
            f"{M}.baselines:build_zero_filled",
            KSPACE,
            "zero-filled inverse FFT of the undersampled k-space (classical baseline)",
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.tv_cs",
            f"{M}.baselines:build_tv_cs",
            KSPACE,
            "total-variation compressed sensing (FISTA with a TV proximal step; weight chosen on "
            "the validation split) (classical baseline)",
            options={"weight": None, "iterations": 100, "inner_iterations": 10},
            output="dense",
        )
    )
    register(
        EncoderSpec(
            "medical.identity",
            f"{M}.baselines:build_identity",
            IMAGES,
            "the degraded input itself (baseline)",
            output="dense",
        )
    )
    for key, what, option in (
        ("tv_denoise", "total-variation denoising (Chambolle)", "weight"),
        ("nlm", "non-local means", "h"),
        ("bilateral", "bilateral filter", "sigma_color"),
    ):
        register(
            EncoderSpec(
                f"medical.{key}",
                f"{M}.baselines:build_{key}",
                IMAGE,
                f"{what}; strength chosen on the validation split when not given (classical "
                "baseline)",
                options={option: None},
                output="dense",
            )
        )


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(
        PretextSpec(
            "medical.noise2recon",
            f"{M}.pretexts.noise2recon:build",
            KSPACE,
            "Noise2Recon (Desai et al., MRM 2023): reconstruction loss on scans with a reference, "
            "consistency between reconstructions of clean and noise-augmented k-space",
            options={
                "consistency_weight": 1.0,
                "reconstruction": "auto",
                "supervised_consistency": False,
                "holdout_fraction": 0.4,
                "input_weight": 1.0,
            },
            needs_views=True,
            encoder_output="dense",
        )
    )
    register(
        PretextSpec(
            "medical.blind_spot",
            f"{M}.pretexts.blind_spot:build",
            IMAGES,
            "blind-spot denoising: Noise2Self grid masking (Batson & Royer 2019) or Noise2Void "
            "pixel replacement (Krull et al. 2019), loss on the masked pixels",
            options={"masking": "noise2self", "grid": 4, "replacement": None, "radius": 2},
            encoder_output="dense",
        )
    )
    register(
        PretextSpec(
            "medical.cbsn",
            f"{M}.pretexts.cbsn:build",
            IMAGE,
            "C-BSN (Jang et al., ICCV 2023): conditional blind-spot network trained on "
            "pixel-shuffle downsampled images; blind spot off at inference",
            options={
                "blind_stride": 5,
                "invariance_stride": 2,
                "invariance_weight": 2.0,
                "ramp_fraction": 0.4,
            },
            encoders=("medical.cbsn_net",),
        )
    )
    register(
        PretextSpec(
            "medical.noise2score",
            f"{M}.pretexts.noise2score:build",
            IMAGE,
            "Noise2Score (Kim & Ye, NeurIPS 2021): amortised residual DAE estimates the score; "
            "Tweedie's formula denoises",
            options={
                "sigma_max": 0.05,
                "sigma_min": 0.001,
                "estimate_noise_level": True,
                "estimation_images": 64,
            },
            encoders=("medical.score_unet",),
        )
    )
    register(
        PretextSpec(
            "medical.filter2noise",
            f"{M}.pretexts.filter2noise:build",
            IMAGE,
            "Filter2Noise (Sun et al. 2025): attention-guided bilateral filter whose per-pixel "
            "parameters a small network predicts, downsampling-shuffle self-supervised loss",
            options={
                "edge_weight": 350.0,
                "dog_kernel_size": 7,
                "dog_sigma_narrow": 9.0,
                "dog_sigma_wide": 10.0,
                "shuffle": True,
            },
            encoders=("medical.agbf",),
        )
    )
    register(
        PretextSpec(
            "medical.context_restoration",
            f"{M}.pretexts.context_restoration:build",
            IMAGES,
            "inpainting / context restoration pretraining of a U-Net (Chen et al., MedIA 2019; "
            "Bhattacharya et al., SPIE 2022: self-supervised U-Net for polyps)",
            options={
                "mode": "swap",
                "n_swaps": 10,
                "n_boxes": 4,
                "patch_fraction": 0.125,
                "drop_fraction": 0.25,
                "loss_on": "image",
            },
            encoders=("medical.unet", "medical.unet_encoder"),
        )
    )
    register(
        PretextSpec(
            "medical.contrastive_2d3d",
            f"{M}.pretexts.contrastive_2d3d:build",
            VOLUME,
            "joint 2D/3D contrastive pretraining: intra- and inter-volume contrast of slices and "
            "volumes",
            options={
                "temperature": 0.5,
                "slices_per_volume": 4,
                "slab_depth": 16,
                "weight_3d": 1.0,
                "weight_2d": 1.0,
                "proj_hidden_dim": 256,
                "proj_out_dim": 64,
            },
            needs_views=True,
            encoders=("medical.unet", "medical.unet_encoder"),
        )
    )
    register(
        PretextSpec(
            "medical.mae3d",
            f"{M}.pretexts.mae3d:build",
            VOLUME,
            "masked-autoencoder pretraining of volumes: mask patches, reconstruct them",
            options={"patch_size": 4, "mask_ratio": 0.75, "norm_pix_loss": False},
            encoders=("medical.unet", "medical.unet_encoder"),
        )
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    register(
        EvaluatorSpec(
            "medical.restoration",
            f"{M}.evaluators.restoration:build",
            ("image2d", "volume3d", "kspace"),
            "PSNR, SSIM and NRMSE of the model's output against the clean reference",
            options={"split": "test", "data_range": 1.0, "batch_size": None},
            task_kinds=("dense",),
        )
    )
    register(
        EvaluatorSpec(
            "medical.dice_finetune",
            f"{M}.evaluators.segmentation:build",
            IMAGES,
            "Dice after fine-tuning on 1, 2 and 5 labelled volumes, against the same U-Net "
            "trained from scratch",
            options={
                "n_labelled": [1, 2, 5],
                "epochs": 50,
                "lr": 1e-3,
                "batch_size": 2,
                "eval_batch_size": 8,
            },
            task_kinds=("segmentation",),
        )
    )


RESTORATION_TRAIN = {
    "steps": 200,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 10,
}
MRI_BASELINES = ("encoder:medical.zero_filled", "encoder:medical.tv_cs")


@hookimpl
def register_benchmarks(register: Register) -> None:
    for acceleration in (4, 8):
        for n_supervised, kind in ((0, "self-supervised"), (4, "semi-supervised")):
            suffix = "" if n_supervised == 0 else "_semi"
            register(
                BenchmarkSpec(
                    name=f"medical.mri{acceleration}x{suffix}",
                    dataset="medical.mri_recon",
                    dataset_options={
                        "acceleration": acceleration,
                        "n_supervised": n_supervised,
                        "image_size": 64,  # CPU setting; 128 takes about 4x longer
                    },
                    encoder="medical.recon_unet",
                    pretexts=("medical.noise2recon",),
                    evaluators=("medical.restoration",),
                    summary=f"{acceleration}x MRI reconstruction of real anatomy, {kind} "
                    f"({n_supervised} fully-sampled training scans)",
                    baselines=MRI_BASELINES,
                    train=RESTORATION_TRAIN,
                    gpu_train={**RESTORATION_TRAIN, "steps": 3000, "device": "cuda"},
                )
            )
    register(
        BenchmarkSpec(
            name="medical.ct_denoise",
            dataset="medical.ct_denoise",
            dataset_options={"image_size": 64},  # CPU setting; 128 takes about 4x longer
            encoder="medical.unet",
            pretexts=(
                "medical.blind_spot",
                "medical.cbsn",
                "medical.noise2score",
                "medical.filter2noise",
            ),
            pretext_encoders={
                "medical.cbsn": "medical.cbsn_net",
                "medical.noise2score": "medical.score_unet",
                "medical.filter2noise": "medical.agbf",
            },
            evaluators=("medical.restoration",),
            summary="low-dose CT denoising (Poisson noise on the sinogram, 1e4 photons)",
            baselines=(
                "encoder:medical.identity",
                "encoder:medical.tv_denoise",
                "encoder:medical.nlm",
                "encoder:medical.bilateral",
            ),
            train=RESTORATION_TRAIN,
            gpu_train={**RESTORATION_TRAIN, "steps": 3000, "device": "cuda"},
        )
    )
    register(
        BenchmarkSpec(
            name="medical.tissue3d",
            dataset="medical.brain_tissue3d",
            encoder="medical.unet_encoder",
            pretexts=(
                "medical.context_restoration",
                "medical.mae3d",
                "medical.contrastive_2d3d",
                "core.simclr",
            ),
            evaluators=("core.linear_probe", "core.knn"),
            # the encoder embeds to 64 dims; a 256-wide head trains in seconds on a CPU
            pretext_options={
                "core.simclr": {"proj_hidden_dim": 256, "proj_out_dim": 64, "temperature": 0.2}
            },
            evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1]}},
            summary="tissue class of 32^3 brain MRI cubes from frozen volume embeddings "
            "(core's probes), after pretraining on the training cubes",
            baselines=("input", "random_init", "supervised"),
            train={"steps": 200, "batch_size": 4, "lr": 1e-3, "warmup_steps": 10},
            gpu_train={
                "steps": 3000,
                "batch_size": 32,
                "lr": 1e-3,
                "warmup_steps": 100,
                "device": "cuda",
            },
        )
    )
    register(
        BenchmarkSpec(
            name="medical.seg3d",
            dataset="medical.synthetic_seg3d",
            encoder="medical.unet",
            pretexts=("medical.context_restoration", "medical.mae3d", "medical.contrastive_2d3d"),
            evaluators=("medical.dice_finetune",),
            summary="few-label 3D segmentation (1, 2, 5 labelled volumes) after pretraining, "
            "against the same U-Net from scratch",
            baselines=(),
            train={"steps": 200, "batch_size": 4, "lr": 1e-3, "warmup_steps": 10},
            gpu_train={
                "steps": 3000,
                "batch_size": 8,
                "lr": 1e-3,
                "warmup_steps": 100,
                "device": "cuda",
            },
        )
    )
