"""Filter2Noise: an attention-guided bilateral filter trained without clean images.

Sun, Schneider, Gu, Mei, Ye, Wagner, Bayer & Maier, "Filter2Noise: Interpretable
Self-Supervised Single-Image Denoising for Low-Dose CT with Attention-Guided
Bilateral Filtering", arXiv:2504.13519 (2025; v2 retitled "Filter2Noise: A
Framework for Interpretable and Zero-Shot Low-Dose CT Image Denoising"); reference
code https://github.com/sypsyp97/Filter2Noise (``filter2noise.py``), whose
architecture, loss and defaults this module follows.

**The filter** (:class:`AttentionGuidedBilateralFilter`, ``medical.agbf``): one
or more stages (two by default, the paper's F2N-S2), each a bilateral filter
whose three parameters vary over the image: the spatial standard deviations
``sigma_x`` (along the width, columns) and ``sigma_y`` (along the height, rows)
and the range (intensity) standard deviation ``sigma_r``. A lightweight attention
module predicts them: the image is cut into non-overlapping ``patch_size``-square
patches; each flattened patch gives query, key and value (linear maps to
``hidden_dim = 8``); a self-attention over the patches gives features, a second
self-attention over those features, a LayerNorm and a linear map give three
numbers per patch, made positive and bounded by ``min(softplus(.), max_sigma) +
1e-6``; the patch values are repeated over the patch's pixels (nearest-neighbour
upsampling). So the parameter maps are per pixel but constant within a patch;
about 1.8k parameters per stage for one channel. The filter of pixel ``p`` with
window offsets ``(dy, dx)`` is::

    w(p, q) = exp(-dx^2 / (2 sigma_x(p)^2) - dy^2 / (2 sigma_y(p)^2))
              * exp(-sum_c (I_c(q) - I_c(p))^2 / (2 sigma_r(p)^2))
    out_c(p) = sum_q w(p, q) I_c(q) / sum_q w(p, q)

computed with ``torch.nn.functional.unfold`` over a ``k x k`` window with
reflection padding. The window is ``k = 2 * ceil(max_sigma) + 1`` (13 for the
paper's bound of 6) unless ``kernel_size`` is given. The reference code instead
sizes the window from the largest sigma predicted for the whole batch at each
call; a fixed window makes each image's output independent of the other images
of its batch and of the batch's size, and contains the reference's window, which
is never wider.

**The loss** (:func:`filter2noise_loss`), the reference code's ``LossFunction``:
the noisy image ``x`` ``[B, C, H, W]`` is split by two fixed 2x2 stride-2
averages into half-resolution sub-images ``d1`` (anti-diagonal pair) and ``d2``
(diagonal pair) whose noise is nearly independent (as in ZS-N2N); each is shuffled
by the Euclidean Local Shuffle (ELS: in every 2x2 block, swap the two pixels with
the smallest Euclidean distance, which breaks spatially correlated noise while
keeping the structure) and filtered, ``y1 = f(ELS(d1))``, ``y2 = f(ELS(d2))``;
the full image is filtered, ``y = f(x)``, and split the same way into ``D1, D2``.
With L1 distances::

    L = (|y1 - y2| + |y1 - D1| + |y2 - D2| + |D1 - D2|) / 3
        + edge_weight * | |DoG * x| - |DoG * y| |

the Noise2Noise-style resolution term, the cross-scale consistency terms, the
denoising consistency term, and an edge-preservation term with a 7x7 difference
of Gaussians (sigmas 9 and 10; a nearly flat, weak band-pass, hence the large
weight 350 of ``LossFunction``; the demo script uses 400). ELS is deterministic:
this loss draws nothing from the generator.

**Single image vs. a dataset.** The paper fits a fresh filter to every image
(zero-shot, 500 AdamW steps on that image alone). selfsup pretrains once and then
evaluates, so here the filter is trained over the pretraining images (each step a
batch of noisy images, the loss averaged over them) and then applied as it is to
every evaluation image; its attention module still predicts each image's own
parameter maps from that image's content. :func:`fit_single_image` reproduces the
paper's per-image protocol for users who want it (it starts from the given
filter, e.g. the pretrained one, and returns a fitted copy).

**Inspecting and steering.** :meth:`AttentionGuidedBilateralFilter.filter_parameters`
returns the parameter maps ``[B, n_stages, 3, H, W]`` (``sigma_x, sigma_y,
sigma_r`` per stage), :meth:`~AttentionGuidedBilateralFilter.save_parameter_maps`
draws them to a PNG (matplotlib, Agg canvas), and
:meth:`~AttentionGuidedBilateralFilter.filter_with` applies edited maps (the
paper's post-training, region-specific control).

**Faces.** The filter offers ``dense`` (the filtered image, which the restoration
evaluator reads) and ``medical.bilateral_filter``
(:data:`selfsup_medical.faces.BILATERAL_FILTER`: the parameter maps above), which
only ``medical.agbf`` offers. The pretext declares the latter, so ``selfsup bench``
trains the filter whatever the benchmark's encoder; the loss itself calls
``encoder.dense``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from selfsup.api import (
    IMAGE2D,
    PretextTask,
    SSLDataset,
    boolean,
    check_value,
    non_negative,
    option,
    parse_options,
    positive,
    positive_int,
)

NAME = "medical.filter2noise"
ENCODER = "medical.agbf"
#: added to the bounded softplus so a standard deviation is never zero (reference code)
SIGMA_EPS = 1e-6
PARAMETER_NAMES: tuple[str, str, str] = ("sigma_x", "sigma_y", "sigma_r")


# -- the differentiable bilateral filter --------------------------------------------------


def bilateral_filter(
    x: torch.Tensor,
    sigma_x: torch.Tensor,
    sigma_y: torch.Tensor,
    sigma_r: torch.Tensor,
    kernel_size: int,
) -> torch.Tensor:
    """Bilateral filter with per-pixel parameters (see the module docstring).

    ``x``: ``[B, C, H, W]``; ``sigma_x``, ``sigma_y``, ``sigma_r``: ``[B, H, W]``,
    positive; ``kernel_size``: odd window side ``k``, with ``k // 2 < H, W`` (the
    reflection padding's limit). The range distance sums the squared differences
    over channels. Returns ``[B, C, H, W]`` in float32.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"bilateral_filter: kernel_size must be odd and >= 1, got {kernel_size}")
    b, c, h, w = x.shape
    for name, s in (("sigma_x", sigma_x), ("sigma_y", sigma_y), ("sigma_r", sigma_r)):
        if tuple(s.shape) != (b, h, w):
            raise ValueError(
                f"bilateral_filter: {name} has shape {tuple(s.shape)}, expected {(b, h, w)}"
            )
    p = kernel_size // 2
    if p >= h or p >= w:
        raise ValueError(
            f"bilateral_filter: a {kernel_size}x{kernel_size} window needs images larger than "
            f"{p} pixels per side (reflection padding), got {h}x{w}; lower max_sigma or "
            "kernel_size"
        )
    x = x.float()
    k2 = kernel_size * kernel_size
    padded = F.pad(x, (p, p, p, p), mode="reflect") if p else x
    # unfold lists window positions row-major: index i * k + j is offset (i - p, j - p).
    neigh = F.unfold(padded, kernel_size).view(b, c, k2, h, w)
    offsets = torch.arange(kernel_size, device=x.device, dtype=torch.float32) - p
    dy2 = (offsets**2).repeat_interleave(kernel_size).view(1, k2, 1, 1)
    dx2 = (offsets**2).repeat(kernel_size).view(1, k2, 1, 1)
    sx2 = 2 * sigma_x.float().unsqueeze(1) ** 2
    sy2 = 2 * sigma_y.float().unsqueeze(1) ** 2
    sr2 = 2 * sigma_r.float().unsqueeze(1) ** 2
    range_d2 = ((neigh - x.unsqueeze(2)) ** 2).sum(dim=1)  # [B, k2, H, W]
    # One exponential of the summed exponents: the product of the two kernels.
    weights = torch.exp(-(dx2 / sx2 + dy2 / sy2 + range_d2 / sr2))
    # The centre weight is exp(0) = 1, so the sum is at least 1: no division by zero.
    weights = weights / weights.sum(dim=1, keepdim=True)
    return (neigh * weights.unsqueeze(1)).sum(dim=2)


