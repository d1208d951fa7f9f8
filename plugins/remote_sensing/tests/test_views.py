"""SAR views and the patch embedding encoder: core's objectives train on SAR patches."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.api import Component, Experiment, Registry, run_experiment
from selfsup_remote_sensing.datasets.views import SARViews, parse_views
from selfsup_remote_sensing.encoders import SARPatchCNN
from selfsup_remote_sensing.speckle import simulate_slc

from .conftest import TINY

OFF = {"crop": 1.0, "flip": 0.0, "rotate": 0.0, "gain_db": 0.0}


def _batch(n: int = 6, size: int = 16) -> torch.Tensor:
    rng = np.random.default_rng(0)
    r = rng.uniform(0.05, 1.0, (size, size))
    return torch.stack([torch.from_numpy(simulate_slc(r, rng)) for _ in range(n)])


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_views_keep_shape_are_reproducible_and_off_is_identity() -> None:
    x = _batch()
    views = SARViews()
    a, b = views.apply(x, _gen(1)), views.apply(x, _gen(1))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b)
    assert not torch.equal(a, views.apply(x, _gen(2)))
    assert torch.equal(SARViews(**OFF).apply(x, _gen(1)), x)
    with pytest.raises(ValueError, match="crop"):
        parse_views({"crop": 0.0}, "remote_sensing.despeckle")
    with pytest.raises(TypeError, match="gain_db"):
        parse_views({"gain": 3.0}, "remote_sensing.despeckle")


def test_gain_is_a_constant_log_intensity_shift_within_its_range() -> None:
    x = _batch()
    y = SARViews(**{**OFF, "gain_db": 3.0}).apply(x, _gen(0))
    shift = torch.log(y[:, 0] ** 2 + y[:, 1] ** 2) - torch.log(x[:, 0] ** 2 + x[:, 1] ** 2)
    per_sample = shift.flatten(1)
    assert torch.allclose(per_sample, per_sample[:, :1].expand_as(per_sample), atol=1e-4)
    assert per_sample.abs().max() <= 3.0 * math.log(10) / 10 + 1e-4
    assert per_sample[:, 0].std() > 0.05  # drawn per sample
    phase = torch.atan2(y[:, 1], y[:, 0]) - torch.atan2(x[:, 1], x[:, 0])
    assert torch.allclose(torch.cos(phase), torch.ones_like(phase), atol=1e-4)  # phase kept


def test_flips_and_rotations_move_pixels_and_keep_their_values() -> None:
    x = _batch()
    y = SARViews(**{**OFF, "flip": 0.5, "rotate": 0.5}).apply(x, _gen(3))
    moved = 0
    for xi, yi in zip(x, y):
        assert torch.equal(torch.sort(xi.flatten(1)).values, torch.sort(yi.flatten(1)).values)
        moved += int(not torch.equal(xi, yi))
    assert moved >= 3


def test_crop_replicates_samples_and_keeps_the_single_look_law() -> None:
    x = _batch(n=64, size=32)
    y = SARViews(**{**OFF, "crop": 0.5}).apply(x, _gen(4))
    for xi, yi in zip(x, y):
        original = set(map(tuple, xi.flatten(1).T.tolist()))
        assert set(map(tuple, yi.flatten(1).T.tolist())) <= original  # no new sample
    # nearest-neighbour replication: intensity / mean stays exponential (CV 1), where
    # bilinear interpolation of complex samples would have lowered it
    ix, iy = (x**2).sum(1), (y**2).sum(1)
    cv = float(iy.std() / iy.mean())
    assert abs(cv - float(ix.std() / ix.mean())) < 0.15
    assert not torch.equal(x, y)


def test_patch_encoder_embeds_and_is_phase_blind() -> None:
    torch.manual_seed(0)
    enc = SARPatchCNN(width=4, stages=3).eval()
    x = _batch(size=16)
    e = enc.embed(x)
    assert e.shape == (6, enc.embed_dim) == (6, 16)
    stages = enc.stages(x)
    assert [s.shape[1] for s in stages] == [4, 8, 16] and torch.equal(stages[-1], e)
    rotated_phase = torch.stack([x[:, 1], -x[:, 0]], 1)  # z * (-i): same intensity
    assert torch.allclose(enc.embed(rotated_phase), e, atol=1e-5)


@pytest.mark.parametrize("pretext", ["core.simclr", "core.vicreg"])
def test_core_objective_trains_on_sar_patches_through_the_runner(
    tmp_path: Path, pretext: str
) -> None:
    reg = Registry(plugins=["remote_sensing"], strict=True)
    reg.load()
    heads = {"proj_hidden_dim": 32, "proj_out_dim": 16}
    exp = Experiment(
        name="sar-views",
        dataset=Component("remote_sensing.despeckle", {**TINY, "real_scenes": False}),
        encoder=Component("remote_sensing.patch_cnn", {"width": 8, "stages": 2}),
        pretext=Component(pretext, heads),
        training={"steps": 30, "batch_size": 16, "lr": 3e-3, "log_every": 1},
        evaluators=[],
    )
    out = run_experiment(exp, tmp_path / "run", reg)
    assert out["train"]["steps"] == 30 and math.isfinite(out["train"]["final_loss"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text(
        ).splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 30
    assert np.mean(losses[-5:]) < np.mean(losses[:5])  # it learns to match views
    assert (tmp_path / "run" / "encoder.safetensors").is_file()
