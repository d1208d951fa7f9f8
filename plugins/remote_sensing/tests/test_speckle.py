"""The speckle simulator against Goodman's model, the transfer function, the re-centring."""

from __future__ import annotations

import numpy as np
import torch

from selfsup_remote_sensing.speckle import (
    cross_correlation,
    recenter_spectrum,
    simulate_slc,
    transfer_function,
)


def test_white_speckle_follows_goodman() -> None:
    r = np.full((128, 128), 0.25)
    slc = simulate_slc(r, np.random.default_rng(0))
    a, b = slc.astype(np.float64)
    intensity = a**2 + b**2
    assert abs(intensity.mean() / 0.25 - 1) < 0.03  # E|z|^2 = R
    assert abs(intensity.std() / intensity.mean() - 1) < 0.05  # exponential: CV 1
    assert abs(a.var() / 0.125 - 1) < 0.05 and abs(b.var() / 0.125 - 1) < 0.05  # N(0, R/2)
    assert all(abs(cross_correlation(slc, lag)) < 0.03 for lag in [(0, 0), (1, 0), (0, 1)])


def test_transfer_function_keeps_power_and_correlates_parts() -> None:
    h = transfer_function((64, 64))
    assert abs(np.mean(h**2) - 1) < 1e-12
    slc = simulate_slc(np.ones((128, 128)), np.random.default_rng(1), correlated=True)
    assert abs((slc.astype(np.float64) ** 2).sum(0).mean() - 1) < 0.05
    assert max(abs(cross_correlation(slc, lag)) for lag in [(1, 0), (-1, 0)]) > 0.3
    a = slc[0].astype(np.float64)  # neighbours within the real part are correlated too
    assert np.mean(a * np.roll(a, 1, 1)) / np.mean(a * a) > 0.4


def test_recentring_decorrelates_and_keeps_intensity() -> None:
    slc = simulate_slc(np.ones((128, 128)), np.random.default_rng(2), correlated=True,
                       doppler_centroid=0.125)  # 16 whole bins
    out = recenter_spectrum(torch.from_numpy(slc)).numpy()
    assert np.allclose((out**2).sum(0), (slc**2).sum(0), atol=1e-5)
    assert max(abs(cross_correlation(out, lag)) for lag in [(0, 0), (1, 0), (-1, 0)]) < 0.05
    batch = recenter_spectrum(torch.from_numpy(np.stack([slc, slc])))
    assert torch.allclose(batch[0], torch.from_numpy(out))
