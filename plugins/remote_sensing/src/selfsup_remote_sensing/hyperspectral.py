"""Synthetic hyperspectral cubes from real reflectance spectra, and their degradations.

**Spectra.** The ``earthlib`` wheel (MIT, Christopher Anderson; 4.9 MB) ships a global
spectral library as an ENVI spectral library, ``earthlib/data/spectra.sli`` (+ ``.hdr``,
and ``spectra.csv`` with each spectrum's classes and source): 7,261 reflectance spectra,
400-2450 nm at 10 nm, 180 bands (the water-vapour bands 1360-1450 and 1800-1950 nm left
out). Measured: 4,248 soils (4,168 from the ICRAF-ISRIC soil database, 80 ASD), 888
built materials (roads, roofs, paint, concrete, metal; ASD field spectra), 104 non-
photosynthetic vegetation (litter, bark, wood) and 21 burned materials. The 2,000
vegetation spectra are *simulated* by the library's authors with PROSAIL (leaf and
canopy radiative transfer), not measured: say so wherever vegetation is used. This
plugin never imports earthlib (its own dependencies, pandas, spectral, loguru, tqdm, are
not needed): install the data with ``pip install --no-deps earthlib`` and the files are
found through ``importlib.metadata`` and read by this plugin's ENVI reader
(:func:`.io.hsi.read_spectral_library`). SPy (``spectral``) ships no spectra (it reads
ECOSTRESS/ASTER libraries the user downloads) and ``hylite`` ships only calibration
panels (Spectralon, PVC), so earthlib is the one wheel found with real spectra.

**Cubes** (:func:`synthesize_cube`): the linear mixing model ``X = sum_k A_k s_k``: one
endmember spectrum ``s_k`` drawn per class (bare soil, vegetation, non-photosynthetic
vegetation, built, burned; seeded) and abundance maps ``A_k`` derived from a real
picture shipped in scikit-image: the soft k-means memberships of its smoothed colours,
``A_k ~ exp(-|c - mu_k|^2 / (2 tau^2))`` normalised to sum to 1 (non-negative, sum-to-one
as the model requires; the picture's regions and edges become material boundaries).
Bands are ``bands`` of the 180, evenly spaced; the cube is divided by its maximum so it
lies in ``[0, 1]`` (the data range of MPSNR/MSSIM).

**Degradations** (:func:`degrade`), at stated levels, all seeded:

- Gaussian: i.i.d. ``N(0, sigma^2)`` on every sample (``sigma``, in units of the cube's
  maximum).
- stripes: in a fraction ``stripes`` of the bands, 5-15% of the columns get a constant
  offset ``U(-0.25, 0.25)`` (push-broom detector miscalibration).
- dead lines: in a fraction ``deadlines`` of the bands, 3-10 columns are set to 0 (dead
  detector elements; unknown to the methods, as in the denoising literature).
- missing bands (completion): a fraction ``missing`` of the bands (never the first or
  last) is not observed; the observation is 0 there and the mask (known) says so.

A sample of modality ``hsi.cube`` is ``[2, bands, H, W]`` float32: the observed cube and the
observation mask (1 observed, 0 missing).
"""

from __future__ import annotations

import csv
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HSI_CUBE = "hsi.cube"
#: earthlib's LEVEL_2 classes used as endmember classes, in this order
CLASSES: tuple[str, ...] = ("bare", "vegetation", "npv", "built", "burned")
INSTALL = "pip install --no-deps earthlib  (data only: MIT, 4.9 MB)"


class SpectralLibraryMissing(RuntimeError):
    """earthlib's spectral library is not installed."""


@dataclass
class SpectralLibrary:
    """Spectra ``[n, 180]`` (reflectance), wavelengths in nm, and per-spectrum metadata."""

    spectra: np.ndarray
    wavelengths: np.ndarray
    names: list[str]
    classes: list[str]
    measured: np.ndarray  # bool per spectrum: measured (True) or simulated (PROSAIL)

    def of_class(self, name: str) -> np.ndarray:
        return np.flatnonzero(np.asarray(self.classes) == name)


def library_files() -> tuple[Path, Path] | None:
    """``(spectra.sli, spectra.csv)`` of an installed earthlib, or None."""
    try:
        dist = importlib.metadata.distribution("earthlib")
    except importlib.metadata.PackageNotFoundError:
        return None
    found: dict[str, Path] = {}
    for f in dist.files or ():
        p = str(f).replace("\\", "/")
        if p.endswith(("earthlib/data/spectra.sli", "earthlib/data/spectra.csv")):
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                found[path.suffix] = path
    if ".sli" not in found or ".csv" not in found:
        return None
    return found[".sli"], found[".csv"]


_CACHE: dict[str, SpectralLibrary] = {}


