"""Despeckling networks: MERLIN's U-Net and a DnCNN-style residual network (face ``dense``).

Both are log-intensity denoisers wrapped in one way of reading an SLC
(:class:`LogDespeckler`): ``dense(slc [B, 2, H, W]) -> log R estimate [B, 1, H, W]``.
The network works on a normalised log-intensity ``x = (l - log_min) / (log_max - log_min)``
and is residual, ``x - body(x)``, as MERLIN's and SAR-CNN's are; any ``H, W`` is accepted
(reflect-padded to a multiple of the U-Net's pooling and cropped back).

How ``dense`` reads an SLC is state of the module, saved with its weights (buffers,
so an exported encoder reads SLCs the way it was trained):

- ``reads_parts = 0`` (default; blind-spot and supervised training): the network
  sees ``log |z|^2``.
- ``blind_grid = g > 0`` (set by the blind-spot pretext): J-invariant inference as in
  Noise2Self: for each of the ``g^2`` phases of a grid of every ``g``-th pixel, the grid's
  pixels are replaced by the mean of their four neighbours (:func:`blind_input`) and
  the network's output is kept on them; so no output depends on its own pixel, as in
  training. Running a network trained that way on the unmasked image instead is
  another function (measured: 9 dB amplitude PSNR instead of 23, below the noisy
  input, at the benchmark's budget).
- ``reads_parts = 1`` (set by MERLIN): the network sees ``log(2 a^2)`` and ``log(2 b^2)``
  of the real and imaginary parts separately, as in training, and the two
  estimates are averaged in intensity (the authors' inference); with
  ``recenter = 1`` the spectrum is re-centred first (:func:`.speckle.recenter_spectrum`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import SSLDataset

from .speckle import log_intensity, log_part_intensities, recenter_spectrum

#: log-intensity normalisation bounds (natural log): simulated reflectivity lies in
#: [4e-4, 1] (log -7.8 .. 0) and single-look samples spread about 5 below and 2 above
LOG_MIN, LOG_MAX = -12.0, 2.0


class LogDespeckler(nn.Module):
    """A residual log-intensity network and the way it reads an SLC (module docstring)."""

    multiple = 1  # H and W are padded to a multiple of this

    def __init__(self, log_min: float = LOG_MIN, log_max: float = LOG_MAX) -> None:
        super().__init__()
        if not log_max > log_min:
            raise ValueError(f"log_max ({log_max}) must exceed log_min ({log_min})")
        self.embed_dim = 1
        self.log_min, self.log_max = float(log_min), float(log_max)
        self.register_buffer("reads_parts", torch.zeros(()))
        self.register_buffer("recenter", torch.zeros(()))
        self.register_buffer("blind_grid", torch.zeros((), dtype=torch.long))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def set_input(self, *, parts: bool, recenter: bool = False, blind_grid: int = 0) -> None:
        """How ``dense`` reads an SLC: the real and imaginary parts (MERLIN) or ``|z|^2``,
        with J-invariant grid masking when ``blind_grid > 0`` (module docstring)."""
        self.get_buffer("reads_parts").fill_(float(parts))
        self.get_buffer("recenter").fill_(float(recenter))
        self.get_buffer("blind_grid").fill_(int(blind_grid))

    def restore(self, log_i: torch.Tensor) -> torch.Tensor:
        """Estimated ``log R`` ``[B, 1, H, W]`` from a log-intensity ``[B, 1, H, W]``."""
        span = self.log_max - self.log_min
        x = (log_i - self.log_min) / span
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.multiple, (-w) % self.multiple
        padded = F.pad(x, (0, pw, 0, ph), mode="reflect") if ph or pw else x
        out = padded - self.body(padded)
        return out[..., :h, :w] * span + self.log_min

    def dense(self, slc: torch.Tensor) -> torch.Tensor:
        if slc.ndim != 4 or slc.shape[1] != 2:
            raise ValueError(f"{type(self).__name__} takes SLC batches [B, 2, H, W] (real, "
                             f"imaginary), got {tuple(slc.shape)}")
        if bool(self.reads_parts):
            if bool(self.recenter):
                slc = recenter_spectrum(slc)
            la, lb = log_part_intensities(slc)
            both = self.restore(torch.cat([la, lb]))
            ea, eb = both.chunk(2)
            return torch.logaddexp(ea, eb) - math.log(2.0)
        grid = int(self.get_buffer("blind_grid"))
        if grid > 0:
            return self.restore_blind(log_intensity(slc), grid)
        return self.restore(log_intensity(slc))

    def restore_blind(self, log_i: torch.Tensor, grid: int) -> torch.Tensor:
        """J-invariant estimate: each grid phase's pixels from their masked input."""
        out = torch.zeros_like(log_i)
        for phase in range(grid * grid):
            masked, mask = blind_input(log_i, grid, phase)
            out = torch.where(mask, self.restore(masked), out)
        return out

    def forward(self, slc: torch.Tensor) -> torch.Tensor:
        return self.dense(slc)


