"""MERLIN, the blind-spot peer, the networks, the baselines and the evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from selfsup.api import EvalContext
from selfsup_remote_sensing.baselines import (
    build_frost,
    build_identity,
    build_lee,
    build_median,
)
from selfsup_remote_sensing.datasets.despeckle import build as build_despeckle
from selfsup_remote_sensing.encoders import DnCNN, MerlinUNet
from selfsup_remote_sensing.evaluators.despeckling import DespecklingConfig, despeckling_metrics
from selfsup_remote_sensing.pretexts.blind_spot import BlindSpot, BlindSpotConfig
from selfsup_remote_sensing.pretexts.merlin import Merlin, MerlinConfig, co_log_likelihood
from selfsup_remote_sensing.speckle import simulate_slc

from .conftest import TINY


@pytest.fixture(scope="module")
def dataset():
    ds = build_despeckle(**TINY, real_scenes=False)
    ds.name = "remote_sensing.despeckle"
    return ds


def test_co_log_likelihood_is_the_gaussian_nll_and_is_minimised_at_r() -> None:
    r = 0.3
    b = torch.from_numpy(simulate_slc(np.full((200, 200), r), np.random.default_rng(0))[1:2])[None]
    log_r = torch.full_like(b, math.log(r))
    want = -torch.distributions.Normal(0, math.sqrt(r / 2)).log_prob(b.double()).mean()
    assert torch.allclose(co_log_likelihood(log_r.double(), b.double()), want)
    grid = np.log(r) + np.linspace(-0.5, 0.5, 21)
    losses = [float(co_log_likelihood(torch.full_like(b, g), b)) for g in grid]
    assert abs(grid[int(np.argmin(losses))] - math.log(r)) < 0.06


def test_merlin_sets_the_encoder_to_read_parts_and_saves_it() -> None:
    enc = MerlinUNet(width=4, depth=2)
    Merlin(enc, MerlinConfig())
    assert float(enc.reads_parts) == 1 and float(enc.recenter) == 1
    fresh = MerlinUNet(width=4, depth=2)
    fresh.load_state_dict(enc.state_dict())
    assert float(fresh.reads_parts) == 1


def test_blind_spot_estimate_ignores_the_hidden_pixels() -> None:
    torch.manual_seed(0)
    enc = DnCNN(width=4, depth=3)
    task = BlindSpot(enc, BlindSpotConfig(grid=4))
    slc = torch.randn(1, 2, 16, 16)
    seen = {}

    def spy(log_i: torch.Tensor) -> torch.Tensor:
        seen["input"] = log_i
        return log_i

    enc.restore = spy  # type: ignore[method-assign]
    task(slc, torch.Generator().manual_seed(3))
    first = seen["input"].clone()
    changed = slc.clone()
    hidden = (first != torch.log((slc ** 2).sum(1, keepdim=True).clamp_min(1e-6)))
    changed[:, :, hidden[0, 0]] *= 5.0  # change only the hidden pixels
    task(changed, torch.Generator().manual_seed(3))
    assert hidden.sum() == 16 and torch.equal(seen["input"][hidden], first[hidden])


def test_merlin_beats_the_noisy_input_after_a_short_training(dataset) -> None:
    torch.manual_seed(0)
    enc = MerlinUNet(width=8, depth=2)
    task = Merlin(enc, MerlinConfig())
    opt = torch.optim.Adam(enc.parameters(), 2e-3)
    data = torch.stack(dataset.pretrain_set())
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        loss = task(data[torch.randint(0, len(data), (8,), generator=g)], g)["loss"]
        opt.zero_grad()
        loss.backward()
        # the benchmark's grad_clip: without it the first steps diverge (b^2 / R^ is huge
        # where the input part a is near 0), and 120 steps are not enough to recover
        torch.nn.utils.clip_grad_norm_(enc.parameters(), 1.0)
        opt.step()
    cfg, ctx = DespecklingConfig(real_scenes=False), EvalContext()
    noisy = despeckling_metrics(build_identity(dataset), dataset, ctx, cfg)
    merlin = despeckling_metrics(enc, dataset, ctx, cfg)
    assert merlin["despeckling.psnr_log"] > noisy["despeckling.psnr_log"] + 3
    assert merlin["despeckling.psnr"] > noisy["despeckling.psnr"]


def test_baselines_choose_on_val_and_beat_the_input(dataset) -> None:
    cfg, ctx = DespecklingConfig(real_scenes=False), EvalContext()
    noisy = despeckling_metrics(build_identity(dataset), dataset, ctx, cfg)
    for build in (build_lee, build_median):
        module = build(dataset)
        assert module.chosen["selected_on"] == "val"
        got = despeckling_metrics(module, dataset, ctx, cfg)
        assert got["despeckling.psnr"] > noisy["despeckling.psnr"] + 3
    assert noisy["despeckling.ratio_mean"] == pytest.approx(1.0)
    assert noisy["despeckling.enl"] < 2


def test_frost_chooses_its_damping_on_val(dataset) -> None:
    cfg, ctx = DespecklingConfig(real_scenes=False), EvalContext()
    chosen = build_frost(dataset)
    assert chosen.chosen["selected_on"] == "val" and chosen.chosen["damping"] < 2.0
    scores = chosen.chosen["val_psnr"]
    assert max(scores.values()) > scores[f"size={chosen.chosen['size']},damping=2.0"] + 1
    fixed = build_frost(dataset, size=chosen.chosen["size"], damping=2.0)
    assert fixed.chosen["selected_on"] == "given"
    assert (despeckling_metrics(chosen, dataset, ctx, cfg)["despeckling.psnr"]
            > despeckling_metrics(fixed, dataset, ctx, cfg)["despeckling.psnr"])


def test_evaluator_tiled_matches_whole_images_closely(dataset) -> None:
    torch.manual_seed(0)
    enc = MerlinUNet(width=4, depth=2)
    ctx = EvalContext()
    whole = despeckling_metrics(enc, dataset, ctx, DespecklingConfig(real_scenes=False))
    tiled = despeckling_metrics(enc, dataset, ctx,
                                DespecklingConfig(real_scenes=False, tile=32, overlap=16))
    assert abs(whole["despeckling.psnr_log"] - tiled["despeckling.psnr_log"]) < 0.2


def test_correlated_variant_is_decorrelated_by_merlin_s_step() -> None:
    from selfsup_remote_sensing.speckle import cross_correlation, recenter_spectrum

    ds = build_despeckle(**TINY, correlated=True, doppler_centroid=0.125, real_scenes=False)
    slc = ds.labelled_split("train")[0][0]
    assert abs(cross_correlation(slc.numpy(), (1, 0))) > 0.2
    assert abs(cross_correlation(recenter_spectrum(slc).numpy(), (1, 0))) < 0.1


def test_blind_spot_inference_is_j_invariant_and_saved() -> None:
    torch.manual_seed(0)
    enc = DnCNN(width=4, depth=3).eval()
    BlindSpot(enc, BlindSpotConfig(grid=3))
    assert int(enc.blind_grid) == 3
    slc = torch.randn(1, 2, 12, 12)
    changed = slc.clone()
    changed[0, :, 5, 7] *= 10.0
    with torch.no_grad():
        a, b = enc.dense(slc), enc.dense(changed)
    assert torch.allclose(a[0, 0, 5, 7], b[0, 0, 5, 7])  # no output sees its own pixel
    assert not torch.allclose(a, b)
    fresh = DnCNN(width=4, depth=3)
    fresh.load_state_dict(enc.state_dict())
    assert int(fresh.blind_grid) == 3


def test_the_authors_merlin_loads_into_our_unet_and_despeckles(dataset) -> None:
    from selfsup.api import NotApplicable
    from selfsup_remote_sensing.pretrained_merlin import build, weights_file

    if weights_file("stripmap") is None:
        with pytest.raises(NotApplicable, match="no-deps deepdespeckling"):
            build(dataset)
        pytest.skip("deepdespeckling is not installed (pip install --no-deps deepdespeckling)")
    cfg, ctx = DespecklingConfig(real_scenes=False), EvalContext()
    net = build(dataset)  # every layer of the authors' file matched (else ValueError)
    assert net.chosen["selected_on"] == "val" and float(net.reads_parts) == 1
    noisy = despeckling_metrics(build_identity(dataset), dataset, ctx, cfg)
    got = despeckling_metrics(net, dataset, ctx, cfg)
    assert got["despeckling.psnr_log"] > noisy["despeckling.psnr_log"] + 3


def test_epd_roa_on_a_speckled_step_edge_ranks_oversmoothing_below_identity() -> None:
    from selfsup_remote_sensing.baselines import build_boxcar
    from selfsup_remote_sensing.datasets.base import SLCDataset
    from selfsup_remote_sensing.evaluators.despeckling import epd_roa

    step = np.full((64, 64), 0.02)
    step[:, 32:] = 1.0  # a vertical edge (seen by horizontal pairs)
    slc = torch.from_numpy(simulate_slc(step, np.random.default_rng(0))[:2].astype(np.float32))
    ds = SLCDataset(pretrain=[slc], scenes=[("step", slc, 1.0)])
    ds.name = "step"
    cfg, ctx = DespecklingConfig(), EvalContext()
    scores = {name: despeckling_metrics(model, ds, ctx, cfg) for name, model in (
        ("identity", build_identity(ds)), ("boxcar3", build_boxcar(ds, size=3)),
        ("boxcar15", build_boxcar(ds, size=15)))}
    for d in ("h", "v"):
        got = [scores[n][f"despeckling.real_epd_roa_{d}"] for n in ("identity", "boxcar3",
                                                                    "boxcar15")]
        assert got[0] == pytest.approx(1.0) and got[0] > got[1] > got[2] > 0
    # without speckle, only the edge has ratios other than 1: blurring it lowers the
    # horizontal degree, the vertical one (no edge across rows) stays 1
    from scipy.ndimage import uniform_filter

    amp = np.sqrt(step)
    blur_h, blur_v = epd_roa(uniform_filter(amp, 9, mode="nearest"), amp)
    assert epd_roa(amp, amp) == (1.0, 1.0)
    assert blur_h < 0.99 and blur_v == pytest.approx(1.0)
