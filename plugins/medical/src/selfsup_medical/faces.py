"""The faces this plugin adds to core's ``embedding``, ``tokens`` and ``dense``.

A face names what a pretext task needs from the module it trains (see
:class:`selfsup.api.EncoderSpec`). Three of this plugin's pretexts train one
architecture each, through methods that only that architecture has; each of those
architectures declares a face of its own, which the pretext declares in turn, so
``selfsup bench`` trains that network for the pretext whatever the benchmark's
encoder, and ``selfsup pretrain`` refuses any other. Each of these networks also offers
``dense`` (its denoised image), which the restoration evaluator reads.

No torch here: :mod:`selfsup_medical.plugin` imports these names to register.
"""

from __future__ import annotations

#: C-BSN's conditional blind-spot network (``medical.cbsn_net``):
#: ``core(x, blind)`` runs it on standardised images ``[B, C, H, W]`` with the
#: blind spot on or off, and the static ``standardise(x)`` gives
#: ``(standardised, mean, std)`` per image and channel.
BLIND_SPOT_NET = "medical.blind_spot_net"

#: a score model with Tweedie's formula (``medical.score_unet``):
#: ``score(y)`` estimates ``grad log p(y)`` (same shape as ``y``), ``estimate_levels(y)``
#: gives per-image noise levels ``[B]``, the buffer ``noise_level`` (NaN when
#: unknown) and ``level_known`` hold the level used by ``dense``, and
#: ``spatial_dims`` is 2 or 3.
SCORE = "medical.score"

#: an attention-guided bilateral filter (``medical.agbf``): ``dense(x)`` filters
#: images ``[B, C, H, W]`` with per-pixel parameters it predicts;
#: ``filter_parameters(x)`` gives those maps ``[B, stages, 3, H, W]`` and
#: ``filter_with(x, maps)`` filters with given ones.
BILATERAL_FILTER = "medical.bilateral_filter"

__all__ = ["BILATERAL_FILTER", "BLIND_SPOT_NET", "SCORE"]
