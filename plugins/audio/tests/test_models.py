"""Views, encoders, SSAST and the feature baselines."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfsup.api import BaselineContext, EvalContext, Registry, get_registry
from selfsup_audio.datasets.kws_synth import build
from selfsup_audio.datasets.views import AudioViews, apply_views, crop_resize
from selfsup_audio.encoders import build_ast
from selfsup_audio.pretexts.ssast import build as build_ssast
from selfsup_audio.pretexts.ssast import cluster_mask

from .conftest import TINY_KWS


@pytest.fixture(scope="module")
def dataset(kws_cache: Path):  # type: ignore[no-untyped-def]
    return build(**TINY_KWS, cache_dir=str(kws_cache))


def test_views_come_from_the_generator_and_keep_shape(dataset) -> None:  # type: ignore[no-untyped-def]
    batch = dataset.x[:8]
    a = dataset.augment(batch, torch.Generator().manual_seed(3))
    b = dataset.augment(batch, torch.Generator().manual_seed(3))
    c = dataset.augment(batch, torch.Generator().manual_seed(4))
    assert a.shape == batch.shape and a.dtype == batch.dtype and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_each_view_can_be_switched_off(dataset) -> None:  # type: ignore[no-untyped-def]
    batch = dataset.x[:4]
    off = AudioViews(crop_min=1.0, shift_frames=0, gain_db=0.0, noise_prob=0.0, freq_masks=0,
                     time_masks=0)
    assert torch.equal(apply_views(batch, off, torch.Generator(), dataset.noise), batch)
    gain = AudioViews(crop_min=1.0, shift_frames=0, gain_db=6.0, noise_prob=0.0, freq_masks=0,
                      time_masks=0)
    delta = apply_views(batch, gain, torch.Generator().manual_seed(0), dataset.noise) - batch
    assert torch.allclose(delta, delta[:, :1, :1].expand_as(delta), atol=1e-5)
    assert delta.abs().max() <= 6.0 * 0.2303 + 1e-4  # 6 dB in natural-log power
    masks = AudioViews(crop_min=1.0, shift_frames=0, gain_db=0.0, noise_prob=0.0,
                       freq_masks=1, freq_width=8, time_masks=0)
    out = apply_views(batch, masks, torch.Generator().manual_seed(1), dataset.noise)
    changed_rows = (out != batch).any(dim=2).sum(dim=1)
    assert (changed_rows <= 8).all()


def test_crop_resize_of_the_whole_clip_is_the_identity() -> None:
    x = torch.randn(2, 5, 20)
    out = crop_resize(x, torch.zeros(2), torch.full((2,), 20.0))
    assert torch.allclose(out, x, atol=1e-6)


def test_ast_frame_tokens_and_patchify(dataset) -> None:  # type: ignore[no-untyped-def]
    enc = build_ast(dataset, tokenization="frame", embed_dim=16, depth=1, n_heads=2)
    assert enc.grid == (1, 49) and enc.patch == (64, 2)
    batch = dataset.x[:3]
    assert enc.tokens(batch).states.shape == (3, 49, 16)
    assert enc.patchify(batch).shape == (3, 49, 128)
    patch = build_ast(dataset, embed_dim=16, depth=1, n_heads=2)
    assert patch.grid == (4, 6) and patch.patchify(batch).shape == (3, 24, 256)


def test_ssast_masks_clusters_and_trains_both_tokenizations(dataset) -> None:  # type: ignore[no-untyped-def]
    hide = cluster_mask((4, 6), 12, torch.Generator().manual_seed(0))
    assert int(hide.sum()) == 12
    batch = dataset.x[:4]
    for tok in ("patch", "frame"):
        enc = build_ast(dataset, tokenization=tok, embed_dim=16, depth=1, n_heads=2)
        task = build_ssast(enc, dataset, mask_ratio=0.5)
        assert task.cluster == (tok == "patch")
        out = task(batch, torch.Generator().manual_seed(0))
        again = task(batch, torch.Generator().manual_seed(0))
        assert torch.equal(out["loss"], again["loss"])
        assert torch.isfinite(out["loss"]) and 0 <= float(out["accuracy"]) <= 1
        out["loss"].backward()
        assert enc.mask_embed.grad is not None and enc.mask_embed.grad.abs().sum() > 0


def test_ssast_refuses_an_encoder_without_patches(dataset) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match="patchify"):
        build_ssast(torch.nn.Linear(2, 2), dataset)


def test_feature_baselines(dataset) -> None:  # type: ignore[no-untyped-def]
    registry: Registry = get_registry()
    ctx = BaselineContext(encoder_factory=torch.nn.Identity, eval=EvalContext(seeds=(0,)))
    batch = dataset.x[:5]
    stats = registry.get("baseline", "audio.logmel_stats").build(dataset, ctx)
    mfcc = registry.get("baseline", "audio.mfcc").build(dataset, ctx, n_mfcc=13)
    assert stats.embed(batch).shape == (5, 256) and mfcc.embed(batch).shape == (5, 78)
    assert not list(stats.parameters()) and torch.isfinite(mfcc(batch)).all()
    with pytest.raises(ValueError, match="n_mfcc=99 exceeds"):
        registry.get("baseline", "audio.mfcc").build(dataset, ctx, n_mfcc=99)