_NEIGHBOURS = torch.tensor([[0.0, 0.25, 0.0], [0.25, 0.0, 0.25], [0.0, 0.25, 0.0]])


def blind_input(log_i: torch.Tensor, grid: int, phase: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``log_i`` ``[B, 1, H, W]`` with the pixels of one grid phase (every ``grid``-th pixel,
    offset ``divmod(phase, grid)``) replaced by the mean of their four neighbours
    (Noise2Self's masking), and that grid as a bool mask."""
    dy, dx = divmod(int(phase), grid)
    mask = torch.zeros_like(log_i, dtype=torch.bool)
    mask[..., dy::grid, dx::grid] = True
    kernel = _NEIGHBOURS.to(log_i)[None, None]
    neighbours = F.conv2d(F.pad(log_i, (1, 1, 1, 1), mode="reflect"), kernel)
    return torch.where(mask, neighbours, log_i), mask


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, padding=1)


class MerlinUNet(LogDespeckler):
    """MERLIN's U-Net (the Noise2Noise U-Net of Lehtinen et al., ICML 2018, which MERLIN
    and SAR2SAR use): ``depth`` max-pool levels of ``width`` channels (paper: 5 levels,
    48 channels), nearest upsampling with skip concatenation into ``2 width``-channel
    decoder convolutions, a 64-32-1 head, leaky ReLU 0.1. Differs from the authors'
    in that depth and width are options (CPU defaults are smaller)."""

    def __init__(self, width: int = 48, depth: int = 5, log_min: float = LOG_MIN,
                 log_max: float = LOG_MAX) -> None:
        super().__init__(log_min, log_max)
        if depth < 1 or width < 1:
            raise ValueError(f"MerlinUNet needs depth >= 1 and width >= 1, got {depth}, {width}")
        self.multiple = 2**depth
        self.act = nn.LeakyReLU(0.1)
        self.enc0 = nn.ModuleList([_conv(1, width), _conv(width, width)])
        self.enc = nn.ModuleList([_conv(width, width) for _ in range(depth)])
        dec = []
        for level in range(depth, 0, -1):  # from the bottleneck up
            cin = (width if level == depth else 2 * width) + (width if level > 1 else 1)
            cout = 2 * width
            dec.append(nn.ModuleList([_conv(cin, cout), _conv(cout, cout)]))
        self.dec = nn.ModuleList(dec[:-1])
        last_in = (width if depth == 1 else 2 * width) + 1
        self.head = nn.ModuleList([_conv(last_in, 64), _conv(64, 32)])
        self.out = _conv(32, 1)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        skips = [x]
        h = x
        for conv in self.enc0:
            h = self.act(conv(h))
        h = F.max_pool2d(h, 2)
        for i, conv in enumerate(self.enc):
            if i < len(self.enc) - 1:
                skips.append(h)
                h = F.max_pool2d(self.act(conv(h)), 2)
            else:
                h = self.act(conv(h))  # bottleneck convolution
        for block in self.dec:
            h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], 1)
            for conv in block:  # type: ignore[attr-defined]
                h = self.act(conv(h))
        h = torch.cat([F.interpolate(h, scale_factor=2.0, mode="nearest"), skips.pop()], 1)
        for conv in self.head:
            h = self.act(conv(h))
        return self.out(h)


