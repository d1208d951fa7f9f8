"""C-BSN: a conditional blind-spot network trained with a downsampled invariance loss.

Jang, Lee, Park, Kim & Cho, "Self-supervised Image Denoising with Downsampled
Invariance Loss and Conditional Blind-Spot Network", ICCV 2023 (arXiv:2304.09507);
the network and losses follow the authors' TensorFlow code (github.com/jyicu/CBSN,
``model.py``, ``train.py``, ``dataprocess.py``).

A blind-spot network (BSN) predicts pixel ``p`` without seeing ``y_p``, which
makes the self-supervised ``||f(y) - y||`` a proxy for the supervised loss when the
noise is independent from pixel to pixel. Real noise is spatially correlated
(camera demosaicing; in CT, the streaks and texture of filtered back-projection),
so a BSN would learn to predict the noise from the neighbours. AP-BSN and C-BSN
therefore apply the BSN to pixel-shuffle *downsampled* images: the sub-image made
of every ``s``-th pixel has neighbours ``s`` pixels apart, whose noise is nearly
independent. C-BSN adds two things:

- the network's blind spot is *conditional*: its first layers are convolutions
  whose centre tap is zeroed when ``blind=True`` and kept when ``blind=False``;
  followed by dilated convolutions (dilation 2 after the 3 x 3 masked conv, 3
  after the 5 x 5 one) and 1 x 1 convs, the whole network never sees the centre
  pixel when blind (no path of offsets sums to zero); unblinded, it sees it;
- the *downsampled invariance loss*: with a random subsampler ``D`` (one random
  pixel of every ``s_i x s_i`` block, ``s_i = 2``), the non-blind network on the
  full image, subsampled, must match the blind network on the subsampled image
  (held fixed): ``|D(f(y; off)) - sg(f(D(y); on))|``.

Training loss (``train.py``), in per-image standardised units (each image and
channel minus its mean, divided by its standard deviation clamped at
``1 / sqrt(H W)``, as the authors' data pipeline does)::

    L = L_blind + ramp(t) * (L_self + invariance_weight * L_inv)
    L_blind = |B2S(f(S2B(y, s_b); on)) - y|           (s_b = 5, L1)
    L_self  = |f(y; off) - y|
    L_inv   = |D(f(y; off)) - sg(f(D(y); on))|        (weight 2)

``S2B``/``B2S`` is pixel-shuffle downsampling into the batch and back;
``ramp(t)`` grows linearly from 0 to 1 over the first ``ramp_fraction`` of
training (200k of 500k iterations in the paper's code). ``s_b`` trades two things:
it must exceed the distance over which the noise is correlated, and the image must
still be predictable from pixels ``s_b`` apart. The authors' 5 suits camera noise on
120-pixel photo crops; on 64x64 CT slices with 1-pixel blurred noise it leaves C-BSN
below its input, and 3 passes it by 2 dB (BENCHMARKS.md, Medical plugin, "C-BSN";
the sanity benchmark ``medical.sanity_cbsn``). Images whose sides are
not multiples of ``s_b`` (or ``s_i``) are cropped to them at a random offset for
that term. Inference (``CBSNNet.dense``, the ``dense`` face) is the non-blind
network on the full image, in data units.

The task trains the face ``medical.blind_spot_net``
(:data:`selfsup_medical.faces.BLIND_SPOT_NET`: ``core(x, blind)`` and
``standardise(x)``), which only ``medical.cbsn_net`` offers, so ``selfsup bench``
trains that network whatever the benchmark's encoder.

Shapes: a batch is ``[B, C, H, W]``; ``CBSNNet`` returns ``[B, C, H, W]``.
The default width (32) and depth (4 dilated modules per branch) are CPU-sized;
the paper's are 128 and 9 (``channels=128, blocks=9``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    IMAGE2D,
    PretextTask,
    SSLDataset,
    non_negative,
    option,
    parse_options,
    positive_int,
    unit_interval,
)

NAME = "medical.cbsn"
ENCODER = "medical.cbsn_net"


class CentreMaskedConv2d(nn.Conv2d):
    """A ``k x k`` convolution whose centre tap is zeroed when called with ``blind=True``."""

    centre_mask: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
        mask = torch.ones(1, 1, kernel_size, kernel_size)
        mask[..., kernel_size // 2, kernel_size // 2] = 0.0
        self.register_buffer("centre_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, blind: bool = True) -> torch.Tensor:  # type: ignore[override]
        weight = self.weight * self.centre_mask if blind else self.weight
        return F.conv2d(x, weight, self.bias, padding=self.padding)


class DilatedModule(nn.Module):
    """C-BSN's DCM: ``x + relu(1x1(relu(dilated 3x3(x))))``."""

    def __init__(self, channels: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.mix(F.relu(self.conv(x))))


