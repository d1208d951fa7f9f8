"""Classical MRI reconstruction baselines: zero-filled inverse FFT and TV compressed sensing.

MRI reconstruction (modality ``kspace``; batch dict of :mod:`selfsup_medical.kspace`,
output the complex image as two channels ``[B, 2, H, W]``):

- :class:`ZeroFilled` (``medical.zero_filled``): the inverse centred FFT of the
  undersampled k-space, missing lines left at zero.
- :class:`TVCompressedSensing` (``medical.tv_cs``): total-variation compressed
  sensing (Lustig, Donoho and Pauly, "Sparse MRI: The application of compressed
  sensing for rapid MR imaging", MRM 58:1182, 2007) for single-coil Cartesian
  data: ``min_x 0.5 ||M F x - y||^2 + lambda TV(x)``, solved by FISTA (Beck and
  Teboulle, "A Fast Iterative Shrinkage-Thresholding Algorithm for Linear Inverse
  Problems", SIAM J. Imaging Sci. 2:183, 2009). ``F`` is orthonormal and ``M`` a
  0/1 mask, so the data term's gradient is 1-Lipschitz and the step is 1: the
  gradient step puts the measured lines back into the k-space of the current
  estimate. The proximal step is isotropic TV denoising of the *complex* image
  (the TV of ``x`` sums ``sqrt(|dx|^2 + |dy|^2)`` of complex differences, as in
  Lustig et al.), computed in torch by Chambolle's dual projection (Chambolle,
  "An Algorithm for Total Variation Minimization and Applications", JMIV 20:89,
  2004; the same iteration and step ``tau = 1/4`` as scikit-image's
  ``denoise_tv_chambolle``) with ``inner_iterations`` dual steps per FISTA step,
  warm-started from the previous step's dual, so that the whole batch runs at once
  on any device. ``weight`` is relative to each image's scale: ``lambda = weight *
  max |zero-filled image|``, so one weight suits data of any intensity scale.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from selfsup.api import KSPACE, BaselineContext, SSLDataset

from ..kspace import channels_to_complex, complex_to_channels, fft2c, ifft2c
from .selection import check_count, check_strength, choose_on_val, require_modality

#: TV-CS weights, relative to the image's peak zero-filled magnitude
TV_CS_GRID: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)

#: Chambolle's dual step (1/4 is scikit-image's choice for 2D; 1/8 is the proven bound)
_TAU = 0.25


class ZeroFilled(nn.Module):
    """k-space batch -> zero-filled complex image ``[B, 2, H, W]`` (real, imaginary)."""

    embed_dim = 2

    def dense(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return complex_to_channels(ifft2c(_kspace(batch, "medical.zero_filled")))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.dense(batch)


class TVCompressedSensing(nn.Module):
    """FISTA for ``0.5 ||M F x - y||^2 + lambda TV(x)``; see the module docstring.

    ``dense(batch)`` (and ``forward``) returns the complex image ``[B, 2, H, W]`` after
    ``iterations`` FISTA steps, each with ``inner_iterations`` dual steps of the
    TV proximal operator.
    """

    embed_dim = 2

    def __init__(self, weight: float, iterations: int = 50, inner_iterations: int = 10) -> None:
        super().__init__()
        self.weight = check_strength("medical.tv_cs", "weight", weight)
        self.iterations = check_count("medical.tv_cs", "iterations", iterations)
        self.inner_iterations = check_count("medical.tv_cs", "inner_iterations", inner_iterations)
        self.chosen: dict[str, Any] = {"weight": self.weight, "selected_on": "given"}

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.dense(batch)

    def dense(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        y = _kspace(batch, "medical.tv_cs")
        mask = batch["mask"].to(y.device, torch.float32).expand_as(y.real)
        x = ifft2c(y)  # zero-filled start
        # lambda per image, relative to its scale (module docstring)
        scale = x.abs().flatten(1).amax(1).clamp_min(1e-12)
        lam = (self.weight * scale).view(-1, 1, 1, 1, 1)
        z, t = x, 1.0
        # dual of the TV prox: [B, direction (rows, columns), (real, imaginary), H, W]
        dual = torch.zeros((x.shape[0], 2, 2, *x.shape[2:]), device=x.device)
        for _ in range(self.iterations):
            # gradient step of size 1/L = 1: measured lines replace those of F z
            k = fft2c(z)
            step = complex_to_channels(ifft2c(k - mask * k + y))
            x_next = channels_to_complex(tv_prox(step, lam, dual, self.inner_iterations))
            t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
            z = x_next + ((t - 1.0) / t_next) * (x_next - x)
            x, t = x_next, t_next
        return complex_to_channels(x)


def tv_prox(v: torch.Tensor, lam: torch.Tensor, dual: torch.Tensor, steps: int) -> torch.Tensor:
    """``argmin_u 0.5 ||u - v||^2 + lam TV(u)`` for a complex image by Chambolle's projection.

    ``v``: the image as channels ``[B, 2, H, W]`` (real, imaginary); ``lam``
    ``[B, 1, 1, 1, 1]``; ``dual`` ``[B, 2, 2, H, W]`` (direction, real/imaginary):
    the scaled dual variable, updated in place (the warm start of the next call).
    The primal is ``u = v + grad^T dual`` with forward differences and zero flux
    at the far edge; the update is scikit-image's nD Chambolle iteration, with
    the gradient magnitude taken over both directions and both parts, which makes
    the TV that of the complex image. In-place operations: this loop is the cost
    of TV-CS.
    """
    g = torch.empty_like(dual)
    norm = torch.empty((v.shape[0], 1, 1, *v.shape[2:]), dtype=v.dtype, device=v.device)
    ratio = _TAU / lam
    for _ in range(steps):
        u = _primal(v, dual)
        torch.sub(u[:, :, 1:, :], u[:, :, :-1, :], out=g[:, 0, :, :-1, :])
        g[:, 0, :, -1, :] = 0
        torch.sub(u[:, :, :, 1:], u[:, :, :, :-1], out=g[:, 1, :, :, :-1])
        g[:, 1, :, :, -1] = 0
        torch.sum(g * g, (1, 2), keepdim=True, out=norm)
        norm.sqrt_().mul_(ratio).add_(1.0)
        dual.sub_(g, alpha=_TAU).div_(norm)
    return _primal(v, dual)


def _primal(v: torch.Tensor, dual: torch.Tensor) -> torch.Tensor:
    """``v + grad^T dual``, the adjoint of the forward differences applied to the dual."""
    u = v - dual[:, 0] - dual[:, 1]
    u[:, :, 1:, :] += dual[:, 0, :, :-1, :]
    u[:, :, :, 1:] += dual[:, 1, :, :, :-1]
    return u


def _kspace(batch: Any, key: str) -> torch.Tensor:
    if not isinstance(batch, dict) or "kspace" not in batch or "mask" not in batch:
        raise TypeError(
            f"{key} takes a k-space batch dict with 'kspace' and 'mask' (a "
            f"KSpaceDataset's collate), got {type(batch).__name__}"
        )
    k = batch["kspace"]
    if not torch.is_tensor(k) or not k.is_complex() or k.ndim != 4:
        raise TypeError(
            f"{key}: batch['kspace'] must be a complex tensor [B, 1, H, W], got "
            f"{getattr(k, 'dtype', type(k).__name__)} {tuple(getattr(k, 'shape', ()))}"
        )
    return k


def build_zero_filled(
    dataset: SSLDataset, context: BaselineContext | None = None
) -> ZeroFilled:
    """``medical.zero_filled``: the zero-filled inverse FFT, ``[B, 2, H, W]``."""
    require_modality(dataset, "medical.zero_filled", (KSPACE,))
    return ZeroFilled()


def build_tv_cs(
    dataset: SSLDataset,
    context: BaselineContext | None = None,
    *,
    weight: float | None = None,
    iterations: int = 50,
    inner_iterations: int = 10,
) -> TVCompressedSensing:
    """``medical.tv_cs``: TV compressed sensing; ``weight=None`` chooses it on val
    from :data:`TV_CS_GRID` (module docstring). The registered default runs 100
    iterations."""
    require_modality(dataset, "medical.tv_cs", (KSPACE,))
    if weight is not None:
        return TVCompressedSensing(weight, iterations, inner_iterations)
    chosen = choose_on_val(
        dataset,
        "medical.tv_cs",
        "weight",
        TV_CS_GRID,
        lambda w: TVCompressedSensing(w, iterations, inner_iterations),
    )
    module = TVCompressedSensing(chosen["weight"], iterations, inner_iterations)
    module.chosen = chosen
    return module
