"""``remote_sensing.hsi_synthetic``: hyperspectral cubes mixed from real reflectance spectra.

Each cube mixes one spectrum per class of earthlib's spectral library (real measured
soils, built materials, non-photosynthetic vegetation and burned materials; vegetation
simulated by PROSAIL) with abundance maps derived from one real picture shipped in
scikit-image (:mod:`..hyperspectral`, which also states the noise model). Pictures are
centre-cropped to a square and resized to ``image_size``. Splits by picture:

- train (8): astronaut, chelsea, rocket, retina, hubble_deep_field, brick, grass, gravel;
- val (2): coins, coffee;
- test (3): immunohistochemistry, camera, cell.

Items: labelled items of every split are whole cubes ``(sample [2, bands, S, S], clean
[bands, S, S])``, the sample holding the degraded observation and the observation mask;
pretraining items are ``patch_size`` patches of the degraded *training* cubes (one noise
realisation each; a pretext never sees a clean cube). Each cube's endmembers, abundances
and noise are seeded by ``SeedSequence([seed, picture index])``. Needs earthlib's data
(``pip install --no-deps earthlib``); nothing is downloaded.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from selfsup.api import SSLDataset, TaskSpec

from ..hyperspectral import degrade, load_library, synthesize_cube
from ..tiling import tile

NAME = "remote_sensing.hsi_synthetic"
SOURCES: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "chelsea", "rocket", "retina", "hubble_deep_field", "brick", "grass",
              "gravel"),
    "val": ("coins", "coffee"),
    "test": ("immunohistochemistry", "camera", "cell"),
}


def picture(name: str, size: int) -> np.ndarray:
    """A scikit-image picture, ``[size, size, 3]`` or ``[size, size]`` in ``[0, 1]``."""
    from skimage import data
    from skimage.color import rgba2rgb
    from skimage.transform import resize

    image = np.asarray(getattr(data, name)()).astype(np.float64)
    if image.ndim == 3 and image.shape[2] == 4:
        image = rgba2rgb(image / 255.0) * 255.0
    if image.max() > 1.0:
        image = image / 255.0
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = image[top:top + side, left:left + side]
    return np.clip(resize(crop, (size, size, *crop.shape[2:]), anti_aliasing=True), 0, 1)


class HSIDataset(SSLDataset):
    """Degraded cube patches for pretraining; whole degraded/clean cube pairs per split."""

    def __init__(self, pretrain: list[torch.Tensor],
                 labelled: dict[str, list[tuple[torch.Tensor, torch.Tensor]]],
                 wavelengths: np.ndarray | None, source: str) -> None:
        self._pretrain = pretrain
        self._labelled = labelled
        self.splits = tuple(labelled)
        self.task = TaskSpec("dense")
        self.wavelengths = wavelengths
        self.source = source
        #: whole samples without reference, ``(name, [2, bands, H, W])`` (folder datasets)
        self.cubes: list[tuple[str, torch.Tensor]] = []
        #: ``(file, reason)`` of every input the dataset skipped
        self.skipped: list[tuple[str, str]] = []

    def pretrain_set(self) -> list[torch.Tensor]:  # type: ignore[override]
        return self._pretrain

    def labelled_split(  # type: ignore[override]
        self, split: str
    ) -> list[tuple[torch.Tensor, torch.Tensor]] | None:
        return self._labelled.get(split)

    def input_features(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[:, 0].flatten(1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{self.name}:{len(self._pretrain)}".encode())
        for x in self._pretrain[:: max(1, len(self._pretrain) // 16)]:
            h.update(x.numpy().tobytes()[:4096])
        return h.hexdigest()[:16]


def _check_fraction(key: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{NAME}: {key} must be a fraction in [0, 1], got {value!r}")


def build(
    *,
    image_size: int = 64,
    bands: int = 31,
    patch_size: int = 32,
    patch_overlap: int = 16,
    sigma: float = 0.1,
    stripes: float = 0.0,
    deadlines: float = 0.0,
    missing: float = 0.0,
    seed: int = 0,
) -> HSIDataset:
    """The ``remote_sensing.hsi_synthetic`` dataset (see the module docstring)."""
    ints: tuple[tuple[str, int, int], ...] = (
        ("image_size", image_size, 8), ("bands", bands, 2), ("patch_size", patch_size, 4),
        ("seed", seed, 0))
    for key, value, low in ints:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{NAME}: {key} must be an integer >= {low}, got {value!r}")
    if patch_size > image_size or not isinstance(patch_overlap, int) or not (
            0 <= patch_overlap < patch_size):
        raise ValueError(f"{NAME}: need patch_size <= image_size and 0 <= patch_overlap < "
                         f"patch_size, got {patch_size}, {image_size}, {patch_overlap}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or sigma < 0:
        raise ValueError(f"{NAME}: sigma must be a number >= 0, got {sigma!r}")
    for name, fraction in (("stripes", stripes), ("deadlines", deadlines),
                           ("missing", missing)):
        _check_fraction(name, fraction)
    library = load_library()
    labelled: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    wavelengths = np.zeros(0)
    k = 0
    for split, names in SOURCES.items():
        labelled[split] = []
        for name in names:
            rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
            clean, wavelengths, _ = synthesize_cube(picture(name, image_size), library, bands, rng)
            obs, mask = degrade(clean, rng, sigma=float(sigma), stripes=float(stripes),
                                deadlines=float(deadlines), missing=float(missing))
            sample = torch.from_numpy(np.stack([obs, mask]).astype(np.float32))
            labelled[split].append((sample, torch.from_numpy(clean.astype(np.float32))))
            k += 1
    pretrain: list[torch.Tensor] = []
    for sample, _ in labelled["train"]:
        flat = sample.flatten(0, 1)  # tile [C, H, W], then back to [2, bands, P, P]
        pretrain += [p.reshape(2, -1, *p.shape[-2:]).contiguous()
                     for p in tile(flat, patch_size, patch_overlap)[0]]
    levels = (f"Gaussian sigma {sigma}, stripes in {stripes:.0%} of bands, dead lines in "
              f"{deadlines:.0%}, {missing:.0%} bands missing")
    return HSIDataset(
        pretrain, labelled, wavelengths,
        source=(f"{bands}-band {image_size}x{image_size} cubes mixing earthlib spectra with "
                f"abundances from scikit-image pictures ({levels}); {len(pretrain)} training "
                f"patches of {patch_size}"),
    )