# -- the attention module and the filter ---------------------------------------------------


class SigmaPredictor(nn.Module):
    """The lightweight attention module: image ``[B, C, H, W]`` -> maps ``[B, 3, H, W]``.

    Images whose sides are not multiples of ``patch_size`` are padded (replicating
    the last row/column) for the prediction and the maps cropped back.
    """

    def __init__(
        self, in_channels: int, patch_size: int, hidden_dim: int, max_sigma: float
    ) -> None:
        super().__init__()
        self.patch_size, self.max_sigma = patch_size, float(max_sigma)
        d = in_channels * patch_size * patch_size
        self.query, self.key, self.value = (nn.Linear(d, hidden_dim) for _ in range(3))
        self.sigma_query, self.sigma_key, self.sigma_value = (
            nn.Linear(hidden_dim, hidden_dim) for _ in range(3)
        )
        self.norm = nn.LayerNorm(hidden_dim)
        self.proj = nn.Linear(hidden_dim, 3)
        self.scale = hidden_dim**-0.5

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.softmax(q @ k.transpose(1, 2) * self.scale, dim=-1) @ v

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ps = self.patch_size
        gh, gw = math.ceil(h / ps), math.ceil(w / ps)
        if gh * ps != h or gw * ps != w:
            x = F.pad(x, (0, gw * ps - w, 0, gh * ps - h), mode="replicate")
        patches = x.reshape(b, c, gh, ps, gw, ps).permute(0, 2, 4, 1, 3, 5).reshape(b, gh * gw, -1)
        feats = self._attend(self.query(patches), self.key(patches), self.value(patches))
        s = self._attend(self.sigma_query(feats), self.sigma_key(feats), self.sigma_value(feats))
        s = self.proj(self.norm(s))
        s = F.softplus(s).clamp(max=self.max_sigma) + SIGMA_EPS  # [B, N, 3]
        s = s.transpose(1, 2).reshape(b, 3, gh, gw)
        s = s.repeat_interleave(ps, dim=2).repeat_interleave(ps, dim=3)
        return s[:, :, :h, :w]


