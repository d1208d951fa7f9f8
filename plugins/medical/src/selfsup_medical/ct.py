"""Low-dose CT simulation: Poisson noise on the transmission data, then filtered back-projection.

The standard simulation of a reduced tube current (e.g. Yu et al., "Development
and validation of a practical lower-dose-simulation tool", Med. Phys. 39:2012;
Zeng et al., "A simple low-dose X-ray CT simulation from high-dose scan", IEEE
TNS 62:2015), here on a parallel-beam geometry:

1. line integrals ``p = R x`` of the clean slice ``x [H, W]`` (a map of the
   attenuation coefficient in image units), with the Radon transform
   :func:`skimage.transform.radon` at ``views`` angles evenly spread over
   ``[0, 180)`` degrees (180 by default, one per degree), ``circle=False`` so the
   whole square is projected;
2. expected counts ``I = I0 exp(-mu_scale p)`` with ``I0 = photons`` per detector
   bin, and measured counts ``N ~ Poisson(I)`` (numpy generator seeded with
   ``seed``);
3. noisy line integrals ``p~ = -log(max(N, 1) / I0) / mu_scale``: a bin that
   counts no photon is set to one count (the usual floor; log 0 is undefined);
4. filtered back-projection :func:`skimage.transform.iradon` with the ramp
   filter and linear interpolation, cropped to ``[H, W]``.

The full-dose reference is step 4 applied to the noise-free ``p`` (not ``x``
itself), so reference and low-dose image share the blur and the view-sampling
artefacts of FBP and differ only by the noise.

``mu_scale`` (attenuation per pixel for image value 1) is
``mu_per_unit * fov_cm / size``: the image spans ``fov_cm`` centimetres (30 by
default, an adult body or a generous head field), and image value 1 stands
for ``mu_per_unit = 0.38`` per cm, twice water at about 70 keV, which is what
:func:`selfsup_medical.sources.hu_to_unit` maps real CT to (water 0.5, air 0,
dense bone about 1). A 20 cm water path then attenuates by ``exp(-3.8)``, so
``photons=1e4`` leaves about 220 counts behind the thickest parts and
``photons=1e3`` about 22 (clinical low-dose CT is in this range). The scale
does not depend on ``size``, so the same slice at another resolution sees the
same physical attenuation.

The noise in the reconstructed image is NOT Gaussian white noise: Poisson
counts are signal dependent (rays through dense or long paths get fewer photons
and noisier log values), and FBP spreads each noisy ray along its line with
the ramp filter, so the noise is spatially correlated with streaks along the
most attenuating directions. Blind-spot denoisers (Noise2Self, Noise2Void)
assume noise independent between pixels; that assumption is broken here, which
is what C-BSN and Filter2Noise-style methods address.

Shapes: images ``[1, H, W]`` tensors (or ``[H, W]`` arrays for the numpy
helpers); sinograms ``[n_bins, views]`` as scikit-image returns them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: attenuation (per cm) of image value 1: twice water's 0.19 / cm at about 70 keV
MU_PER_UNIT = 0.38
#: the field of view in cm that an image spans, whatever its pixel count
FOV_CM = 30.0


@dataclass(frozen=True)
class CTGeometry:
    """Parallel-beam geometry and physics of :func:`simulate_low_dose`."""

    views: int = 180
    fov_cm: float = FOV_CM
    mu_per_unit: float = MU_PER_UNIT

    def __post_init__(self) -> None:
        if isinstance(self.views, bool) or not isinstance(self.views, int) or self.views < 8:
            raise ValueError(f"CT geometry: views must be an integer >= 8, got {self.views!r}")
        for name in ("fov_cm", "mu_per_unit"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value > 0):
                raise ValueError(f"CT geometry: {name} must be a finite number > 0, got {value!r}")

    def angles(self) -> np.ndarray:
        """Projection angles in degrees, ``views`` evenly spaced over ``[0, 180)``."""
        return np.arange(self.views) * (180.0 / self.views)

    def mu_scale(self, size: int) -> float:
        """Attenuation per pixel of image value 1 for an image ``size`` pixels across."""
        return self.mu_per_unit * self.fov_cm / size


def project(image: np.ndarray, geometry: CTGeometry) -> np.ndarray:
    """Line integrals (in image value x pixels) of ``image [H, W]``: ``[n_bins, views]``."""
    from skimage.transform import radon

    return radon(image, theta=geometry.angles(), circle=False, preserve_range=True)


def fbp(sinogram: np.ndarray, geometry: CTGeometry, shape: tuple[int, int]) -> np.ndarray:
    """Ramp-filtered back-projection of ``sinogram`` onto an image of ``shape``."""
    from skimage.transform import iradon

    side = max(shape)
    image = iradon(
        sinogram,
        theta=geometry.angles(),
        output_size=side,
        filter_name="ramp",
        interpolation="linear",
        circle=False,
        preserve_range=True,
    )
    top, left = (side - shape[0]) // 2, (side - shape[1]) // 2
    return image[top : top + shape[0], left : left + shape[1]]


def noisy_line_integrals(
    sinogram: np.ndarray,
    *,
    photons: float,
    mu_scale: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Poisson transmission noise on line integrals ``sinogram`` (see the module docstring)."""
    expected = photons * np.exp(-mu_scale * np.clip(sinogram, 0.0, None))
    counts = rng.poisson(expected).astype(np.float64)
    return -np.log(np.maximum(counts, 1.0) / photons) / mu_scale


