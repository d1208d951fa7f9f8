"""MRI k-space: centred FFTs, Cartesian undersampling masks, noise, and the dataset.

Single-coil Cartesian MRI as in fastMRI (Zbontar et al., "fastMRI: An Open Dataset
and Benchmarks for Accelerated MRI", arXiv:1811.08839): the image ``x`` and its
k-space ``y = F x`` are related by the orthonormal, centred 2D FFT
(:func:`fft2c`, :func:`ifft2c`); an undersampled acquisition keeps a subset of
phase-encoding lines (columns), ``y_u = M y``.

Masks (:func:`undersampling_mask`), after fastMRI's ``RandomMaskFunc`` and
``EquispacedMaskFunc``: a fully-sampled centre of ``center_fraction`` of the
columns, plus, for ``"random"``, each other column with the probability that
makes ``1 / acceleration`` of the columns sampled on average, or, for
``"equispaced"``, equally spaced columns from a random offset, spaced so that
the centre and them make ``1 / acceleration`` of the columns.

Noise (:func:`add_noise`): complex Gaussian noise added to the sampled k-space
at a given SNR in dB, ``SNR = 10 log10(mean |y|^2 / sigma^2)`` over the sampled
entries, ``sigma^2`` the complex noise variance (half in each of the real and
imaginary parts).

A k-space batch is a dict (:class:`KSpaceDataset`)::

    {"kspace": complex64 [B, 1, H, W],   # undersampled (and noisy) k-space
     "mask": float32 [B, 1, 1, W],        # 1 on sampled columns
     "target": float32 [B, 1, H, W],      # fully-sampled magnitude, zeros when unknown
     "has_target": bool [B]}              # whether "target" is a real reference

Reconstruction models return a complex image as two channels ``[B, 2, H, W]``
(real, imaginary) from their ``dense`` face; the restoration evaluator compares its
magnitude (:func:`magnitude`) with the reference.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from selfsup.api import SSLDataset, TaskSpec

from .images import SPLITS, ImageDataError

MASKS = ("random", "equispaced")


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two axes."""
    x = torch.fft.ifftshift(image, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=(-2, -1))


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over the last two axes."""
    x = torch.fft.ifftshift(kspace, dim=(-2, -1))
    return torch.fft.fftshift(torch.fft.ifft2(x, norm="ortho"), dim=(-2, -1))


def complex_to_channels(image: torch.Tensor) -> torch.Tensor:
    """Complex ``[B, 1, H, W]`` to real ``[B, 2, H, W]`` (real, imaginary)."""
    return torch.cat([image.real, image.imag], dim=1).float()


def channels_to_complex(image: torch.Tensor) -> torch.Tensor:
    """Real ``[B, 2, H, W]`` to complex ``[B, 1, H, W]``."""
    return torch.complex(image[:, :1].float(), image[:, 1:2].float())


def magnitude(image: torch.Tensor) -> torch.Tensor:
    """``[B, 2, H, W]`` channels (or a complex tensor) to magnitude ``[B, 1, H, W]``."""
    if image.is_complex():
        return image.abs()
    return torch.sqrt(image[:, :1] ** 2 + image[:, 1:2] ** 2 + 1e-12)


def undersampling_mask(
    width: int,
    *,
    kind: str,
    acceleration: int,
    center_fraction: float,
    rng: np.random.Generator,
) -> torch.Tensor:
    """A column mask ``[width]`` (float32, 1 = sampled); see the module docstring."""
    if kind not in MASKS:
        raise ValueError(f"undersampling mask kind={kind!r} is not one of {list(MASKS)}")
    if acceleration < 1:
        raise ValueError(f"acceleration must be >= 1, got {acceleration}")
    if not 0.0 < center_fraction <= 1.0:
        raise ValueError(f"center_fraction must be in (0, 1], got {center_fraction}")
    n_center = max(1, round(width * center_fraction))
    if n_center * acceleration > width:
        raise ValueError(
            f"center_fraction={center_fraction} at acceleration {acceleration} "
            f"samples more than 1/{acceleration} of {width} columns; lower it"
        )
    mask = np.zeros(width, dtype=np.float32)
    start = (width - n_center + 1) // 2
    if kind == "random":
        prob = (width / acceleration - n_center) / max(1, width - n_center)
        mask[rng.random(width) < prob] = 1.0
    else:
        # fastMRI's EquispacedMaskFunc: space the outer columns so that, with the
        # centre, 1/acceleration of all columns are sampled
        spacing = acceleration * (n_center - width) / (n_center * acceleration - width)
        offset = int(rng.integers(0, max(1, round(spacing))))
        mask[np.round(np.arange(offset, width - 1, spacing)).astype(int)] = 1.0
    mask[start : start + n_center] = 1.0
    return torch.from_numpy(mask)


def add_noise(
    kspace: torch.Tensor,
    mask: torch.Tensor,
    snr_db: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``kspace`` plus complex Gaussian noise at ``snr_db`` on the sampled entries."""
    sampled = mask.expand_as(kspace.real) > 0
    power = (kspace.abs()[sampled] ** 2).mean()
    sigma = torch.sqrt(power / 10 ** (snr_db / 10))
    dev = generator.device if generator is not None else kspace.device
    noise = torch.complex(
        torch.randn(kspace.shape, generator=generator, device=dev),
        torch.randn(kspace.shape, generator=generator, device=dev),
    ).to(kspace.device) * (sigma / math.sqrt(2))
    return kspace + noise * sampled


