"""Reading, writing and conforming audio clips (soundfile, numpy, torch).

``soundfile`` (libsndfile) reads and writes WAV, FLAC and OGG/Vorbis with no
FFmpeg; ``torchaudio.load`` would need torchcodec, which is not installed here.
:func:`resample` is band-limited sinc interpolation with a Hann window, the
algorithm and defaults of ``torchaudio.functional.resample`` (``lowpass_filter_width``
6, ``rolloff`` 0.99), written out so it works without torchaudio's extension.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """A file's samples as float32 ``[channels, N]`` in [-1, 1] and its sample rate."""
    import soundfile as sf

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.T), int(rate)


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int,
                subtype: str | None = None) -> None:
    """Write ``[N]`` or ``[channels, N]`` float samples; the suffix picks the format."""
    import soundfile as sf

    data = np.asarray(samples)
    sf.write(str(path), data.T if data.ndim == 2 else data, sample_rate, subtype=subtype)


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Mix ``[channels, N]`` down to ``[N]`` by averaging the channels."""
    return samples.mean(axis=0) if samples.ndim == 2 else samples


@lru_cache(maxsize=8)
def _sinc_kernel(orig: int, new: int, width_zeros: int = 6,
                 rolloff: float = 0.99) -> tuple[torch.Tensor, int]:
    base = min(orig, new) * rolloff
    width = math.ceil(width_zeros * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx
    t = (t * base).clamp(-width_zeros, width_zeros)
    window = torch.cos(t * math.pi / width_zeros / 2) ** 2
    t = t * math.pi
    kernel = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (kernel * window * base / orig).float(), width


def resample(wave: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Resample ``[..., N]`` from ``orig_rate`` to ``new_rate`` (see module)."""
    if orig_rate == new_rate:
        return wave
    if orig_rate <= 0 or new_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {new_rate}")
    g = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // g, new_rate // g
    kernel, width = _sinc_kernel(orig, new)
    shape = wave.shape
    x = wave.reshape(-1, shape[-1]).float()
    x = F.pad(x, (width, width + orig))
    out = F.conv1d(x[:, None], kernel.to(x), stride=orig).transpose(1, 2).reshape(x.shape[0], -1)
    target = math.ceil(new * shape[-1] / orig)
    return out[:, :target].reshape(*shape[:-1], target)


def fit_length(wave: np.ndarray, length: int, *, offset: int | None = None) -> np.ndarray:
    """Crop ``[N]`` to ``length`` samples (the centre, or from ``offset``) or zero-pad it
    at the end."""
    n = wave.shape[-1]
    if n >= length:
        start = (n - length) // 2 if offset is None else min(max(offset, 0), n - length)
        return wave[..., start:start + length]
    return np.pad(wave, [(0, 0)] * (wave.ndim - 1) + [(0, length - n)])


def check_clip(samples: np.ndarray, silence: float = 1e-4) -> str | None:
    """Why a clip is unusable (``"empty"``, ``"non-finite samples"``, ``"silent"``), or None."""
    if samples.size == 0 or samples.shape[-1] == 0:
        return "empty (no samples)"
    if not np.isfinite(samples).all():
        return "non-finite samples (NaN or inf)"
    peak = float(np.abs(samples).max())
    if peak < silence:
        return f"silent (peak {peak:.2g} < {silence:g})"
    return None