def _check_image(image: torch.Tensor) -> np.ndarray:
    if not isinstance(image, torch.Tensor) or image.ndim != 3 or image.shape[0] != 1:
        shape = tuple(image.shape) if hasattr(image, "shape") else type(image).__name__
        raise ValueError(f"CT simulation expects a slice tensor [1, H, W], got {shape}")
    values = image[0].detach().cpu().double().numpy()
    if not np.isfinite(values).all():
        raise ValueError("CT simulation: the slice has NaN/Inf values")
    return values


def _check_photons(photons: float | None) -> None:
    if photons is not None and not (
        isinstance(photons, (int, float))
        and not isinstance(photons, bool)
        and np.isfinite(photons)
        and photons > 0
    ):
        raise ValueError(
            f"photons (incident counts per detector bin) must be a finite number "
            f"> 0, or None for the noise-free FBP; got {photons!r}"
        )


def simulate_low_dose(
    image: torch.Tensor,
    *,
    photons: float | None,
    seed: int,
    geometry: CTGeometry | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(low_dose, full_dose)`` FBP images ``[1, H, W]`` of a clean slice ``image [1, H, W]``.

    ``photons=None`` skips the noise: ``low_dose`` is then the full-dose FBP.
    Both are in the units of ``image``; negative attenuation is clipped to 0
    before projection (it has no physical meaning).
    """
    geometry = geometry or CTGeometry()
    sinogram, full = clean_projection(image, geometry)
    return low_dose(sinogram, full, photons=photons, seed=seed, geometry=geometry), full


def clean_projection(image: torch.Tensor, geometry: CTGeometry) -> tuple[np.ndarray, torch.Tensor]:
    """The noise-free sinogram of ``image [1, H, W]`` and its FBP (the full-dose reference).

    The slow half of :func:`simulate_low_dose` (the Radon transform), independent
    of the dose and the seed, so datasets can reuse it across doses.
    """
    x = np.clip(_check_image(image), 0.0, None)
    sinogram = project(x, geometry)
    full = fbp(sinogram, geometry, (x.shape[0], x.shape[1]))
    return sinogram, torch.from_numpy(full).float()[None]


def low_dose(
    sinogram: np.ndarray,
    full: torch.Tensor,
    *,
    photons: float | None,
    seed: int,
    geometry: CTGeometry,
) -> torch.Tensor:
    """The low-dose FBP ``[1, H, W]`` from a :func:`clean_projection` (``full`` gives the shape)."""
    _check_photons(photons)
    if photons is None:
        return full.clone()
    noisy = noisy_line_integrals(
        sinogram,
        photons=float(photons),
        mu_scale=geometry.mu_scale(max(full.shape[1:])),
        rng=np.random.default_rng(seed),
    )
    shape = (int(full.shape[1]), int(full.shape[2]))
    return torch.from_numpy(fbp(noisy, geometry, shape)).float()[None]
