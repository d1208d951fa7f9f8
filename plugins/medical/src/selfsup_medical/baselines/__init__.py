"""The field's classical methods, registered as baselines (``selfsup list baseline``).

``selfsup bench`` measures a baseline with the same evaluators as a learned model,
so each method here is an ``nn.Module`` without parameters that offers the
``dense`` face: ``dense(batch)`` (and ``forward``) maps a batch to the output the
restoration evaluator reads. Each factory is ``(dataset, context=None, **options)``
(:class:`selfsup.api.BaselineSpec`; these methods need nothing from the context).

- MRI reconstruction (:mod:`.mri`, modality ``kspace``): ``medical.zero_filled``
  and ``medical.tv_cs`` (total-variation compressed sensing);
- image denoising (:mod:`.denoising`, ``image2d``): ``medical.identity`` (also
  ``volume3d``), ``medical.tv_denoise``, ``medical.nlm``, ``medical.bilateral``.

When a strength option is None, :func:`.selection.choose_on_val` picks it on the
validation split. Changed in 0.2: these were encoders reached by
``"encoder:medical.<name>"``; they are now baselines with the same keys, options
and computations.
"""

from .denoising import (
    BILATERAL_GRID,
    NLM_GRID,
    TV_DENOISE_GRID,
    Bilateral,
    Identity,
    ImageFilter,
    NonLocalMeans,
    TVDenoise,
    build_bilateral,
    build_identity,
    build_nlm,
    build_tv_denoise,
    estimate_noise_sigma,
)
from .mri import (
    TV_CS_GRID,
    TVCompressedSensing,
    ZeroFilled,
    build_tv_cs,
    build_zero_filled,
    tv_prox,
)
from .selection import choose_on_val

__all__ = [
    "BILATERAL_GRID",
    "NLM_GRID",
    "TV_CS_GRID",
    "TV_DENOISE_GRID",
    "Bilateral",
    "Identity",
    "ImageFilter",
    "NonLocalMeans",
    "TVCompressedSensing",
    "TVDenoise",
    "ZeroFilled",
    "build_bilateral",
    "build_identity",
    "build_nlm",
    "build_tv_cs",
    "build_tv_denoise",
    "build_zero_filled",
    "choose_on_val",
    "estimate_noise_sigma",
    "tv_prox",
]
