"""Noise2Recon: semi-supervised MRI reconstruction with noise-consistency training.

Desai, Ozturkler, Sandino, Boutin, Willis, Vasanawala, Hargreaves, Ré, Pauly &
Chaudhari, "Noise2Recon: Enabling SNR-robust MRI reconstruction with
semi-supervised and self-supervised learning", Magn. Reson. Med. 2023
(arXiv:2110.00075); details follow the authors' code in meddlr
(github.com/ad12/meddlr, ``meddlr/modeling/meta_arch/n2r.py`` and ``ssdu.py``).

A reconstruction model ``f`` maps an undersampled k-space scan to a complex image
``[B, 2, H, W]`` (``medical.recon_unet``). Noise2Recon trains it with two terms:

- *reconstruction*: on scans with a fully-sampled reference (``has_target``),
  the L1 distance to the reference. meddlr uses the complex L1 (mean modulus of
  the complex error); the references of a k-space batch here are magnitudes
  (``"target"`` ``[B, 1, H, W]``), so the error is taken between magnitudes;
- *consistency*: on scans without a reference, the reconstruction of the scan
  with extra k-space noise (``dataset.augment``: complex Gaussian noise on the
  sampled entries at a random SNR) must match the reconstruction of the scan
  itself, complex L1, the latter computed without gradient (a pseudo-label;
  meddlr computes it under ``torch.no_grad``). ``supervised_consistency=True``
  applies it to the referenced scans too (meddlr's
  ``USE_SUPERVISED_CONSISTENCY``, off by default).

``loss = reconstruction + consistency_weight * consistency``, each a mean over
its own scans (meddlr's default weight is 0.1; the paper tunes it).

Consistency alone does not teach de-aliasing: nothing ties the output to the
anatomy, and a model that ignores noise (or returns its input) satisfies it.
Without any reference, the paper's self-supervised variant replaces the
supervised term with the SSDU loss (Yaman et al., "Self-supervised learning of
physics-guided reconstruction neural networks without fully sampled reference
data", MRM 2020); meddlr does so by wrapping an ``SSDUModel`` in ``N2RModel``,
which applies SSDU to every scan and consistency (on the full acquired k-space)
to every scan. SSDU splits the acquired k-space locations ``Omega`` of a scan
into ``Theta`` (the model's input) and ``Lambda`` (held out): the model
reconstructs from ``Theta`` alone and is scored on how well its k-space predicts
the held-out ``Lambda`` data, here with SSDU's normalised L1-L2 loss
``||y_L - P_L F f||_2 / ||y_L||_2 + ||y_L - P_L F f||_1 / ||y_L||_1`` (meddlr
takes its L1 in the image domain instead). As in SSDU's uniform selection,
``Lambda`` is a fraction ``holdout_fraction`` (``rho``, 0.4) of the acquired
locations outside a small central block that always stays in ``Theta``. Here the
selection is of whole phase-encoding *columns* (the batch's masks are column
masks ``[B, 1, 1, W]``; SSDU selects single k-space points): held-out columns
look exactly like unsampled ones, which is the task the model faces at test time.

SSDU's network is unrolled with data-consistency layers, so its output keeps the
input data ``Theta`` by construction, and its loss only scores ``Lambda``.
``medical.recon_unet`` has such a step by default (``data_consistency=True``),
and then the ``Theta`` term below is zero. A model without one (the recon U-Net
with ``data_consistency=False``, or your own) scored on ``Lambda`` alone is free
to rewrite the acquired low frequencies, and does (measured on 32 x 32 phantom
scans at 2x: the k-space error on the acquired columns grew to ~100% of the data
and PSNR fell from 20.0 dB, zero-filled, to 13.7 dB in 200 steps). The SSDU mode
therefore adds the same normalised loss on ``Theta`` (weight ``input_weight``,
1.0; 0 gives SSDU's loss as published): with it the acquired-column error
stayed at 3% and PSNR rose to 20.9 dB.
``reconstruction``:

- ``"supervised"``: semi-supervised Noise2Recon (refused on a dataset without
  any referenced scan);
- ``"ssdu"``: the self-supervised variant (SSDU + consistency), references ignored;
- ``"auto"`` (default): ``"ssdu"`` when the dataset has no referenced scan
  (``dataset.n_supervised == 0``), else ``"supervised"``.

meddlr balances supervised and unsupervised scans 1:1 in its sampler; here a
batch holds whatever the loader gives, and a term without scans in the batch is 0.

A batch is the k-space dict of :mod:`selfsup_medical.kspace`: ``kspace``
complex ``[B, 1, H, W]``, ``mask`` ``[B, 1, 1, W]``, ``target`` ``[B, 1, H, W]``,
``has_target`` bool ``[B]``. The model is trained through its ``dense`` face
(``medical.recon_unet``), the complex image ``[B, 2, H, W]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from selfsup.api import (
    KSPACE,
    PretextTask,
    SSLDataset,
    boolean,
    non_negative,
    one_of,
    open_unit,
    option,
    parse_options,
)

from ..kspace import KSpaceDataset, channels_to_complex, fft2c, magnitude

NAME = "medical.noise2recon"
RECONSTRUCTIONS = ("auto", "supervised", "ssdu")
BATCH_KEYS = ("kspace", "mask", "target", "has_target")
#: SSDU's ``small_acs_block`` (4 x 4 points) as columns: always in the model's input
CENTRE_COLUMNS = 4


@dataclass(frozen=True)
class Noise2ReconConfig:
    """Options of :func:`build` (``medical.noise2recon``); see the module docstring."""

    consistency_weight: float = option(1.0, non_negative, "weight of the consistency term")
    reconstruction: str = option("auto", one_of(*RECONSTRUCTIONS),
                                 "auto, supervised or ssdu (see the module docstring)")
    supervised_consistency: bool = option(False, boolean,
                                          "consistency on referenced scans too (supervised)")
    holdout_fraction: float = option(0.4, open_unit,
                                     "SSDU's rho: the share of the acquired non-central "
                                     "columns held out for the loss")
    input_weight: float = option(1.0, non_negative,
                                 "weight of the SSDU mode's input-fidelity term (0: SSDU's "
                                 "loss as published, for models with data consistency)")


def ssdu_split(
    mask: torch.Tensor, fraction: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Split column masks ``[B, 1, 1, W]`` into input and held-out masks (same shape).

    Per scan, ``round(fraction * n)`` of the ``n`` acquired columns outside the
    central :data:`CENTRE_COLUMNS` are drawn uniformly without replacement for
    the loss (at least one); the rest stay in the input. A scan with no acquired
    column outside the centre holds out nothing and adds nothing to the SSDU loss.
    """
    width = mask.shape[-1]
    centre = torch.zeros(width, dtype=torch.bool)
    start = max(0, width // 2 - CENTRE_COLUMNS // 2)
    centre[start : start + CENTRE_COLUMNS] = True
    sampled = mask.reshape(mask.shape[0], width).detach().cpu() > 0
    held = torch.zeros_like(sampled)
    for b in range(sampled.shape[0]):
        candidates = torch.nonzero(sampled[b] & ~centre).flatten()
        if candidates.numel() == 0:
            # nothing outside the centre was acquired (possible at 8x on narrow
            # images): this scan gets no SSDU term rather than stopping the run
            continue
        n = max(1, round(fraction * candidates.numel()))
        perm = torch.randperm(
            candidates.numel(), generator=generator, device=generator.device
        ).cpu()
        held[b, candidates[perm[:n]]] = True
    held_mask = held.view_as(mask).to(mask.device, mask.dtype)
    return mask * (1 - held_mask), held_mask


def kspace_loss(
    pred: torch.Tensor, kspace: torch.Tensor, columns: torch.Tensor, eps: float = 1e-12
) -> torch.Tensor:
    """SSDU's normalised L1-L2 k-space loss on some columns, mean over scans.

    ``pred`` ``[B, 2, H, W]`` complex image; ``kspace`` the acquired complex
    ``[B, 1, H, W]``; ``columns`` a column mask ``[B, 1, 1, W]``:
    ``||e||_2 / ||y_C||_2 + ||e||_1 / ||y_C||_1`` with ``e = (F pred - y) on C``.
    """
    target = kspace * columns
    err = (fft2c(channels_to_complex(pred)) - kspace) * columns
    l2 = err.abs().pow(2).flatten(1).sum(1).sqrt() / (
        target.abs().pow(2).flatten(1).sum(1).sqrt() + eps
    )
    l1 = err.abs().flatten(1).sum(1) / (target.abs().flatten(1).sum(1) + eps)
    return (l2 + l1).mean()


def _rows(batch: dict[str, torch.Tensor], rows: torch.Tensor) -> dict[str, torch.Tensor]:
    return {k: v[rows] for k, v in batch.items()}


class Noise2Recon(nn.Module, PretextTask):
    """Noise2Recon training of a k-space reconstruction model (module docstring).

    ``forward(batch, generator)`` returns ``{"loss", "reconstruction",
    "consistency"}`` (the last two detached; 0 when the batch has no scan for them).
    """

    def __init__(self, encoder: nn.Module, dataset: SSLDataset, config: Noise2ReconConfig) -> None:
        super().__init__()
        if dataset.modality != KSPACE:
            raise ValueError(
                f"{NAME} reconstructs MRI from k-space; dataset {dataset.name!r} is "
                f"{dataset.modality!r}"
            )
        self.encoder = encoder
        self.dataset = dataset
        self.config = config
        # a k-space dataset of another plugin does not count its references: "auto"
        # then picks the supervised mode, which uses those the batches carry
        n_supervised = dataset.n_supervised if isinstance(dataset, KSpaceDataset) else None
        mode = config.reconstruction
        if mode == "auto":
            mode = "ssdu" if n_supervised == 0 else "supervised"
        if mode == "supervised" and n_supervised == 0:
            raise ValueError(
                f"{NAME}: dataset {dataset.name!r} has no scan with a fully-sampled reference "
                "(n_supervised=0), and consistency alone gives the model no anchor to "
                "de-alias; use reconstruction='ssdu' (Noise2Recon with SSDU) or 'auto', or "
                "build the dataset with n_supervised > 0"
            )
        self.mode = mode

    def reconstruct(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        pred = self.encoder.dense(batch)
        k = batch["kspace"]
        want = (k.shape[0], 2, *k.shape[-2:])
        if not isinstance(pred, torch.Tensor) or tuple(pred.shape) != want:
            got = tuple(pred.shape) if isinstance(pred, torch.Tensor) else type(pred).__name__
            raise ValueError(
                f"{NAME}: the encoder must return a complex image as two channels {want}, "
                f"got {got}; use a k-space reconstruction model such as medical.recon_unet"
            )
        return pred

    def consistency(
        self, batch: dict[str, torch.Tensor], generator: torch.Generator
    ) -> torch.Tensor:
        """Complex L1 between reconstructions of noise-augmented and original scans."""
        noisy = self.dataset.augment(batch, generator)
        with torch.no_grad():  # the clean scan's reconstruction is a fixed pseudo-label
            base = self.reconstruct(batch)
        aug = self.reconstruct(noisy)
        return magnitude(aug - base).mean()

    def forward(self, batch: Any, generator: torch.Generator) -> dict[str, torch.Tensor]:
        if not isinstance(batch, dict) or any(k not in batch for k in BATCH_KEYS):
            got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise TypeError(
                f"{NAME} expects a k-space batch dict with keys {list(BATCH_KEYS)} "
                f"(KSpaceDataset.collate), got {got}"
            )
        cfg = self.config
        has = batch["has_target"].reshape(-1).bool()
        terms: dict[str, torch.Tensor] = {}
        if self.mode == "ssdu":
            keep, held = ssdu_split(batch["mask"], cfg.holdout_fraction, generator)
            split = {**batch, "kspace": batch["kspace"] * keep, "mask": keep}
            pred = self.reconstruct(split)
            terms["reconstruction"] = kspace_loss(pred, batch["kspace"], held)
            if cfg.input_weight > 0:  # no data-consistency layer: keep the input data too
                fidelity = kspace_loss(pred, batch["kspace"], keep)
                terms["reconstruction"] = terms["reconstruction"] + cfg.input_weight * fidelity
            consistent = torch.ones_like(has)
        else:
            if has.any():
                sup = _rows(batch, has)
                pred = magnitude(self.reconstruct(sup))
                terms["reconstruction"] = (pred - sup["target"].to(pred.dtype)).abs().mean()
            consistent = torch.ones_like(has) if cfg.supervised_consistency else ~has
        if consistent.any() and cfg.consistency_weight > 0:
            terms["consistency"] = self.consistency(_rows(batch, consistent), generator)
        # a term without scans is 0 but keeps the graph, so backward always works
        anchor = next(iter(terms.values())) if terms else self.reconstruct(batch).sum()
        zero = anchor * 0.0
        recon = terms.get("reconstruction", zero)
        cons = terms.get("consistency", zero)
        return {
            "loss": recon + cfg.consistency_weight * cons,
            "reconstruction": recon.detach(),
            "consistency": cons.detach(),
        }


def build(encoder: nn.Module, dataset: SSLDataset, **options: Any) -> Noise2Recon:
    """``medical.noise2recon`` factory; ``options`` are :class:`Noise2ReconConfig` fields."""
    return Noise2Recon(encoder, dataset, parse_options(Noise2ReconConfig, options, NAME))
