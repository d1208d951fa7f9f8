"""Stochastic views of a batch of log-mel (or fbank) spectrograms ``[B, F, T]``.

Declared once, on each dataset's spec (``selfsup_audio.plugin.VIEWS``, the defaults
of :class:`AudioViews`), set in an experiment's ``[dataset.views]`` table, and drawn
from the trainer's generator (:func:`apply_views`), so a resumed run sees the same
views. All act on the natural-log power spectrogram, per sample, in this order:

1. random resized crop in time (BYOL-A, Niizumi et al., IJCNN 2021): a window of
   ``crop_min``-1 of the frames, stretched back to the clip's length;
2. time shift by up to ``shift_frames`` frames, the gap filled with the clip's floor;
3. gain: a uniform offset of up to ``gain_db`` dB (``+ g ln(10) / 10`` in log power);
4. background noise, with probability ``noise_prob``: a white or pink noise
   spectrogram (from :func:`noise_bank`) added in the power domain at an SNR drawn
   from ``[snr_min, snr_max]`` dB (cross terms of the waveform sum are ignored);
5. SpecAugment (Park et al., Interspeech 2019): ``freq_masks`` bands of up to
   ``freq_width`` mel bins and ``time_masks`` spans of up to ``time_width``
   frames, filled with the clip's mean.

Shapes and dtype never change, so an encoder reads a view like the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from selfsup.api import non_negative, non_negative_int, option, parse_options, unit_interval


def _crop_share(x: Any) -> str | None:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and 0 < x <= 1
    return None if ok else "be in (0, 1]"


@dataclass(frozen=True)
class AudioViews:
    """The view options (see the module)."""

    crop_min: float = option(0.8, _crop_share, "shortest crop in time, as a share of the clip")
    shift_frames: int = option(10, non_negative_int, "largest time shift, in frames (10 ms)")
    gain_db: float = option(6.0, non_negative, "largest gain change, in dB")
    noise_prob: float = option(0.5, unit_interval, "chance a sample gets background noise")
    snr_min: float = option(5.0, lambda x: None if isinstance(x, (int, float)) else "be a number",
                            "lowest SNR of the added noise, dB")
    snr_max: float = option(20.0, lambda x: None if isinstance(x, (int, float)) else "be a number",
                            "highest SNR of the added noise, dB")
    freq_masks: int = option(2, non_negative_int, "SpecAugment frequency masks per sample")
    freq_width: int = option(8, non_negative_int, "widest frequency mask, in mel bins")
    time_masks: int = option(2, non_negative_int, "SpecAugment time masks per sample")
    time_width: int = option(10, non_negative_int, "widest time mask, in frames")

    def __post_init__(self) -> None:
        if isinstance(self.snr_min, (int, float)) and isinstance(self.snr_max, (int, float)) \
                and self.snr_min > self.snr_max:
            raise ValueError(f"views: snr_min={self.snr_min} must be <= snr_max={self.snr_max}")


def parse_views(views: Any, owner: str) -> AudioViews:
    return parse_options(AudioViews, dict(views or {}), f"{owner} views")


def _rand(shape: tuple[int, ...], g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(shape, generator=g, device=g.device).to(device)


def crop_resize(x: torch.Tensor, start: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """Per sample, frames ``[start, start + length)`` (fractional) stretched to ``T``."""
    t = x.shape[-1]
    pos = start[:, None] + (torch.arange(t, device=x.device) + 0.5) / t * length[:, None] - 0.5
    pos = pos.clamp(0, t - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t - 1)
    w = (pos - lo).unsqueeze(1)
    idx_lo = lo.unsqueeze(1).expand(-1, x.shape[1], -1)
    idx_hi = hi.unsqueeze(1).expand(-1, x.shape[1], -1)
    return x.gather(-1, idx_lo) * (1 - w) + x.gather(-1, idx_hi) * w


def apply_views(x: torch.Tensor, v: AudioViews, g: torch.Generator,
                noise: torch.Tensor | None) -> torch.Tensor:
    """One view of a ``[B, F, T]`` log-power batch (see the module)."""
    b, f, t = x.shape
    dev = x.device
    out = x.float()
    if v.crop_min < 1:
        share = v.crop_min + (1 - v.crop_min) * _rand((b,), g, dev)
        length = share * t
        start = _rand((b,), g, dev) * (t - length)
        out = crop_resize(out, start, length)
    floor = out.amin(dim=(1, 2), keepdim=True)
    if v.shift_frames:
        shift = torch.randint(-v.shift_frames, v.shift_frames + 1, (b,), generator=g,
                              device=g.device).to(dev)
        idx = torch.arange(t, device=dev)[None] - shift[:, None]
        valid = ((idx >= 0) & (idx < t)).unsqueeze(1)
        moved = out.gather(-1, idx.clamp(0, t - 1).unsqueeze(1).expand(-1, f, -1))
        out = torch.where(valid, moved, floor)
    if v.gain_db:
        gain = (2 * _rand((b, 1, 1), g, dev) - 1) * v.gain_db * math.log(10) / 10
        out = out + gain
    if noise is not None and v.noise_prob > 0:
        pick = torch.randint(len(noise), (b,), generator=g, device=g.device).to(dev)
        snr = v.snr_min + (v.snr_max - v.snr_min) * _rand((b, 1, 1), g, dev)
        on = (_rand((b, 1, 1), g, dev) < v.noise_prob).to(out.dtype)
        n = noise.to(dev, out.dtype)[pick][..., :t]
        signal = out.exp().mean(dim=(1, 2), keepdim=True)
        n_pow = n.exp()
        scale = signal / n_pow.mean(dim=(1, 2), keepdim=True) / 10 ** (snr / 10)
        out = torch.log(out.exp() + on * scale * n_pow)
    fill = out.mean(dim=(1, 2), keepdim=True)
    for count, width, axis, size in ((v.freq_masks, v.freq_width, 1, f),
                                     (v.time_masks, v.time_width, 2, t)):
        for _ in range(count if width else 0):
            w = torch.floor(_rand((b,), g, dev) * (min(width, size) + 1))
            s = torch.floor(_rand((b,), g, dev) * (size - w + 1))
            pos = torch.arange(size, device=dev)[None]
            band = (pos >= s[:, None]) & (pos < (s + w)[:, None])
            band = band.unsqueeze(2) if axis == 1 else band.unsqueeze(1)
            out = torch.where(band, fill, out)
    return out.to(x.dtype)


def pink_noise(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` samples of pink (1/f power) noise, unit RMS: white noise shaped in frequency."""
    white = torch.randn(n, generator=generator)
    spec = torch.fft.rfft(white)
    freqs = torch.arange(spec.shape[0], dtype=torch.float32)
    spec = spec / freqs.clamp_min(1.0).sqrt()
    pink = torch.fft.irfft(spec, n)
    return pink / pink.pow(2).mean().sqrt()


def noise_waveforms(count: int, n: int, seed: int = 1234) -> torch.Tensor:
    """``count`` unit-RMS noise clips ``[count, n]``, alternately white and pink."""
    g = torch.Generator().manual_seed(seed)
    clips = []
    for i in range(count):
        if i % 2 == 0:
            white = torch.randn(n, generator=g)
            clips.append(white / white.pow(2).mean().sqrt())
        else:
            clips.append(pink_noise(n, g))
    return torch.stack(clips)