def simulate_scan(
    image: torch.Tensor,
    *,
    kind: str,
    acceleration: int,
    center_fraction: float,
    snr_db: float | None,
    seed: int,
) -> dict[str, torch.Tensor]:
    """One undersampled scan of a fully-sampled image ``[1, H, W]`` (real or complex).

    The mask and noise are drawn from ``seed``, so a dataset is the same every time.
    """
    if image.ndim != 3 or image.shape[0] != 1:
        raise ImageDataError(f"simulate_scan expects an image [1, H, W], got {tuple(image.shape)}")
    rng = np.random.default_rng(seed)
    full = fft2c(image.to(torch.complex64))
    mask = undersampling_mask(
        image.shape[-1],
        kind=kind,
        acceleration=acceleration,
        center_fraction=center_fraction,
        rng=rng,
    )[None, None, :]
    kspace = full * mask
    if snr_db is not None:
        kspace = add_noise(kspace, mask, snr_db, torch.Generator().manual_seed(seed))
    return {
        "kspace": kspace.to(torch.complex64),
        "mask": mask,
        "target": image.abs().float(),
        "has_target": torch.tensor(True),
    }


def check_kspace(kspace: Any, *, source: str) -> None:
    """Reject k-space that is not a finite complex ``[1, H, W]`` array."""
    k = torch.as_tensor(kspace)
    if not k.is_complex():
        raise ImageDataError(
            f"{source}: k-space has dtype {k.dtype}; it must be complex "
            "(complex64 or complex128), e.g. the 'kspace' array of a fastMRI file"
        )
    if k.ndim != 3 or k.shape[0] != 1 or min(k.shape) == 0:
        raise ImageDataError(f"{source}: k-space must be one coil [1, H, W], got {tuple(k.shape)}")
    if not torch.isfinite(torch.view_as_real(k)).all():
        raise ImageDataError(f"{source}: k-space has NaN/Inf entries")


class KSpaceDataset(SSLDataset):
    """Undersampled single-coil scans (modality ``kspace``) for reconstruction.

    ``pretrain``: scan dicts (see the module docstring) that pretext tasks train
    on; a scan's ``has_target`` says whether its fully-sampled reference may be
    used (semi-supervised training), otherwise its ``target`` is zeros.
    ``labelled``: ``split -> [(scan, reference magnitude [1, H, W]), ...]``.

    The modality (``kspace``) is declared on the DatasetSpec, which sets it on the
    dataset it builds; a dataset built by hand sets ``modality`` itself.
    """

    task = TaskSpec("dense")

    def __init__(
        self,
        name: str,
        *,
        pretrain: Sequence[dict[str, torch.Tensor]],
        labelled: Mapping[str, Sequence[tuple[dict[str, torch.Tensor], torch.Tensor]]],
        snr_range_db: tuple[float, float] = (5.0, 20.0),
        source: str = "",
    ) -> None:
        if not pretrain:
            raise ImageDataError(f"dataset {name!r} has no pretraining scans")
        for i, scan in enumerate(pretrain):
            check_kspace(scan["kspace"], source=f"dataset {name!r}, pretraining scan {i}")
        for split, items in labelled.items():
            for i, (scan, _) in enumerate(items):
                check_kspace(scan["kspace"], source=f"dataset {name!r}, {split} scan {i}")
        self.name, self.source = name, source
        self.snr_range_db = snr_range_db
        self._pretrain = list(pretrain)
        self._labelled = {s: list(v) for s, v in labelled.items() if len(v)}
        self.splits = tuple(s for s in SPLITS if s in self._labelled)

    @property
    def n_supervised(self) -> int:
        """How many pretraining scans carry a fully-sampled reference."""
        return sum(bool(s["has_target"]) for s in self._pretrain)

    @property
    def image_shape(self) -> tuple[int, int]:
        h, w = self._pretrain[0]["kspace"].shape[-2:]
        return int(h), int(w)

    # a list is a map-style dataset to torch's DataLoader; torch types Dataset nominally
    def pretrain_set(self) -> list[dict[str, torch.Tensor]]:  # type: ignore[override]
        return self._pretrain

    def labelled_split(self, split: str) -> Any:
        return self._labelled.get(split)

    def augment(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> dict[str, torch.Tensor]:
        """Noise2Recon's augmentation: extra k-space noise at an SNR drawn from ``snr_range_db``."""
        lo, hi = self.snr_range_db
        u = torch.rand(batch["kspace"].shape[0], generator=generator, device=generator.device)
        noisy = [
            add_noise(k[None], m[None], float(lo + (hi - lo) * ui), generator)[0]
            for k, m, ui in zip(batch["kspace"], batch["mask"], u.tolist())
        ]
        return {**batch, "kspace": torch.stack(noisy)}

    def zero_filled(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The zero-filled reconstruction, as two channels ``[B, 2, H, W]``."""
        return complex_to_channels(ifft2c(batch["kspace"]))

    def input_features(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return magnitude(self.zero_filled(batch)).flatten(1)

    def batch_rows(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["kspace"].shape[0])

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:kspace:{len(self._pretrain)}".encode())
        for scan in self._pretrain[:: max(1, len(self._pretrain) // 32)]:
            h.update(torch.view_as_real(scan["kspace"]).numpy().tobytes()[:4096])
        return h.hexdigest()[:16]