class DnCNN(LogDespeckler):
    """DnCNN (Zhang et al., IEEE TIP 2017) on log-intensity, as SAR-CNN (Chierchia et al.,
    IGARSS 2017) uses it: conv-ReLU, ``depth - 2`` conv-BatchNorm-ReLU, conv; the
    network predicts the log-speckle, subtracted from its input (paper: 17 layers,
    64 channels)."""

    def __init__(self, width: int = 64, depth: int = 17, log_min: float = LOG_MIN,
                 log_max: float = LOG_MAX) -> None:
        super().__init__(log_min, log_max)
        if depth < 3 or width < 1:
            raise ValueError(f"DnCNN needs depth >= 3 and width >= 1, got {depth}, {width}")
        layers: list[nn.Module] = [_conv(1, width), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]
        layers.append(_conv(width, 1))
        self.net = nn.Sequential(*layers)

    def body(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def build_merlin_unet(dataset: SSLDataset, width: int = 48, depth: int = 5) -> MerlinUNet:
    """``remote_sensing.merlin_unet``."""
    return MerlinUNet(width=width, depth=depth)


def build_dncnn(dataset: SSLDataset, width: int = 64, depth: int = 17) -> DnCNN:
    """``remote_sensing.dncnn``."""
    return DnCNN(width=width, depth=depth)


class SARPatchCNN(nn.Module):
    """An embedding encoder for SAR patches (faces ``embedding`` and ``stages``): a small
    VGG-style CNN on the normalised log-intensity ``log |z|^2`` (the bounds of
    :class:`LogDespeckler`), so it is blind to the phase and sees speckle as additive
    noise: ``stages`` blocks of two 3x3 conv-BatchNorm-ReLU layers, the width doubling
    and the map halving (max-pool) from one block to the next, then global average
    pooling to ``[B, embed_dim]`` (``embed_dim = width * 2^(stages - 1)``).

    Core's joint-embedding objectives train it through the datasets' views
    (:mod:`.datasets.views`); no paper's architecture is claimed."""

    def __init__(self, width: int = 32, stages: int = 3, log_min: float = LOG_MIN,
                 log_max: float = LOG_MAX) -> None:
        super().__init__()
        if width < 1 or stages < 1:
            raise ValueError(f"SARPatchCNN needs width >= 1 and stages >= 1, got {width}, "
                             f"{stages}")
        if not log_max > log_min:
            raise ValueError(f"log_max ({log_max}) must exceed log_min ({log_min})")
        self.log_min, self.log_max = float(log_min), float(log_max)
        blocks = []
        cin = 1
        for level in range(stages):
            cout = width * 2**level
            blocks.append(nn.Sequential(
                nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            ))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.embed_dim = cin

    def _maps(self, slc: torch.Tensor) -> list[torch.Tensor]:
        if slc.ndim != 4 or slc.shape[1] != 2:
            raise ValueError(f"SARPatchCNN takes SLC batches [B, 2, H, W] (real, imaginary), "
                             f"got {tuple(slc.shape)}")
        h = (log_intensity(slc) - self.log_min) / (self.log_max - self.log_min)
        maps = []
        for i, block in enumerate(self.blocks):
            if i:
                h = F.max_pool2d(h, 2) if min(h.shape[-2:]) >= 2 else h
            h = block(h)
            maps.append(h)
        return maps

    def stages(self, slc: torch.Tensor) -> list[torch.Tensor]:
        return [m.mean(dim=(-2, -1)) for m in self._maps(slc)]

    def embed(self, slc: torch.Tensor) -> torch.Tensor:
        return self._maps(slc)[-1].mean(dim=(-2, -1))

    def forward(self, slc: torch.Tensor) -> torch.Tensor:
        return self.embed(slc)


def build_patch_cnn(dataset: SSLDataset, width: int = 32, stages: int = 3) -> SARPatchCNN:
    """``remote_sensing.patch_cnn``."""
    return SARPatchCNN(width=width, stages=stages)
