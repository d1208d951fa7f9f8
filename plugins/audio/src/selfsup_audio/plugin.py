"""What selfsup-audio registers with selfsup (entry point ``audio``).

Factories are ``"module:function"`` strings: importing this module imports neither
torch, torchaudio, soundfile nor the synthesiser; each component's module is
imported when it is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.api import (
    EMBEDDING,
    MASKED_TOKENS,
    TOKENS,
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
MEL = "audio.mel"  # natural-log mel energies [n_mels, frames], frequency first
MODALITIES = (MEL,)
#: audio.score_pairs' samples: {"audio": log-mel [n_mels, frames], "score": piano roll
#: [pitches, steps]} (datasets/score_pairs.py)
SCORE_PAIR = "audio.score_pair"
#: the plugin face of audio.score_pair: embed_score(batch) -> [B, D], the score side
SCORE_FACE = "audio.score"
#: the views' defaults (datasets/views.py documents each); declared here once so that
#: registering imports no torch
VIEWS: dict[str, Any] = {
    "crop_min": 0.8, "shift_frames": 10, "gain_db": 6.0, "noise_prob": 0.5,
    "snr_min": 5.0, "snr_max": 20.0, "freq_masks": 2, "freq_width": 8,
    "time_masks": 2, "time_width": 10,
}


@hookimpl
def register_datasets(register: Register) -> None:
    register(DatasetSpec(
        "audio.kws_synth", "selfsup_audio.datasets.kws_synth:build", MODALITIES,
        "spoken keyword spotting synthesised offline with espeak-ng: the 35 Speech Commands "
        "words (or 10 digits), many voices, 1 s at 16 kHz, speaker-disjoint splits, "
        "optional held-out accents and noisy condition",
        options={"vocabulary": "speech_commands35", "n_speakers": 40, "voices_per_speaker": 2,
                 "split": "speaker", "condition": "clean", "features": "fbank", "n_mels": 64,
                 "seed": 0},
        offline=True, views=VIEWS,
    ))
    register(DatasetSpec(
        "audio.mixtures", "selfsup_audio.datasets.mixtures:build", MODALITIES,
        "multi-label sound-event tagging: 1-3 of 8 synthesised event classes (tones, chirps, "
        "band noise, clicks, harmonics, tremolo, thumps) per 1 s clip over a noise floor",
        options={"n_clips": 1200, "max_events": 3, "features": "logmel", "n_mels": 64,
                 "seed": 0},
        offline=True, views=VIEWS,
    ))
    register(DatasetSpec(
        "audio.folder", "selfsup_audio.datasets.folder:build", MODALITIES,
        "your labelled WAV/FLAC/OGG clips: labels from sub-folders or a CSV (Speech Commands, "
        "ESC-50, UrbanSound8K layouts), resampled, mono, cropped/padded; needs path=",
        options={"layout": "auto", "sample_rate": 16000, "duration": 1.0, "features": "fbank",
                 "n_mels": 64},
        offline=True, views=VIEWS,
    ))
    register(DatasetSpec(
        "audio.score_pairs", "selfsup_audio.datasets.score_pairs:build", (SCORE_PAIR,),
        "2 s audio / piano-roll snippet pairs of Bach chorales from music21's bundled corpus, "
        "audio from a documented additive synthesiser, split by piece (needs the [music] "
        "extra)",
        options={"n_pieces": 36, "val_pieces": 4, "test_pieces": 8, "window_beats": 4,
                 "hop_beats": 2, "tempo": 120.0, "n_mels": 64, "seed": 0},
        offline=True,
    ))


@hookimpl
def register_encoders(register: Register) -> None:
    register(EncoderSpec(
        "audio.ast", "selfsup_audio.encoders:build_ast", MODALITIES,
        "Audio Spectrogram Transformer (Gong et al. 2021) with SSAST's patch or frame "
        "tokens; mean-pooled token states",
        options={"tokenization": "patch", "embed_dim": 192, "depth": 4, "n_heads": 3},
        faces=(EMBEDDING, TOKENS, MASKED_TOKENS),
    ))
    register(EncoderSpec(
        "audio.cnn", "selfsup_audio.encoders:build_cnn", MODALITIES,
        "small CNN on log-mel (4 conv-BN-ReLU blocks, global mean pool)",
        options={"width": 32, "embed_dim": 128}, faces=(EMBEDDING,),
    ))
    register(EncoderSpec(
        "audio.score_pair", "selfsup_audio.encoders:build_score_pair", (SCORE_PAIR,),
        "audio-score retrieval pathways: an audio.cnn on log-mel (embedding face) and a "
        "piano-roll CNN (audio.score face: embed_score) into one shared space",
        options={"audio_width": 16, "score_width": 16, "embed_dim": 128},
        faces=(EMBEDDING, SCORE_FACE),
    ))


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(PretextSpec(
        "audio.ssast", "selfsup_audio.pretexts.ssast:build", MODALITIES,
        "SSAST (Gong et al., AAAI 2022): masked patch InfoNCE + reconstruction, cluster "
        "masking for patches, random for frames; trains the masked_tokens face",
        options={"mask_ratio": 0.5, "generative_weight": 10.0}, face=MASKED_TOKENS,
    ))
    register(PretextSpec(
        "audio.score_contrast", "selfsup_audio.pretexts.score_contrast:build", (SCORE_PAIR,),
        "audio-sheet music correspondence (after Dorfer et al., TISMIR 2018): symmetric "
        "InfoNCE between the audio and score embeddings of matching snippets",
        options={"temperature": 0.1}, face=SCORE_FACE,
    ))


@hookimpl
def register_evaluators(register: Register) -> None:
    register(EvaluatorSpec(
        "audio.retrieval", "selfsup_audio.evaluators.retrieval:build", (SCORE_PAIR,),
        "cross-modal retrieval on the held-out pieces: recall@1, recall@10 and MRR of "
        "audio -> score and score -> audio (reads the audio.score face)",
        options={"split": "test"}, task_kinds=("*",),
    ))


@hookimpl
def register_baselines(register: Register) -> None:
    register(BaselineSpec(
        "audio.logmel_stats", "selfsup_audio.baselines:build_logmel_stats", MODALITIES,
        "mean and std over time of each log-mel bin and of its deltas, as fixed features",
        faces=(EMBEDDING,),
    ))
    register(BaselineSpec(
        "audio.mfcc", "selfsup_audio.baselines:build_mfcc", MODALITIES,
        "MFCCs with deltas and delta-deltas, mean and std over time: with the linear probe, "
        "MFCC + logistic regression",
        options={"n_mfcc": 20}, faces=(EMBEDDING,),
    ))


@hookimpl
def register_benchmarks(register: Register) -> None:
    heads = {"proj_hidden_dim": 256, "proj_out_dim": 128}
    register(BenchmarkSpec(
        name="audio.kws",
        dataset="audio.kws_synth",
        encoder="audio.ast",
        pretexts=("audio.ssast", "core.simclr", "core.byol"),
        evaluators=("core.linear_probe", "core.knn"),
        summary="keyword spotting (35 words) on synthesised speech in noise, test speakers "
        "unheard: SSAST, SimCLR and BYOL-A-style invariance pretraining of a small AST beside "
        "log-mel/MFCC features, a random-init and a supervised AST",
        dataset_options={"condition": "noisy", "n_speakers": 40, "voices_per_speaker": 2},
        encoder_options={"embed_dim": 128, "depth": 4, "n_heads": 4},
        pretext_options={
            "audio.ssast": {"mask_ratio": 0.5},
            "core.simclr": {**heads, "temperature": 0.2},
            "core.byol": {**heads, "pred_hidden_dim": 256},
        },
        evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1, 0.01]}},
        baselines=("core.input", "core.random_init", "core.supervised", "audio.logmel_stats",
                   "audio.mfcc"),
        baseline_options={"core.supervised": {"epochs": 15}},
        train={"steps": 300, "batch_size": 64, "lr": 5e-4, "warmup_steps": 30},
        gpu_train={"steps": 20000, "batch_size": 256, "lr": 5e-4, "warmup_steps": 1000,
                   "device": "cuda"},
        headline="linear_probe.accuracy",
        direction="higher",
        quick={"pretexts": ("audio.ssast", "core.byol"),
               "baselines": ("core.random_init", "audio.mfcc"),
               "evaluators": ("core.linear_probe",), "train": {"steps": 100},
               "seconds": 105},
    ))
    register(BenchmarkSpec(
        name="audio.tagging",
        dataset="audio.mixtures",
        # the AST of audio.kws: the CNN (full-resolution convolutions) trains at about
        # 20 clips/s on one CPU thread, 15 minutes a pretext at this budget
        encoder="audio.ast",
        pretexts=("core.simclr", "core.byol", "audio.ssast"),
        evaluators=("core.linear_probe",),
        summary="multi-label tagging of synthesised event mixtures (mAP): SSAST and "
        "SimCLR/BYOL invariance pretraining of a small AST beside log-mel/MFCC statistics "
        "and a random-init AST",
        encoder_options={"embed_dim": 128, "depth": 4, "n_heads": 4},
        pretext_options={
            "core.simclr": {**heads, "temperature": 0.2},
            "core.byol": {**heads, "pred_hidden_dim": 256},
            "audio.ssast": {"mask_ratio": 0.5},
        },
        evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1]}},
        baselines=("core.random_init", "audio.logmel_stats", "audio.mfcc"),
        train={"steps": 300, "batch_size": 64, "lr": 5e-4, "warmup_steps": 30},
        gpu_train={"steps": 10000, "batch_size": 256, "lr": 5e-4, "warmup_steps": 500,
                   "device": "cuda"},
        headline="linear_probe.map",
        direction="higher",
    ))
    register(BenchmarkSpec(
        name="audio.score_retrieval",
        dataset="audio.score_pairs",
        encoder="audio.score_pair",
        pretexts=("audio.score_contrast",),
        evaluators=("audio.retrieval",),
        summary="audio <-> score snippet retrieval on held-out Bach chorales (music21 corpus, "
        "synthesised audio, piano rolls): contrastive pathways against the same pair at "
        "random init",
        encoder_options={"audio_width": 8},
        baselines=("core.random_init",),
        train={"steps": 250, "batch_size": 64, "lr": 1e-3, "warmup_steps": 25},
        gpu_train={"steps": 5000, "batch_size": 256, "lr": 1e-3, "warmup_steps": 250,
                   "device": "cuda"},
        headline="retrieval.a2s_mrr",
        direction="higher",
    ))
    register_sanity_benchmarks(register)


def register_sanity_benchmarks(register: Register) -> None:
    """Sanity settings (issue 16): each audio method where its paper's assumption holds
    by construction; ``selfsup bench --sanity`` runs them (seed 0). BENCHMARKS.md, Audio
    plugin, "Sanity settings (issue 16)", has the measurements behind the margins."""
    heads = {"proj_hidden_dim": 256, "proj_out_dim": 128}
    # audio.mixtures without the time crop: shift, gain, noise and SpecAugment keep every
    # event of the clip, so the views are label-preserving (the invariance assumption)
    register(BenchmarkSpec(
        name="audio.sanity_invariance",
        dataset="audio.mixtures",
        dataset_options={"views": {"crop_min": 1.0}},
        encoder="audio.ast",
        pretexts=("core.simclr", "core.byol"),
        evaluators=("core.linear_probe",),
        summary="sanity: SimCLR and BYOL-A-style invariance to label-preserving views (no "
        "crop: every event stays in the clip) must beat the random-init AST at tagging",
        encoder_options={"embed_dim": 128, "depth": 4, "n_heads": 4},
        pretext_options={
            "core.simclr": {**heads, "temperature": 0.2},
            "core.byol": {**heads, "pred_hidden_dim": 256},
        },
        evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1]}},
        baselines=("core.random_init",),
        train={"steps": 200, "batch_size": 64, "lr": 5e-4, "warmup_steps": 20},
        headline="linear_probe.map",
        direction="higher",
        # measured, seed 0: SimCLR 0.656, BYOL 0.465, random-init AST 0.405 mAP (3 min 48 s)
        sanity=(Expect("core.simclr", beats="baseline:core.random_init", margin=0.1),
                Expect("core.byol", beats="baseline:core.random_init", margin=0.03)),
    ))
    # synthesised events (tones, harmonic stacks, band noise) are stationary over a
    # patch's 16 frames: a hidden patch is predictable from its neighbours (SSAST's
    # assumption)
    register(BenchmarkSpec(
        name="audio.sanity_ssast",
        dataset="audio.mixtures",
        encoder="audio.ast",
        pretexts=("audio.ssast",),
        evaluators=("core.linear_probe",),
        summary="sanity: SSAST masked-patch pretraining on event mixtures whose hidden patches "
        "are predictable must beat the random-init AST at tagging",
        encoder_options={"embed_dim": 128, "depth": 4, "n_heads": 4},
        pretext_options={"audio.ssast": {"mask_ratio": 0.5}},
        evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1]}},
        baselines=("core.random_init",),
        train={"steps": 300, "batch_size": 64, "lr": 5e-4, "warmup_steps": 30},
        headline="linear_probe.map",
        direction="higher",
        # measured, seed 0: SSAST 0.496 against the random-init AST's 0.405 mAP (1 min 3 s)
        sanity=(Expect("audio.ssast", beats="baseline:core.random_init", margin=0.04),),
    ))
    # SSAST's own evaluation is fine-tuning (MAE-style features are weak under a linear
    # probe of mean-pooled tokens); clean speech, whose hidden patches the visible ones
    # predict. Its lead grows with pretraining, seed 0, at 10% of the labels: -0.002 at
    # 300 steps, +0.018 at 600, +0.030 at 1,200 (BENCHMARKS, "Sanity settings (issue 16)")
    register(BenchmarkSpec(
        name="audio.sanity_ssast_finetune",
        dataset="audio.kws_synth",
        dataset_options={"condition": "clean", "n_speakers": 40, "voices_per_speaker": 2},
        encoder="audio.ast",
        pretexts=("audio.ssast",),
        evaluators=("core.finetune",),
        evaluator_options={"core.finetune": {"label_fractions": [0.1]}},
        summary="sanity: the AST fine-tuned from SSAST (1,200 steps on clean speech) must "
        "beat the same AST fine-tuned from random init with 10% of the keyword labels",
        encoder_options={"embed_dim": 128, "depth": 4, "n_heads": 4},
        pretext_options={"audio.ssast": {"mask_ratio": 0.5}},
        baselines=("core.random_init",),
        train={"steps": 1200, "batch_size": 64, "lr": 5e-4, "warmup_steps": 30},
        headline="finetune.accuracy",
        direction="higher",
        sanity=(Expect("audio.ssast", beats="baseline:core.random_init", margin=0.015,
                       metric="finetune.accuracy@10%"),),
    ))
