"""Spectrogram features in plain torch: Kaldi-compatible fbank, log-mel, MFCC.

Why not torchaudio: on a CPU-only torch the torchaudio wheels on PyPI (2.11.x,
CUDA builds) fail at ``import torchaudio`` (their compiled extension wants
``libc10_cuda.so``), and ``torchaudio.load`` needs torchcodec besides. So the
features the plugin trains on are computed here with ``torch.stft``/``torch.fft``
and filterbanks written out below, batched, on any device. They follow:

- :func:`kaldi_fbank`: ``torchaudio.compliance.kaldi.fbank`` (Kaldi's
  ``compute-fbank-feats``) with its defaults and SSAST's choices (Gong et al. 2022:
  Hanning window, no dither, no energy, 25 ms frames every 10 ms, ``snip_edges``):
  per-frame DC removal, pre-emphasis 0.97, zero-padding to a power of two, power
  spectrum, Kaldi's triangular mel bins (``1127 ln(1 + f/700)``, 20 Hz to Nyquist)
  and a natural log floored at float32 epsilon. The tests compare it with
  torchaudio's own ``kaldi.py`` source, loaded without the broken extension.
- :func:`log_mel`: ``torchaudio.transforms.MelSpectrogram`` (centred STFT with
  reflect padding, periodic Hann window, power 2, HTK mel scale, unnormalised
  triangles as :func:`mel_filterbank`) then ``log(x + 1e-6)``.
- :func:`mfcc`: an orthonormal DCT-II of a log-mel spectrogram (torchaudio's
  ``create_dct(n_mfcc, n_mels, "ortho")``).

Shapes: a waveform batch is ``[B, N]`` (or ``[N]``), float in [-1, 1]; features
come out as ``[B, n_mels, frames]`` (frequency first, as the encoders read them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def torchaudio_usable() -> bool:
    """Whether ``import torchaudio`` works here (False with a CUDA build on CPU torch)."""
    try:
        import torchaudio  # noqa: F401
    except Exception:  # OSError for the missing CUDA libraries, ImportError, ...
        return False
    return True


def _batch(wave: torch.Tensor) -> torch.Tensor:
    if wave.ndim == 1:
        return wave[None]
    if wave.ndim != 2:
        raise ValueError(f"expected a waveform [N] or a batch [B, N], got {tuple(wave.shape)}")
    return wave


def kaldi_mel_banks(n_mels: int, padded_window: int, sample_rate: float,
                    low_freq: float = 20.0, high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi's triangular mel filters ``[n_mels, padded_window // 2 + 1]``.

    ``high_freq <= 0`` counts down from Nyquist, as in Kaldi.
    """
    nyquist = 0.5 * sample_rate
    if high_freq <= 0.0:
        high_freq += nyquist
    if not 0.0 <= low_freq < high_freq <= nyquist:
        raise ValueError(f"need 0 <= low_freq < high_freq <= {nyquist}, got {low_freq}, "
                         f"{high_freq}")

    def mel(f: torch.Tensor | float) -> torch.Tensor:
        return 1127.0 * torch.log1p(torch.as_tensor(f, dtype=torch.float32) / 700.0)

    n_fft_bins = padded_window // 2
    delta = (mel(high_freq) - mel(low_freq)) / (n_mels + 1)
    k = torch.arange(n_mels, dtype=torch.float32)[:, None]
    left = mel(low_freq) + k * delta
    center = mel(low_freq) + (k + 1.0) * delta
    right = mel(low_freq) + (k + 2.0) * delta
    m = mel(sample_rate / padded_window * torch.arange(n_fft_bins, dtype=torch.float32))[None]
    banks = torch.clamp(torch.minimum((m - left) / (center - left), (right - m) / (right - center)),
                        min=0.0)
    return F.pad(banks, (0, 1))  # Kaldi leaves the Nyquist bin out