class AttentionGuidedBilateralFilter(nn.Module):
    """``medical.agbf``: stages of bilateral filters with predicted parameter maps.

    Faces ``dense`` and ``medical.bilateral_filter``. ``dense(x)`` (and ``forward``):
    ``[B, C, H, W]`` -> the filtered image, same shape (``embed_dim = C``).
    """

    def __init__(
        self,
        in_channels: int = 1,
        *,
        n_stages: int = 2,
        patch_size: int = 8,
        hidden_dim: int = 8,
        max_sigma: float = 6.0,
        kernel_size: int | None = None,
    ) -> None:
        super().__init__()
        owner = ENCODER
        for name, value in (("in_channels", in_channels), ("n_stages", n_stages),
                            ("patch_size", patch_size), ("hidden_dim", hidden_dim)):
            check_value(owner, name, value, positive_int)
        check_value(owner, "max_sigma", max_sigma, positive)
        if kernel_size is None:
            kernel_size = 2 * math.ceil(max_sigma) + 1
        check_value(owner, "kernel_size", kernel_size, positive_int)
        if kernel_size % 2 == 0:
            raise ValueError(f"{owner}.kernel_size must be odd, got {kernel_size}")
        self.in_channels, self.kernel_size = in_channels, kernel_size
        self.n_stages, self.max_sigma = n_stages, float(max_sigma)
        self.embed_dim = in_channels
        self.stages = nn.ModuleList(
            SigmaPredictor(in_channels, patch_size, hidden_dim, max_sigma) for _ in range(n_stages)
        )

    def _check(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{ENCODER} expects images [B, {self.in_channels}, H, W], got {shape}")

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check(x)
        current, maps = x.float(), []
        for stage in self.stages:
            s = stage(current)
            current = bilateral_filter(current, s[:, 0], s[:, 1], s[:, 2], self.kernel_size)
            maps.append(s)
        return current.to(x.dtype), torch.stack(maps, dim=1)

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The filtered image, ``[B, C, H, W]``."""
        return self._run(x)[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(x)

    def filter_parameters(self, x: torch.Tensor) -> torch.Tensor:
        """Parameter maps ``[B, n_stages, 3, H, W]``: ``sigma_x, sigma_y, sigma_r`` of each
        stage, each in ``(0, max_sigma + 1e-6]`` and constant within a patch. Stage
        ``i``'s maps are predicted from stage ``i - 1``'s output."""
        return self._run(x)[1]

    def filter_with(self, x: torch.Tensor, parameters: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` with given (e.g. edited) maps ``[B, n_stages, 3, H, W]`` instead of
        the predicted ones."""
        self._check(x)
        want = (x.shape[0], self.n_stages, 3, *x.shape[2:])
        if tuple(parameters.shape) != want:
            raise ValueError(
                f"{ENCODER}.filter_with: parameters have shape {tuple(parameters.shape)}, "
                f"expected {want} (from filter_parameters)"
            )
        if not bool((parameters > 0).all()):
            raise ValueError(f"{ENCODER}.filter_with: every sigma must be > 0")
        current = x.float()
        for i in range(self.n_stages):
            s = parameters[:, i]
            current = bilateral_filter(current, s[:, 0], s[:, 1], s[:, 2], self.kernel_size)
        return current.to(x.dtype)

    @torch.no_grad()
    def save_parameter_maps(self, x: torch.Tensor, path: str | Path, index: int = 0) -> Path:
        """Draw image ``index`` of ``x``, its parameter maps and each stage's output to a PNG.

        One row per stage: the stage's input, ``sigma_x``, ``sigma_y``, ``sigma_r``
        (colour bars in pixels / intensity units) and the stage's output. Uses
        matplotlib's Agg canvas directly, so it works headless and leaves the
        global backend alone. Creates missing parent folders; returns the path.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as err:
            raise ImportError(
                f"{ENCODER}.save_parameter_maps needs matplotlib: pip install matplotlib"
            ) from err
        if not 0 <= index < x.shape[0]:
            raise ValueError(
                f"{ENCODER}.save_parameter_maps: index {index} is outside the batch of "
                f"{x.shape[0]} images"
            )
        image = x[index : index + 1]
        self._check(image)
        inputs, maps = [image.float()], []
        for stage in self.stages:
            s = stage(inputs[-1])
            inputs.append(bilateral_filter(inputs[-1], s[:, 0], s[:, 1], s[:, 2], self.kernel_size))
            maps.append(s)
        n = self.n_stages
        fig = Figure(figsize=(15, 3.2 * n))
        FigureCanvasAgg(fig)
        axes = fig.subplots(n, 5, squeeze=False)
        for i in range(n):
            panels = [
                (inputs[i][0, 0], f"stage {i + 1} input", "gray"),
                *(
                    (maps[i][0, j], f"stage {i + 1} {PARAMETER_NAMES[j]}", "rainbow")
                    for j in range(3)
                ),
                (inputs[i + 1][0, 0], f"stage {i + 1} output", "gray"),
            ]
            for ax, (data, title, cmap) in zip(axes[i], panels):
                shown = ax.imshow(data.detach().cpu().numpy(), cmap=cmap)
                ax.set_title(title)
                ax.axis("off")
                if cmap == "rainbow":
                    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png", dpi=100)
        return out


def build_encoder(dataset: SSLDataset, **options: Any) -> AttentionGuidedBilateralFilter:
    """``medical.agbf`` factory: options are :class:`AttentionGuidedBilateralFilter`'s
    keywords (``n_stages``, ``patch_size``, ``hidden_dim``, ``max_sigma``,
    ``kernel_size``); the channels come from the dataset."""
    if dataset.modality != IMAGE2D:
        raise ValueError(
            f"{ENCODER} filters 2D images; dataset {dataset.name!r} is {dataset.modality!r}"
        )
    valid = ("n_stages", "patch_size", "hidden_dim", "max_sigma", "kernel_size")
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise TypeError(
            f"{ENCODER}: unknown option(s) {', '.join(map(repr, unknown))}. Valid options: "
            f"{', '.join(valid)}"
        )
    pre = dataset.pretrain_set()
    channels = int(pre[0].shape[0])  # type: ignore[index]
    return AttentionGuidedBilateralFilter(channels, **options)


# -- the self-supervised loss ---------------------------------------------------------------


def diagonal_downsample(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two half-resolution sub-images of ``x`` ``[B, C, H, W]`` (H, W even): the
    means of each 2x2 block's anti-diagonal (top-right, bottom-left) and diagonal
    (top-left, bottom-right) pixels."""
    d1 = (x[..., 0::2, 1::2] + x[..., 1::2, 0::2]) / 2
    d2 = (x[..., 0::2, 0::2] + x[..., 1::2, 1::2]) / 2
    return d1, d2


def euclidean_local_shuffle(x: torch.Tensor) -> torch.Tensor:
    """ELS: in each 2x2 block of ``x`` ``[B, C, H, W]`` (H, W even), swap the two pixels
    whose channel vectors are closest (ties: the first pair in row-major order)."""
    b, c, h, w = x.shape
    blocks = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 3, 5, 1)
    blocks = blocks.reshape(b, h // 2, w // 2, 4, c)
    dist = ((blocks.unsqueeze(-2) - blocks.unsqueeze(-3)) ** 2).sum(-1)  # [..., 4, 4]
    eye = torch.eye(4, dtype=torch.bool, device=x.device)
    flat = dist.masked_fill(eye, float("inf")).flatten(-2).argmin(-1)
    first, second = flat // 4, flat % 4
    order = torch.arange(4, device=x.device).expand(*flat.shape, 4).clone()
    order.scatter_(-1, first.unsqueeze(-1), second.unsqueeze(-1))
    order.scatter_(-1, second.unsqueeze(-1), first.unsqueeze(-1))
    shuffled = torch.gather(blocks, -2, order.unsqueeze(-1).expand(*order.shape, c))
    shuffled = shuffled.reshape(b, h // 2, w // 2, 2, 2, c).permute(0, 5, 1, 3, 2, 4)
    return shuffled.reshape(b, c, h, w)


def dog_kernel(size: int, sigma_narrow: float, sigma_wide: float) -> torch.Tensor:
    """Difference of two normalised Gaussians ``[size, size]`` (narrow minus wide), float32.

    Computed in float64 first: the two Gaussians are nearly equal, so their
    difference loses most of float32's digits otherwise."""
    r = torch.arange(size, dtype=torch.float64) - size // 2
    d2 = r.view(-1, 1) ** 2 + r.view(1, -1) ** 2
    narrow = torch.exp(-d2 / (2 * sigma_narrow**2))
    wide = torch.exp(-d2 / (2 * sigma_wide**2))
    return (narrow / narrow.sum() - wide / wide.sum()).float()


def _odd(x: Any) -> str | None:
    ok = isinstance(x, int) and not isinstance(x, bool) and x >= 1 and x % 2 == 1
    return None if ok else "be an odd positive int"


@dataclass(frozen=True)
class Filter2NoiseConfig:
    """Options of :func:`build` (``medical.filter2noise``); defaults from the reference
    code's ``LossFunction``. ``dog_sigma_narrow`` must be smaller than
    ``dog_sigma_wide``."""

    edge_weight: float = option(350.0, non_negative,
                                "weight of the DoG edge term (the demo script uses 400)")
    dog_kernel_size: int = option(7, _odd, "side of the difference-of-Gaussians filter")
    dog_sigma_narrow: float = option(9.0, positive, "the DoG's narrow Gaussian")
    dog_sigma_wide: float = option(10.0, positive, "the DoG's wide Gaussian")
    shuffle: bool = option(True, boolean,
                           "apply ELS to the sub-images (the paper); false: plain "
                           "ZS-N2N-style downsampling, for ablations")

    def __post_init__(self) -> None:
        narrow, wide = self.dog_sigma_narrow, self.dog_sigma_wide
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in (narrow, wide))
        if numbers and not narrow < wide:
            raise ValueError(
                f"{NAME}: dog_sigma_narrow ({narrow}) must be smaller than "
                f"dog_sigma_wide ({wide})"
            )


def filter2noise_loss(
    denoise: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, config: Filter2NoiseConfig
) -> dict[str, torch.Tensor]:
    """The Filter2Noise loss of denoiser ``denoise`` on noisy images ``x`` ``[B, C, H, W]``
    (H and W multiples of 4). Returns ``{"loss", "loss_resolution",
    "loss_cross_scale", "loss_denoise", "loss_edge"}`` (``loss`` is their sum)."""
    h, w = x.shape[-2:]
    if h % 4 or w % 4:
        raise ValueError(
            f"{NAME}: image sides must be multiples of 4 (2x2 downsampling, then 2x2 shuffle "
            f"blocks), got {h}x{w}; crop or pad the images"
        )
    x = x.float()
    d1, d2 = diagonal_downsample(x)
    if config.shuffle:
        d1, d2 = euclidean_local_shuffle(d1), euclidean_local_shuffle(d2)
    y1, y2 = denoise(d1).float(), denoise(d2).float()
    full = denoise(x).float()
    big1, big2 = diagonal_downsample(full)
    loss_resolution = F.l1_loss(y1, y2) / 3
    loss_cross_scale = (F.l1_loss(y1, big1) + F.l1_loss(y2, big2)) / 3
    loss_denoise = F.l1_loss(big1, big2) / 3
    c = x.shape[1]
    kernel = dog_kernel(config.dog_kernel_size, config.dog_sigma_narrow, config.dog_sigma_wide)
    kernel = kernel.to(x.device).expand(c, 1, -1, -1)
    pad = config.dog_kernel_size // 2
    edges_noisy = F.conv2d(x, kernel, padding=pad, groups=c)
    edges_out = F.conv2d(full, kernel, padding=pad, groups=c)
    loss_edge = config.edge_weight * F.l1_loss(edges_noisy.abs(), edges_out.abs())
    return {
        "loss": loss_resolution + loss_cross_scale + loss_denoise + loss_edge,
        "loss_resolution": loss_resolution,
        "loss_cross_scale": loss_cross_scale,
        "loss_denoise": loss_denoise,
        "loss_edge": loss_edge,
    }


class Filter2Noise(nn.Module, PretextTask):
    """The Filter2Noise pretext task on batches of noisy images ``[B, C, H, W]``.

    ``forward(batch, generator)`` returns the loss and its four terms (detached);
    the generator is unused (the loss is deterministic).
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: Filter2NoiseConfig) -> None:
        super().__init__()
        if dataset.modality != IMAGE2D:
            raise ValueError(
                f"{NAME} needs an image2d dataset; {dataset.name!r} is {dataset.modality!r}"
            )
        self.encoder = encoder
        self.config = config

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, torch.Tensor):
            raise TypeError(f"{NAME} expects an image batch [B, C, H, W], got {type(batch)}")
        terms = filter2noise_loss(self.encoder.dense, batch, self.config)
        return {k: (v if k == "loss" else v.detach()) for k, v in terms.items()}


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> Filter2Noise:
    """``medical.filter2noise`` factory; ``options`` are :class:`Filter2NoiseConfig` fields."""
    return Filter2Noise(encoder, dataset, parse_options(Filter2NoiseConfig, options, NAME))


def fit_single_image(
    encoder: AttentionGuidedBilateralFilter,
    image: torch.Tensor,
    *,
    steps: int = 500,
    lr: float = 1e-3,
    config: Filter2NoiseConfig | None = None,
) -> AttentionGuidedBilateralFilter:
    """The paper's zero-shot protocol: fit a copy of ``encoder`` to one noisy ``image``
    ``[C, H, W]`` (or ``[1, C, H, W]``) with AdamW (weight decay 0.01) and a one-cycle
    schedule peaking at ``lr`` for ``steps`` steps (the reference code's settings);
    ``encoder`` itself is not changed. Returns the fitted copy in eval mode."""
    if not isinstance(encoder, AttentionGuidedBilateralFilter):
        raise TypeError(f"fit_single_image needs a {ENCODER} filter, got {type(encoder).__name__}")
    check_value("fit_single_image", "steps", steps, positive_int)
    check_value("fit_single_image", "lr", lr, positive)
    x = image.unsqueeze(0) if image.ndim == 3 else image
    if x.ndim != 4 or x.shape[0] != 1:
        raise ValueError(f"fit_single_image: image must be [C, H, W], got {tuple(image.shape)}")
    model = copy.deepcopy(encoder).train()
    cfg = config or Filter2NoiseConfig()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        filter2noise_loss(model.dense, x, cfg)["loss"].backward()
        opt.step()
        sched.step()
    return model.eval()