def load_library() -> SpectralLibrary:
    """earthlib's library, read with this plugin's ENVI reader (cached per process)."""
    if "earthlib" in _CACHE:
        return _CACHE["earthlib"]
    from .io.hsi import read_spectral_library

    files = library_files()
    if files is None:
        raise SpectralLibraryMissing(
            "the hyperspectral datasets mix real reflectance spectra from earthlib's spectral "
            f"library, which is not installed: {INSTALL}")
    sli, table = files
    spectra, wavelengths, names = read_spectral_library(sli)
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    # the table lists the spectra in the library's order (names repeat, and one differs:
    # 'burncham' in the header, 'burnedcham' in the table): align by position, and refuse
    # a table that does not match the library
    agree = sum(r["NAME"] == n for r, n in zip(rows, names))
    if len(rows) != len(names) or agree < 0.99 * len(names) or wavelengths is None:
        raise ValueError(f"{sli}: its {len(names)} spectra do not match the {len(rows)} rows "
                         f"of {table.name} ({agree} names agree), or it lacks wavelengths")
    lib = SpectralLibrary(
        spectra=np.clip(spectra, 0.0, None), wavelengths=wavelengths, names=names,
        classes=[r["LEVEL_2"] for r in rows],
        measured=np.asarray([r["LEVEL_4"] == "measured" for r in rows]))
    _CACHE["earthlib"] = lib
    return lib


def band_indices(n_library: int, bands: int) -> np.ndarray:
    """``bands`` evenly spaced indices into the library's bands."""
    if not 2 <= bands <= n_library:
        raise ValueError(f"bands must be in [2, {n_library}], got {bands}")
    return np.unique(np.round(np.linspace(0, n_library - 1, bands)).astype(int))


def abundances(picture: np.ndarray, k: int, rng: np.random.Generator,
               tau: float = 0.1, iterations: int = 20) -> np.ndarray:
    """``[H, W, k]`` soft k-means memberships of a picture's smoothed colours (module doc)."""
    from scipy.ndimage import gaussian_filter

    img = picture if picture.ndim == 3 else picture[..., None]
    feats = np.stack([gaussian_filter(img[..., c], 1.0) for c in range(img.shape[2])], -1)
    x = feats.reshape(-1, feats.shape[-1])
    centres = x[rng.choice(len(x), size=k, replace=False)]
    for _ in range(iterations):
        labels = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if np.any(labels == j):
                centres[j] = x[labels == j].mean(0)
    d2 = ((x[:, None] - centres[None]) ** 2).sum(-1)
    logits = -(d2 - d2.min(1, keepdims=True)) / (2 * tau**2)
    a = np.exp(logits)
    a /= a.sum(1, keepdims=True)
    return a.reshape(*feats.shape[:2], k)


def synthesize_cube(picture: np.ndarray, library: SpectralLibrary, bands: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``(cube [bands, H, W] in [0, 1], wavelengths nm [bands], endmember names)``."""
    idx = band_indices(library.spectra.shape[1], bands)
    chosen = [int(rng.choice(library.of_class(c))) for c in CLASSES]
    endmembers = library.spectra[chosen][:, idx]  # [k, bands]
    a = abundances(picture, len(CLASSES), rng)
    cube = np.einsum("hwk,kb->bhw", a, endmembers)
    cube /= max(float(cube.max()), 1e-12)
    return cube, library.wavelengths[idx], [library.names[i] for i in chosen]


def degrade(clean: np.ndarray, rng: np.random.Generator, *, sigma: float = 0.1,
            stripes: float = 0.0, deadlines: float = 0.0,
            missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """``(observation [bands, H, W], mask [bands, H, W])`` (module docstring's levels)."""
    b, _h, w = clean.shape
    noisy = clean + sigma * rng.standard_normal(clean.shape)
    for band in rng.choice(b, size=round(stripes * b), replace=False):
        cols = rng.choice(w, size=max(1, int(rng.uniform(0.05, 0.15) * w)), replace=False)
        noisy[band][:, cols] += rng.uniform(-0.25, 0.25, size=len(cols))
    for band in rng.choice(b, size=round(deadlines * b), replace=False):
        cols = rng.choice(w, size=int(rng.integers(3, 11)), replace=False)
        noisy[band][:, cols] = 0.0
    mask = np.ones_like(clean)
    n_missing = round(missing * b)
    if n_missing:
        gone = rng.choice(np.arange(1, b - 1), size=min(n_missing, b - 2), replace=False)
        mask[gone] = 0.0
        noisy[gone] = 0.0
    return noisy, mask


def fill_missing_bands(obs: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """``obs [bands, H, W]`` with every unobserved band (``observed`` [bands] bool) linearly
    interpolated along the spectrum from the nearest observed bands (the classical
    baselines' and the networks' starting point)."""
    if observed.all():
        return obs
    keep = np.flatnonzero(observed)
    if len(keep) == 0:
        return np.zeros_like(obs)
    out = obs.copy()
    for band in np.flatnonzero(~observed):
        hi = keep[keep > band]
        lo = keep[keep < band]
        if len(lo) and len(hi):
            t = (band - lo[-1]) / (hi[0] - lo[-1])
            out[band] = (1 - t) * obs[lo[-1]] + t * obs[hi[0]]
        else:
            out[band] = obs[lo[-1]] if len(lo) else obs[hi[0]]
    return out