def kaldi_fbank(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128, *,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0,
                preemphasis: float = 0.97, low_freq: float = 20.0,
                high_freq: float = 0.0) -> torch.Tensor:
    """Kaldi-compatible log mel filterbank energies ``[B, n_mels, frames]`` (see module)."""
    x = _batch(wave).float()
    size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    if size < 2 or x.shape[-1] < size:
        raise ValueError(f"a clip of {x.shape[-1]} samples is shorter than one {size}-sample "
                         "frame")
    padded = 1 << (size - 1).bit_length()
    frames = x.unfold(-1, size, shift)  # [B, T, size]; snip_edges=True
    frames = frames - frames.mean(dim=-1, keepdim=True)
    if preemphasis:
        previous = torch.cat([frames[..., :1], frames[..., :-1]], dim=-1)
        frames = frames - preemphasis * previous
    window = torch.hann_window(size, periodic=False, dtype=frames.dtype, device=frames.device)
    frames = F.pad(frames * window, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = kaldi_mel_banks(n_mels, padded, sample_rate, low_freq, high_freq).to(power)
    energies = power @ banks.T
    eps = torch.finfo(torch.float32).eps
    return energies.clamp_min(eps).log().transpose(1, 2)


def hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    """HTK mel scale, ``2595 log10(1 + f / 700)``."""
    return 2595.0 * torch.log10(1.0 + f / 700.0)


def mel_to_hz(m: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0,
                   f_max: float | None = None) -> torch.Tensor:
    """Triangular HTK-mel filters ``[n_freqs, n_mels]`` (``melscale_fbanks``, norm None)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(float(hz_to_mel(torch.tensor(f_min))),
                           float(hz_to_mel(torch.tensor(f_max))), n_mels + 2,
                           dtype=torch.float64)
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - all_freqs[:, None]
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


def log_mel(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 64, *,
            n_fft: int = 400, hop_length: int = 160, f_min: float = 0.0,
            f_max: float | None = None, floor: float = 1e-6) -> torch.Tensor:
    """``log(MelSpectrogram(power=2) + floor)`` as ``[B, n_mels, frames]`` (see module)."""
    x = _batch(wave).float()
    window = torch.hann_window(n_fft, dtype=x.dtype, device=x.device)
    spec = torch.stft(x, n_fft, hop_length, n_fft, window, center=True, pad_mode="reflect",
                      return_complex=True).abs().pow(2.0)  # [B, n_fft//2+1, T]
    fb = mel_filterbank(n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max).to(spec)
    return torch.log(torch.einsum("bft,fm->bmt", spec, fb) + floor)


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II basis ``[n_mels, n_mfcc]``."""
    n = torch.arange(n_mels, dtype=torch.float64)
    k = torch.arange(n_mfcc, dtype=torch.float64)
    dct = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k[None, :])
    dct[:, 0] *= 1.0 / math.sqrt(2.0)
    return (dct * math.sqrt(2.0 / n_mels)).float()


def mfcc(log_mel_spec: torch.Tensor, n_mfcc: int = 20) -> torch.Tensor:
    """MFCCs ``[B, n_mfcc, frames]`` of a log-mel batch ``[B, n_mels, frames]``."""
    if n_mfcc > log_mel_spec.shape[-2]:
        raise ValueError(f"n_mfcc={n_mfcc} exceeds the {log_mel_spec.shape[-2]} mel bins")
    basis = dct_matrix(n_mfcc, log_mel_spec.shape[-2]).to(log_mel_spec)
    return torch.einsum("bmt,mk->bkt", log_mel_spec, basis)


def deltas(feats: torch.Tensor, width: int = 2) -> torch.Tensor:
    """Regression deltas over time (HTK/Kaldi formula, edges replicated), same shape."""
    denom = 2 * sum(n * n for n in range(1, width + 1))
    padded = F.pad(feats, (width, width), mode="replicate")
    t = feats.shape[-1]
    out = torch.zeros_like(feats)
    for n in range(1, width + 1):
        ahead = padded[..., width + n: width + n + t]
        behind = padded[..., width - n: width - n + t]
        out = out + n * (ahead - behind)
    return out / denom


def compute(wave: torch.Tensor, kind: str, sample_rate: int, n_mels: int) -> torch.Tensor:
    """The dataset's features of a waveform batch: ``"fbank"`` or ``"logmel"``."""
    if kind == "fbank":
        return kaldi_fbank(wave, sample_rate, n_mels)
    if kind == "logmel":
        return log_mel(wave, sample_rate, n_mels, n_fft=int(0.025 * sample_rate),
                       hop_length=int(0.01 * sample_rate))
    raise ValueError(f"features must be 'fbank' or 'logmel', got {kind!r}")
