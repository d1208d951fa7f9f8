"""What selfsup-medical registers with selfsup (entry point ``medical``).

Factories are ``"module:function"`` strings: importing this module imports
neither torch nor MONAI nor any image reader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.api import (
    DENSE,
    EMBEDDING,
    IMAGE2D,
    KSPACE,
    VOLUME3D,
    BaselineSpec,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    Expect,
    PretextSpec,
    hookimpl,
)
from selfsup_medical.datasets.views import VIEW_DEFAULTS
from selfsup_medical.faces import BILATERAL_FILTER, BLIND_SPOT_NET, SCORE

Register = Callable[[Any], None]
IMAGE = (IMAGE2D,)
IMAGES = (IMAGE2D, VOLUME3D)
VOLUME = (VOLUME3D,)
KSPACE_ONLY = (KSPACE,)
M = "selfsup_medical"


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        DatasetSpec(
            "medical.mri_recon",
            f"{M}.datasets.mri:build",
            KSPACE_ONLY,
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
                "split": "volumes",
            },
        )
    )
    register(
        DatasetSpec(
            "medical.fastmri",
            f"{M}.datasets.fastmri:build",
            KSPACE_ONLY,
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
        )
    )
    register(
        DatasetSpec(
            "medical.ct_denoise",
            f"{M}.datasets.ct:build",
            IMAGE,
            "low-dose CT denoising: real CT/MR slices shipped in installed wheels, low dose "
            "simulated by Poisson noise on the Radon sinogram",
            options={"photons": 1e4, "image_size": 128, "angles": 180, "seed": 0,
                     "noise": "ct", "sigma": 0.05, "correlation": 1.0},
            views=VIEW_DEFAULTS,
        )
    )
    register(
        DatasetSpec(
            "medical.synthetic_seg3d",
            f"{M}.datasets.synthetic_seg:build_3d",
            VOLUME,
            "MONAI's synthetic 3D volumes with sphere label maps, at a noise level where an "
            "intensity threshold no longer segments them",
            options={"n_volumes": 40, "size": 32, "n_classes": 3, "noise": 1.5, "seed": 0},
            views=VIEW_DEFAULTS,
        )
    )
    register(
        DatasetSpec(
            "medical.brain_tissue3d",
            f"{M}.datasets.brain_tissue:build",
            VOLUME,
            "3D cubes of the MNI152 T1 brain template (shipped in nilearn's wheel), labelled "
            "grey matter / white matter / other by its tissue maps; splits by coronal band",
            options={"patch": 32, "stride": 8, "min_foreground": 0.25},
            views=VIEW_DEFAULTS,
        )
    )
    register(
        DatasetSpec(
            "medical.synthetic_seg2d",
            f"{M}.datasets.synthetic_seg:build_2d",
            IMAGE,
            "MONAI's synthetic 2D images with circle label maps, at a noise level where an "
            "intensity threshold no longer segments them",
            options={"n_images": 200, "size": 64, "n_classes": 3, "noise": 1.5, "seed": 0},
            views=VIEW_DEFAULTS,
        )
    )
    register(
        DatasetSpec(
            "medical.volumes",
            f"{M}.datasets.folder:build_volumes",
            VOLUME,
            "your NIfTI/DICOM volumes from a folder (label maps paired by name, optional); "
            "unreadable files are skipped and reported; needs root=",
            options={"root": None, "labels": None, "size": 64, "n_classes": None, "seed": 0},
            views=VIEW_DEFAULTS,
        )
    )
    register(
        DatasetSpec(
            "medical.images",
            f"{M}.datasets.folder:build_images",
            IMAGE,
            "your 2D NIfTI/DICOM images (or slices of volumes) from a folder, label maps paired "
            "by name, optional; unreadable files are skipped and reported; needs root=",
            options={"root": None, "labels": None, "size": 128, "n_classes": None, "seed": 0},
            views=VIEW_DEFAULTS,
        )
    )


@hookimpl
def register_encoders(register: Register) -> None:
    register(
        EncoderSpec(
            "medical.unet",
            f"{M}.models:build_unet",
            IMAGES,
            "MONAI BasicUNet, 2D or 3D, CPU-sized widths; dense output (restoration, "
            "segmentation), and its pooled deepest features",
            options={"features": None, "out_channels": None, "dropout": 0.0,
                     "standardize": None},
            faces=(DENSE, EMBEDDING),
        )
    )
    register(
        EncoderSpec(
            "medical.unet_encoder",
            f"{M}.models:build_unet_encoder",
            IMAGES,
            "the contracting path of medical.unet, globally pooled: embeddings for probes "
            "(the whole U-Net's dense output too)",
            options={"features": None, "dropout": 0.0},
            faces=(EMBEDDING, DENSE),
        )
    )
    register(
        EncoderSpec(
            "medical.recon_unet",
            f"{M}.models:build_recon_unet",
            KSPACE_ONLY,
            "residual 2D U-Net on the zero-filled complex image, hard data consistency on the "
            "acquired columns; complex output [B, 2, H, W]",
            options={"features": None, "data_consistency": True, "normalize": True},
            faces=(DENSE,),
        )
    )
    register(
        EncoderSpec(
            "medical.cbsn_net",
            f"{M}.pretexts.cbsn:build_encoder",
            IMAGE,
            "C-BSN's conditional blind-spot network (blind spot on in training, off at inference)",
            options={"channels": 32, "blocks": 4},
            faces=(DENSE, BLIND_SPOT_NET),
        )
    )
    register(
        EncoderSpec(
            "medical.score_unet",
            f"{M}.pretexts.noise2score:build_encoder",
            IMAGE,
            "U-Net score model with Tweedie's formula: the dense face is the denoised image",
            options={"features": None, "noise": "gaussian", "noise_level": None},
            faces=(DENSE, SCORE),
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
            faces=(DENSE, BILATERAL_FILTER),
        )
    )


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(
        PretextSpec(
            "medical.noise2recon",
            f"{M}.pretexts.noise2recon:build",
            KSPACE_ONLY,
            "Noise2Recon (Desai et al., MRM 2023): reconstruction loss on scans with a reference, "
            "consistency between reconstructions of clean and noise-augmented k-space",
            options={
                "consistency_weight": 1.0,
                "reconstruction": "auto",
                "supervised_consistency": False,
                "holdout_fraction": 0.4,
                "input_weight": 1.0,
            },
            face=DENSE,
            needs_views=True,
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
            face=DENSE,
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
            face=BLIND_SPOT_NET,
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
            face=SCORE,
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
            face=BILATERAL_FILTER,
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
            face=DENSE,
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
            face=EMBEDDING,
            needs_views=True,
        )
    )
    register(
        PretextSpec(
            "medical.mae3d",
            f"{M}.pretexts.mae3d:build",
            VOLUME,
            "masked-autoencoder pretraining of volumes: mask patches, reconstruct them",
            options={"patch_size": 4, "mask_ratio": 0.75, "norm_pix_loss": False},
            face=DENSE,
        )
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    register(
        EvaluatorSpec(
            "medical.restoration",
            f"{M}.evaluators.restoration:build",
            (IMAGE2D, VOLUME3D, KSPACE),
            "PSNR, SSIM and NRMSE of the model's dense output against the clean reference",
            options={"split": "test", "data_range": 1.0, "batch_size": None},
            task_kinds=("dense",),
            face=DENSE,
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
            face=DENSE,
        )
    )


@hookimpl
def register_baselines(register: Register) -> None:
    register(
        BaselineSpec(
            "medical.zero_filled",
            f"{M}.baselines.mri:build_zero_filled",
            KSPACE_ONLY,
            "zero-filled inverse FFT of the undersampled k-space",
            faces=(DENSE,),
            task_kinds=("dense",),
        )
    )
    register(
        BaselineSpec(
            "medical.tv_cs",
            f"{M}.baselines.mri:build_tv_cs",
            KSPACE_ONLY,
            "total-variation compressed sensing (FISTA with a TV proximal step; weight chosen on "
            "the validation split)",
            options={"weight": None, "iterations": 100, "inner_iterations": 10},
            faces=(DENSE,),
            task_kinds=("dense",),
        )
    )
    register(
        BaselineSpec(
            "medical.identity",
            f"{M}.baselines.denoising:build_identity",
            IMAGES,
            "the degraded input itself",
            faces=(DENSE,),
            task_kinds=("dense",),
        )
    )
    for key, what, option in (
        ("tv_denoise", "total-variation denoising (Chambolle)", "weight"),
        ("nlm", "non-local means", "h"),
        ("bilateral", "bilateral filter", "sigma_color"),
    ):
        register(
            BaselineSpec(
                f"medical.{key}",
                f"{M}.baselines.denoising:build_{key}",
                IMAGE,
                f"{what}; strength chosen on the validation split when not given",
                options={option: None},
                faces=(DENSE,),
                task_kinds=("dense",),
            )
        )


RESTORATION_TRAIN = {
    "steps": 200,
    "batch_size": 8,
    "lr": 1e-3,
    "weight_decay": 0.0,
    "warmup_steps": 10,
}
MRI_BASELINES = ("medical.zero_filled", "medical.tv_cs")


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
                    headline="restoration.psnr",
                    figures="selfsup_medical.figures:mri",
                )
            )
    register(
        BenchmarkSpec(
            name="medical.ct_denoise",
            dataset="medical.ct_denoise",
            dataset_options={"image_size": 64},  # CPU setting; 128 takes about 4x longer
            encoder="medical.unet",
            # C-BSN, Noise2Score and Filter2Noise train their own networks: their faces
            # (medical.blind_spot_net, medical.score, medical.bilateral_filter) are offered
            # only by medical.cbsn_net, medical.score_unet and medical.agbf
            pretexts=(
                "medical.blind_spot",
                "medical.cbsn",
                "medical.noise2score",
                "medical.filter2noise",
            ),
            # the authors' blind stride 5 sees a 64x64 slice only through pixels 5 apart;
            # 3 already decorrelates FBP noise here (BENCHMARKS.md, medical, "C-BSN")
            pretext_options={"medical.cbsn": {"blind_stride": 3}},
            evaluators=("medical.restoration",),
            summary="low-dose CT denoising (Poisson noise on the sinogram, 1e4 photons)",
            baselines=(
                "medical.identity",
                "medical.tv_denoise",
                "medical.nlm",
                "medical.bilateral",
            ),
            train=RESTORATION_TRAIN,
            gpu_train={**RESTORATION_TRAIN, "steps": 3000, "device": "cuda"},
            headline="restoration.psnr",
            figures="selfsup_medical.figures:ct_denoise",
            quick={"pretexts": ("medical.noise2score", "medical.filter2noise"),
                   "baselines": ("medical.identity", "medical.bilateral"),
                   "train": {"steps": 100}, "seconds": 45},
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
            # core.supervised keeps core's 60 epochs: 41 of the 59 minutes of the last CPU
            # run; a smaller budget (baseline_options) would change its BENCHMARKS.md number
            baselines=("core.input", "core.random_init", "core.supervised"),
            headline="linear_probe.accuracy",
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
            headline="dice_finetune.dice",
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
    register_sanity_benchmarks(register)


def register_sanity_benchmarks(register: Register) -> None:
    """Sanity settings (issue 16): each method where its paper's assumption holds by
    construction; ``selfsup bench --sanity`` runs them. BENCHMARKS.md, Medical plugin,
    "Sanity settings and the rows below their input", has their curves."""
    register(
        BenchmarkSpec(
            name="medical.sanity_blind_spot",
            dataset="medical.ct_denoise",
            # the CT slices' full-dose images + i.i.d. Gaussian noise: input 26.0 dB
            dataset_options={"image_size": 64, "noise": "gaussian", "sigma": 0.05},
            encoder="medical.unet",
            pretexts=("medical.blind_spot",),
            evaluators=("medical.restoration",),
            summary="sanity: Noise2Self on i.i.d. Gaussian noise (its assumption holds) must "
            "beat the noisy input",
            baselines=("medical.identity",),
            train=RESTORATION_TRAIN,
            headline="restoration.psnr",
            # measured 31.0 dB against 26.0 (passes the input at step 60 of 200)
            sanity=(Expect("medical.blind_spot", beats="baseline:medical.identity",
                           margin=3.0),),
        )
    )
    register(
        BenchmarkSpec(
            name="medical.sanity_noise2recon",
            dataset="medical.mri_recon",
            # train and test slices dealt out of the same two T1 volumes (matched scans)
            dataset_options={"acceleration": 4, "image_size": 64, "split": "matched"},
            encoder="medical.recon_unet",
            pretexts=("medical.noise2recon",),
            evaluators=("medical.restoration",),
            summary="sanity: self-supervised Noise2Recon (SSDU + consistency) on 4x scans "
            "matched to its training scans must beat the zero-filled image",
            baselines=("medical.zero_filled",),
            train=RESTORATION_TRAIN,
            headline="restoration.psnr",
            sanity=(Expect("medical.noise2recon", beats="baseline:medical.zero_filled",
                           margin=1.0),),
        )
    )
    register(
        BenchmarkSpec(
            name="medical.sanity_cbsn",
            dataset="medical.ct_denoise",
            # Gaussian noise blurred by 1 pixel (neighbour correlation 0.78): input 26.0 dB
            dataset_options={"image_size": 64, "noise": "correlated", "sigma": 0.05},
            encoder="medical.unet",  # the blind-spot U-Net; C-BSN trains medical.cbsn_net
            pretexts=("medical.blind_spot", "medical.cbsn"),
            # s_b = 3 (noise correlation 0.10 at 3 pixels): at the authors' 5, a 64x64
            # slice seen through pixels 5 apart keeps too little of the image
            pretext_options={"medical.cbsn": {"blind_stride": 3}},
            evaluators=("medical.restoration",),
            summary="sanity: C-BSN on spatially correlated noise (its assumption holds) must "
            "beat the plain blind-spot network, which learns the noise, and the noisy input",
            baselines=("medical.identity",),
            train=RESTORATION_TRAIN,
            headline="restoration.psnr",
            # measured 28.3 dB against 25.2 (blind-spot U-Net) and 26.0 (input)
            sanity=(Expect("medical.cbsn", beats="medical.blind_spot", margin=1.5),
                    Expect("medical.cbsn", beats="baseline:medical.identity", margin=1.0)),
        )
    )
    register(
        BenchmarkSpec(
            name="medical.sanity_mae3d",
            dataset="medical.synthetic_seg3d",
            # noise 0.5 (seg3d's is 1.5): a masked 4^3 patch is predictable from its context
            dataset_options={"n_volumes": 40, "size": 32, "n_classes": 3, "noise": 0.5},
            encoder="medical.unet",
            pretexts=("medical.mae3d",),
            evaluators=("medical.dice_finetune",),
            evaluator_options={"medical.dice_finetune": {"n_labelled": (1, 2)}},
            summary="sanity: MAE pretraining on volumes whose masked patches are predictable "
            "must beat the same U-Net from scratch with 1 and 2 labelled volumes",
            baselines=(),
            train={"steps": 200, "batch_size": 4, "lr": 1e-3, "warmup_steps": 10},
            headline="dice_finetune.dice",
            # the evaluator scores the pretrained U-Net and the same U-Net from scratch in
            # one row; 3 seeds: +0.048 and +0.076 Dice (BENCHMARKS, "Few-label 3D
            # segmentation")
            sanity=tuple(
                Expect("medical.mae3d", beats="medical.mae3d", margin=0.02,
                       metric=f"dice_finetune.dice@{n}",
                       beats_metric=f"dice_finetune.scratch_dice@{n}")
                for n in (1, 2)
            ),
        )
    )