class _Branch(nn.Module):
    """Masked ``k x k`` conv, two 1x1 convs, ``blocks`` DCMs of one dilation, a 1x1 conv."""

    def __init__(self, channels: int, kernel: int, dilation: int, blocks: int) -> None:
        super().__init__()
        self.masked = CentreMaskedConv2d(channels, channels, kernel)
        self.pre = nn.Sequential(
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
        )
        self.body = nn.Sequential(*[DilatedModule(channels, dilation) for _ in range(blocks)])
        self.post = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU())

    def forward(self, x: torch.Tensor, blind: bool) -> torch.Tensor:
        return self.post(self.body(self.pre(F.relu(self.masked(x, blind)))))  # type: ignore[no-any-return]


class CBSNNet(nn.Module):
    """C-BSN's network (``medical.cbsn_net``): ``[B, C, H, W] -> [B, C, H, W]``.

    Faces ``dense`` and ``medical.blind_spot_net``. :meth:`core` runs the network on
    standardised images with the blind spot on or off; :meth:`dense` (and
    ``forward``) standardises each image, runs it with the blind spot off and undoes
    the standardisation: the denoised image in data units.
    """

    def __init__(self, in_channels: int, channels: int = 32, blocks: int = 4) -> None:
        super().__init__()
        for name, value, low in (
            ("in_channels", in_channels, 1),
            ("channels", channels, 1),
            ("blocks", blocks, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{ENCODER}: {name} must be an int >= {low}, got {value!r}")
        self.in_channels, self.channels, self.blocks = in_channels, channels, blocks
        self.embed_dim = in_channels
        self.head = nn.Conv2d(in_channels, channels, 1)
        self.branch3 = _Branch(channels, 3, 2, blocks)
        self.branch5 = _Branch(channels, 5, 3, blocks)
        self.tail = nn.Sequential(
            nn.Conv2d(2 * channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(),
            nn.Conv2d(channels, in_channels, 1),
        )
        for m in self.modules():  # He initialisation, zero biases, as the TF code
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def core(self, x: torch.Tensor, blind: bool) -> torch.Tensor:
        """The network on standardised ``x`` ``[B, C, H, W]``, blind spot on or off."""
        self._check(x)
        h = F.relu(self.head(x))
        both = torch.cat([self.branch3(h, blind), self.branch5(h, blind)], dim=1)
        return self.tail(both)  # type: ignore[no-any-return]

    @staticmethod
    def standardise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(x - mean) / std`` per image and channel, std clamped at ``1/sqrt(H W)``."""
        mean = x.mean(dim=(2, 3), keepdim=True)
        floor = 1.0 / math.sqrt(x.shape[2] * x.shape[3])
        std = x.std(dim=(2, 3), keepdim=True, unbiased=False).clamp_min(floor)
        return (x - mean) / std, mean, std

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The denoised image, in data units."""
        xn, mean, std = self.standardise(x.float())
        return self.core(xn, blind=False) * std + mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{ENCODER} expects images [B, {self.in_channels}, H, W], got {tuple(x.shape)}"
            )


def build_encoder(dataset: SSLDataset, *, channels: int = 32, blocks: int = 4) -> CBSNNet:
    """``medical.cbsn_net``: C-BSN's conditional blind-spot network for ``dataset``'s images."""
    if dataset.modality != IMAGE2D:
        raise ValueError(
            f"{ENCODER} works on 2D images; dataset {dataset.name!r} is {dataset.modality!r}"
        )
    in_channels = int(dataset.pretrain_set()[0].shape[0])  # type: ignore[index]
    return CBSNNet(in_channels, channels=channels, blocks=blocks)


# -- pixel-shuffle downsampling and the random subsampler -------------------------------


def space_to_batch(x: torch.Tensor, s: int) -> torch.Tensor:
    """``[B, C, H, W] -> [s*s*B, C, H/s, W/s]``: the ``s^2`` pixel-shuffle sub-images."""
    b, c, h, w = x.shape
    t = x.reshape(b, c, h // s, s, w // s, s).permute(3, 5, 0, 1, 2, 4)
    return t.reshape(s * s * b, c, h // s, w // s)


def batch_to_space(x: torch.Tensor, s: int) -> torch.Tensor:
    """The inverse of :func:`space_to_batch`."""
    n, c, hs, ws = x.shape
    b = n // (s * s)
    t = x.reshape(s, s, b, c, hs, ws).permute(2, 3, 4, 0, 5, 1)
    return t.reshape(b, c, hs * s, ws * s)


def random_crop_to_multiple(x: torch.Tensor, s: int, generator: torch.Generator) -> torch.Tensor:
    """``x`` cropped to sides divisible by ``s`` at a random offset (no-op when they are)."""
    h, w = x.shape[2], x.shape[3]
    if h < s or w < s:
        raise ValueError(f"{NAME}: images of {h} x {w} are smaller than the stride {s}")
    dh, dw = h % s, w % s
    if dh == 0 and dw == 0:
        return x
    off = torch.randint(0, 1 << 30, (2,), generator=generator, device=generator.device).tolist()
    oh, ow = off[0] % (dh + 1), off[1] % (dw + 1)
    return x[:, :, oh : oh + h - dh, ow : ow + w - dw]


def subsample(x: torch.Tensor, index: torch.Tensor, s: int) -> torch.Tensor:
    """One pixel of every ``s x s`` block, ``index`` ``[B, H/s, W/s]`` in ``[0, s^2)``.

    The same pixel for every channel (the authors' ``make_subimage_from_mask``).
    """
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // s, s, w // s, s).permute(0, 1, 2, 4, 3, 5)
    blocks = blocks.reshape(b, c, h // s, w // s, s * s)
    pick = index.unsqueeze(1).unsqueeze(-1).expand(b, c, h // s, w // s, 1)
    return blocks.gather(-1, pick).squeeze(-1)


@dataclass(frozen=True)
class CBSNConfig:
    """Options of :func:`build` (``medical.cbsn``); defaults are the authors' code's."""

    blind_stride: int = option(5, positive_int,
                               "s_b of the blind-spot loss: beyond the noise's "
                               "correlation, within the image's detail (3 for 64x64 CT)")
    invariance_stride: int = option(2, positive_int, "s_i of the random subsampler")
    invariance_weight: float = option(2.0, non_negative, "lambda of the invariance loss")
    ramp_fraction: float = option(0.4, unit_interval,
                                  "fraction of training over which the non-blind terms are "
                                  "ramped in (200k of 500k iterations); 0: on at once")


class CBSN(nn.Module, PretextTask):
    """C-BSN training (see the module docstring).

    ``forward(batch, generator)``: ``batch`` ``[B, C, H, W]`` noisy images; returns
    ``{"loss", "blind", "self", "invariance", "ramp"}``.
    """

    ramp: torch.Tensor

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: CBSNConfig) -> None:
        super().__init__()
        if dataset.modality != IMAGE2D:
            raise ValueError(
                f"{NAME} denoises 2D images; dataset {dataset.name!r} is {dataset.modality!r}"
            )
        self.encoder = encoder
        self.config = config
        # a buffer, so that a resumed run continues the ramp where it was
        self.register_buffer("ramp", torch.tensor(0.0 if config.ramp_fraction > 0 else 1.0))

    def blind_loss(self, yn: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        s = self.config.blind_stride
        crop = random_crop_to_multiple(yn, s, generator)
        out = batch_to_space(self.encoder.core(space_to_batch(crop, s), blind=True), s)
        return (out - crop).abs().mean()

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor) or batch.ndim != 4:
            got = tuple(batch.shape) if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise TypeError(f"{NAME} expects a batch of images [B, C, H, W], got {got}")
        cfg = self.config
        yn, _, _ = self.encoder.standardise(batch.float())
        loss_blind = self.blind_loss(yn, generator)

        s = cfg.invariance_stride
        crop = random_crop_to_multiple(yn, s, generator)
        b, _, h, w = crop.shape
        index = torch.randint(
            0, s * s, (b, h // s, w // s), generator=generator, device=generator.device
        ).to(crop.device)
        out_open = self.encoder.core(crop, blind=False)
        loss_self = (out_open - crop).abs().mean()
        with torch.no_grad():  # the blind output on the subsampled image is the target
            target = self.encoder.core(subsample(crop, index, s), blind=True)
        loss_inv = (subsample(out_open, index, s) - target).abs().mean()

        loss = loss_blind + self.ramp * (loss_self + cfg.invariance_weight * loss_inv)
        return {
            "loss": loss,
            "blind": loss_blind.detach(),
            "self": loss_self.detach(),
            "invariance": loss_inv.detach(),
            "ramp": self.ramp.detach().clone(),
        }

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        """Linear ramp of the non-blind terms over the first ``ramp_fraction`` of training."""
        span = self.config.ramp_fraction * total_steps
        self.ramp.fill_(1.0 if span <= 0 else min(max(step / span, 0.0), 1.0))


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> CBSN:
    """``medical.cbsn`` factory; ``options`` are :class:`CBSNConfig` fields."""
    return CBSN(encoder, dataset, parse_options(CBSNConfig, options, NAME))
