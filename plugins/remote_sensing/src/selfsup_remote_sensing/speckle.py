"""Single-look complex (SLC) speckle: simulation, a SAR transfer function, spectral re-centring.

Conventions used throughout the plugin:

- An SLC sample is a float32 tensor ``[2, H, W]``: channel 0 the real part ``a``,
  channel 1 the imaginary part ``b`` of ``z = a + i b`` (modality :data:`SAR_SLC`).
  A batch is ``[B, 2, H, W]``. Rows are azimuth, columns range.
- Reflectivity ``R`` is the expected intensity, ``E|z|^2 = R``; models output the
  log-intensity ``log R`` as ``[B, 1, H, W]`` (natural log).

Fully developed single-look speckle (Goodman's model): ``z = sqrt(R / 2) (n_re + i n_im)``
with ``n_re, n_im`` independent standard normals, so ``a`` and ``b`` are independent
given ``R``, each ``N(0, R / 2)``; ``|z|^2`` is exponential with mean ``R``;
``2 a^2`` and ``2 b^2`` are each ``R`` times a chi-square with one degree of freedom.
This independence is what MERLIN uses (:mod:`.pretexts.merlin`).

Spatially correlated speckle (:func:`transfer_function`, :func:`simulate_slc` with
``correlated=True``): a real sensor's impulse response correlates neighbouring
pixels. The simulated transfer function is, on each axis, a generalised Hamming
window ``alpha + (1 - alpha) cos(2 pi f / B)`` over a band ``|f| < B / 2`` of the
sampling frequency (``bandwidth`` B = 0.8: the image is oversampled by 1.25), zero
outside, and in azimuth the band is centred on a Doppler centroid ``f_dc`` (cycles
per pixel) rather than on zero. ``alpha = 0.6`` is TerraSAR-X's processing window
(Sentinel-1 uses 0.75). Speckle is white complex Gaussian noise filtered by it and
scaled so that ``E|z|^2 = R``; the reflectivity multiplies the filtered speckle (the
product model: a real sensor filters the scene's complex response, so its
correlation also blurs the reflectivity a little; this simulation does not).

With ``f_dc != 0`` the transfer function is not Hermitian-symmetric, so the real part
at one pixel is correlated with the imaginary part at its neighbours: ``b`` is no
longer independent of ``a``, and a network trained to predict ``b`` from ``a`` can
partly predict the speckle itself. MERLIN's answer (Dalsasso, Denis and Tupin,
IEEE TGRS 2021, Sec. III-C; the authors' ``symetrisation_patch``) is to re-centre the
spectrum on zero frequency along both axes before splitting ``z`` into ``a`` and ``b``
(:func:`recenter_spectrum`): a modulation ``z e^{-2 pi i f0 n}`` that leaves the
intensity ``|z|^2`` unchanged, and makes the windowed spectrum symmetric again, so
``a`` and ``b`` decorrelate. Spatial correlation within ``a`` remains (the network
sees it in its input; the loss target ``b`` is independent of it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

#: the plugin's modality: a complex SAR image as ``[2, H, W]`` (real, imaginary)
SAR_SLC = "sar.slc"
#: intensity floor before a log (MERLIN's code adds ``np.spacing(1)``; ours is larger
#: because simulated reflectivity lies in ``[AMPLITUDE_FLOOR^2, 1]``)
INTENSITY_EPS = 1e-6
#: E[log(X)] for X exponential with mean 1: ``-gamma`` (Euler-Mascheroni); the bias of
#: the log of a single-look intensity, removed by the log-domain baselines
LOG_EXP_BIAS = -0.5772156649015329


def simulate_slc(
    reflectivity: np.ndarray,
    rng: np.random.Generator,
    *,
    correlated: bool = False,
    bandwidth: float = 0.8,
    alpha: float = 0.6,
    doppler_centroid: float = 0.1,
) -> np.ndarray:
    """One SLC ``[2, H, W]`` float32 (real, imaginary) with speckle on ``reflectivity`` ``[H, W]``.

    ``correlated=False``: ``z = sqrt(R / 2) (n_re + i n_im)``, white speckle.
    ``correlated=True``: the speckle is filtered by :func:`transfer_function` first.
    """
    r = np.asarray(reflectivity, np.float64)
    if r.ndim != 2 or not np.all(np.isfinite(r)) or np.any(r < 0):
        raise ValueError("simulate_slc: reflectivity must be a finite, non-negative [H, W] "
                         f"array, got shape {r.shape}")
    noise = rng.standard_normal((2, *r.shape))
    speckle = (noise[0] + 1j * noise[1]) / math.sqrt(2.0)  # E|s|^2 = 1
    if correlated:
        h = transfer_function(r.shape, bandwidth=bandwidth, alpha=alpha,
                              doppler_centroid=doppler_centroid)
        speckle = np.fft.ifft2(np.fft.fft2(speckle) * h)
    z = np.sqrt(r) * speckle
    return np.stack([z.real, z.imag]).astype(np.float32)


def transfer_function(
    shape: tuple[int, int],
    *,
    bandwidth: float = 0.8,
    alpha: float = 0.6,
    doppler_centroid: float = 0.1,
) -> np.ndarray:
    """The simulated SAR transfer function ``[H, W]`` (unshifted FFT layout).

    Separable: azimuth (rows) ``W(f_a - doppler_centroid)``, range (columns)
    ``W(f_r)``, with ``W(f) = alpha + (1 - alpha) cos(2 pi f / bandwidth)`` for
    ``|f| < bandwidth / 2`` (cycles per pixel) and 0 elsewhere; scaled so that
    ``mean |H|^2 = 1`` (white noise keeps unit power).
    """
    if not 0 < bandwidth <= 1:
        raise ValueError(f"transfer_function: bandwidth must be in (0, 1], got {bandwidth}")
    if not 0 < alpha <= 1:
        raise ValueError(f"transfer_function: alpha must be in (0, 1], got {alpha}")
    if not abs(doppler_centroid) <= 0.5:
        raise ValueError("transfer_function: doppler_centroid is in cycles per pixel, "
                         f"|f| <= 0.5, got {doppler_centroid}")

    def window(n: int, centre: float) -> np.ndarray:
        f = np.fft.fftfreq(n)
        d = (f - centre + 0.5) % 1.0 - 0.5  # distance to the centre, wrapped
        w = alpha + (1 - alpha) * np.cos(2 * np.pi * d / bandwidth)
        return np.where(np.abs(d) < bandwidth / 2, w, 0.0)

    h = np.outer(window(shape[0], doppler_centroid), window(shape[1], 0.0))
    return h / np.sqrt(np.mean(h**2))


def recenter_spectrum(slc: torch.Tensor) -> torch.Tensor:
    """MERLIN's spectral step: re-centre each SLC's spectrum on zero frequency in azimuth
    and range, so that its real and imaginary parts decorrelate.

    ``slc``: ``[B, 2, H, W]`` (or ``[2, H, W]``); returns the same shape. Per image
    and axis, the mean spectral magnitude profile ``p`` is correlated with its mirror
    image; the lag ``d`` of the peak gives the centre of symmetry ``d / 2`` up to half
    the length, and of the two candidates the one that puts more of ``p`` near zero
    frequency (a Gaussian weight of width 0.2 N, as in the authors' code) is chosen;
    the spectrum is rolled by whole bins so that centre lands on zero. Intensity
    ``|z|^2`` is unchanged (a modulation). Differs from the authors' numpy code in that
    it runs batched in torch and works in the unshifted FFT layout.
    """
    import torch

    single = slc.ndim == 3
    x = slc[None] if single else slc
    if x.ndim != 4 or x.shape[1] != 2:
        raise ValueError(f"recenter_spectrum takes SLCs [B, 2, H, W], got {tuple(slc.shape)}")
    z = torch.complex(x[:, 0].double(), x[:, 1].double())
    spec = torch.fft.fft2(z)
    # azimuth: the profile over rows (mean over range), rolled along rows; then range
    for averaged, rolled in ((2, 0), (1, 1)):
        shift = _symmetry_shift(spec.abs().mean(dim=averaged))  # profile [B, N]
        spec = torch.stack([torch.roll(s, k, dims=rolled) for s, k in zip(spec, shift)])
    out = torch.fft.ifft2(spec)
    res = torch.stack([out.real, out.imag], dim=1).to(slc.dtype)
    return res[0] if single else res


def _symmetry_shift(profile: torch.Tensor) -> list[int]:
    """Per row of ``profile`` ``[B, N]`` (FFT layout), the roll that centres its symmetry on 0."""
    import torch

    n = profile.shape[1]
    freq = torch.fft.fftfreq(n, dtype=profile.dtype) * n  # bin index, signed
    weight = torch.exp(-0.5 * (freq / (0.2 * n)) ** 2)
    mirrored = torch.roll(profile.flip(1), 1, dims=1)  # p(-k) in FFT layout
    corr = torch.fft.ifft(torch.fft.fft(profile) * torch.fft.fft(mirrored).conj()).real
    shifts = []
    for b in range(profile.shape[0]):
        d = int(corr[b].argmax())  # p(k) ~ p(d - k): symmetric about d / 2
        best, best_score = 0, -math.inf
        for centre2 in (d, d + n):  # 2 * centre, both candidates modulo n
            roll = -round(centre2 / 2) % n
            score = float((torch.roll(profile[b], roll) * weight).sum())
            if score > best_score:
                best, best_score = roll, score
        shifts.append(best)
    return shifts


def cross_correlation(slc: np.ndarray, lag: tuple[int, int] = (1, 0)) -> float:
    """Normalised correlation between the real part and the imaginary part shifted by ``lag``
    (rows, columns), over one SLC ``[2, H, W]``: about 0 when they are independent."""
    a = np.asarray(slc[0], np.float64)
    b = np.roll(np.asarray(slc[1], np.float64), lag, axis=(0, 1))
    return float(np.mean(a * b) / np.sqrt(np.mean(a * a) * np.mean(b * b)))


def log_intensity(slc: torch.Tensor) -> torch.Tensor:
    """``log(|z|^2)`` ``[B, 1, H, W]`` of SLCs ``[B, 2, H, W]``, floored at ``INTENSITY_EPS``."""
    return (slc[:, :1] ** 2 + slc[:, 1:2] ** 2).clamp_min(INTENSITY_EPS).log()


def log_part_intensities(slc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``log(2 a^2)`` and ``log(2 b^2)``, each ``[B, 1, H, W]``: MERLIN's two inputs."""
    return ((2 * slc[:, :1] ** 2).clamp_min(INTENSITY_EPS).log(),
            (2 * slc[:, 1:2] ** 2).clamp_min(INTENSITY_EPS).log())
