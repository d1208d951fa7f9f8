"""Multi-label sound-event tagging on synthesised mixtures (``audio.mixtures``).

Each clip (1 s at 16 kHz) holds 1 to ``max_events`` events of distinct classes,
each at a random onset, duration (0.15-0.6 s) and gain (-12 to 0 dB), summed over a
white or pink noise floor at an SNR drawn from ``snr_db`` (dB, against the events'
power); the target is the multi-hot vector of the classes present (task kind
``multilabel``, scored by mean average precision). The eight event classes are
synthesised with numpy from documented recipes, every parameter drawn from the
seeded generator, so the set needs no download and no cache (1,200 clips take
about a second):

========== ==============================================================
class      recipe
========== ==============================================================
tone       a sine at 300-3,000 Hz (log-uniform)
chirp_up   a linear sweep upwards over one to two octaves from 200-1,500 Hz
chirp_down the same sweep downwards
noise      band-pass white noise, a 1-3 kHz wide band between 500 and 7,000 Hz
clicks     a click train at 5-30 clicks/s (2 ms decaying bursts)
harmonic   a sawtooth-like stack of 8 harmonics of 100-400 Hz, 1/k amplitudes
tremolo    a 500-2,500 Hz sine, amplitude-modulated at 4-12 Hz
thump      decaying 50-150 Hz sine bursts with a falling pitch, 2-4 per event
========== ==============================================================

Every event has 5 ms raised-cosine fades. Splits are random (``val_share``,
``test_share``), seeded. This is a controlled set, not a field recording: it
exercises the multi-label task kind and mAP, and it shows what the views do to
a label made of several events (a time crop can cut an event out of a view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from selfsup.api import non_negative_int, option, parse_options, positive_int

from .base import SpectrogramDataset
from .views import noise_waveforms, parse_views

NAME = "audio.mixtures"
SAMPLE_RATE = 16000
CLASSES = ("tone", "chirp_up", "chirp_down", "noise", "clicks", "harmonic", "tremolo",
           "thump")


def _share(x: Any) -> str | None:
    return None if isinstance(x, float) and 0 < x < 0.5 else "be in (0, 0.5)"


def _snr_range(x: Any) -> str | None:
    ok = (isinstance(x, (tuple, list)) and len(x) == 2
          and all(isinstance(v, (int, float)) for v in x) and x[0] <= x[1])
    return None if ok else "be [low, high] in dB with low <= high"


@dataclass(frozen=True)
class MixturesConfig:
    """Options of ``audio.mixtures``."""

    n_clips: int = option(1200, positive_int, "clips in all splits")
    max_events: int = option(3, lambda x: None if isinstance(x, int) and 1 <= x <= len(CLASSES)
                             else f"be in [1, {len(CLASSES)}]", "most events per clip")
    snr_db: tuple[float, float] = option((5.0, 30.0), _snr_range,
                                         "SNR range of the noise floor, dB")
    val_share: float = option(0.15, _share, "share of clips in val")
    test_share: float = option(0.2, _share, "share of clips in test")
    features: str = option("logmel", lambda x: None if x in ("fbank", "logmel")
                           else "be 'fbank' or 'logmel'", "Kaldi fbank or a torch.stft log-mel")
    n_mels: int = option(64, positive_int, "mel bins")
    seed: int = option(0, non_negative_int, "events, mixtures, noise and splits")


def _fade(n: int) -> np.ndarray:
    ramp = min(n // 2, int(0.005 * SAMPLE_RATE))
    env = np.ones(n)
    if ramp:
        half = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        env[:ramp], env[n - ramp:] = half, half[::-1]
    return env


def synth_event(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """One event of class ``kind``, ``n`` samples long, unit peak (see the module)."""
    t = np.arange(n) / SAMPLE_RATE
    if kind == "tone":
        x = np.sin(2 * np.pi * np.exp(rng.uniform(np.log(300), np.log(3000))) * t)
    elif kind in ("chirp_up", "chirp_down"):
        lo = rng.uniform(200, 1500)
        hi = lo * 2 ** rng.uniform(1, 2)
        f0, f1 = (lo, hi) if kind == "chirp_up" else (hi, lo)
        duration = n / SAMPLE_RATE
        x = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * duration)))
    elif kind == "noise":
        width = rng.uniform(1000, 3000)
        low = rng.uniform(500, 7000 - width)
        spectrum = np.fft.rfft(rng.standard_normal(n))
        freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spectrum[(freqs < low) | (freqs > low + width)] = 0
        x = np.fft.irfft(spectrum, n)
    elif kind == "clicks":
        x = np.zeros(n)
        period = int(SAMPLE_RATE / rng.uniform(5, 30))
        click = rng.standard_normal(32) * np.exp(-np.arange(32) / 6)
        for start in range(int(rng.integers(0, period)), n - 32, period):
            x[start:start + 32] += click
    elif kind == "harmonic":
        f0 = rng.uniform(100, 400)
        x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 9)
                if k * f0 < SAMPLE_RATE / 2)
    elif kind == "tremolo":
        carrier = np.sin(2 * np.pi * rng.uniform(500, 2500) * t)
        x = carrier * (0.55 + 0.45 * np.sin(2 * np.pi * rng.uniform(4, 12) * t))
    elif kind == "thump":
        x = np.zeros(n)
        hits = int(rng.integers(2, 5))
        length = max(1, n // hits)
        tau = np.arange(length) / SAMPLE_RATE
        f = rng.uniform(50, 150)
        end = max(float(tau[-1]), 1e-3)
        burst = np.sin(2 * np.pi * f * tau * (1 - 0.3 * tau / end)) * np.exp(-tau / 0.04)
        for h in range(hits):
            x[h * length:(h + 1) * length] += burst[: n - h * length]
    else:
        raise ValueError(f"{NAME}: unknown event class {kind!r}; classes: {list(CLASSES)}")
    x = np.asarray(x, dtype=np.float64) * _fade(n)
    return x / max(float(np.abs(x).max()), 1e-9)


def synthesise(config: MixturesConfig) -> tuple[np.ndarray, np.ndarray]:
    """Waveforms ``[N, 16000]`` float32 and multi-hot targets ``[N, 8]`` (see the module)."""
    rng = np.random.default_rng(config.seed)
    length = SAMPLE_RATE
    waves = np.zeros((config.n_clips, length), dtype=np.float64)
    targets = np.zeros((config.n_clips, len(CLASSES)), dtype=np.float32)
    for i in range(config.n_clips):
        k = int(rng.integers(1, config.max_events + 1))
        for c in rng.choice(len(CLASSES), size=k, replace=False):
            n = int(rng.uniform(0.15, 0.6) * SAMPLE_RATE)
            start = int(rng.integers(0, length - n))
            gain = 10 ** (rng.uniform(-12, 0) / 20)
            waves[i, start:start + n] += gain * synth_event(CLASSES[c], n, rng)
            targets[i, c] = 1
    bank = noise_waveforms(16, length, seed=config.seed + 1).numpy().astype(np.float64)
    lo, hi = config.snr_db
    for i in range(config.n_clips):
        power = max(float(np.mean(waves[i] ** 2)), 1e-10)
        noise = bank[int(rng.integers(len(bank)))]
        snr = rng.uniform(lo, hi)
        waves[i] += noise * np.sqrt(power / 10 ** (snr / 10) / max(np.mean(noise ** 2), 1e-12))
        waves[i] /= max(float(np.abs(waves[i]).max()), 1e-9) / 0.9
    return waves.astype(np.float32), targets


def random_splits(n: int, config: MixturesConfig) -> dict[str, np.ndarray]:
    order = np.random.default_rng(config.seed + 2).permutation(n)
    n_test, n_val = round(config.test_share * n), round(config.val_share * n)
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ValueError(f"{NAME}: n_clips={n} leaves a split empty; raise n_clips")
    return {"test": np.sort(order[:n_test]), "val": np.sort(order[n_test:n_test + n_val]),
            "train": np.sort(order[n_test + n_val:])}


class Mixtures(SpectrogramDataset):
    """The synthesised multi-label mixture set (see the module)."""

    def __init__(self, config: MixturesConfig, views: dict[str, Any]) -> None:
        self.config = config
        waves, targets = synthesise(config)
        super().__init__(torch.from_numpy(waves), targets, random_splits(len(waves), config),
                         CLASSES, sample_rate=SAMPLE_RATE, kind=config.features,
                         n_mels=config.n_mels, views=parse_views(views, NAME))


def build(views: dict[str, Any] | None = None, **options: Any) -> Mixtures:
    """``audio.mixtures`` factory; ``options`` are :class:`MixturesConfig` fields."""
    if "snr_db" in options:
        options["snr_db"] = tuple(options["snr_db"])
    return Mixtures(parse_options(MixturesConfig, options, NAME), dict(views or {}))
