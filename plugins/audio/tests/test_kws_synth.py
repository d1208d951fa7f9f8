"""The synthesised keyword-spotting set: synthesis, cache, splits, noisy condition."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from selfsup_audio.datasets.kws_synth import KWSConfig, build, choose_voices, parse_options
from selfsup_audio.io.espeak import synthesise

from .conftest import TINY_KWS


def test_synthesis_is_deterministic_and_not_silent() -> None:
    jobs = [{"text": w, "accent": a, "variant": v, "rate": 175, "pitch": 50}
            for w in ("yes", "seven") for a, v in (("en-us", "m3"), ("en-gb-scotland", "klatt2"))]
    first, rate = synthesise(jobs)
    again, _ = synthesise(jobs)
    assert rate == 22050
    for a, b in zip(first, again):
        assert a.dtype == np.int16 and np.array_equal(a, b)
        assert 0.2 * rate < len(a) < 1.5 * rate and np.abs(a).max() > 3000


def test_cache_is_reused_and_rebuilt_on_a_settings_change(kws_cache: Path) -> None:
    first = build(**TINY_KWS, cache_dir=str(kws_cache))  # maybe rendered by another test
    again = build(**TINY_KWS, cache_dir=str(kws_cache))
    assert not again.rendered and again.cache_folder == first.cache_folder
    clips = np.load(again.cache_folder / "clips.npy")
    assert clips.dtype == np.int16 and clips.shape == (80, 16000)
    assert (again.cache_folder / "manifest.json").is_file()
    assert (again.cache_folder / "fingerprint").is_file()
    assert np.abs(clips).max(axis=1).min() > 1000  # every clip speaks
    changed = build(**{**TINY_KWS, "n_speakers": 3}, cache_dir=str(kws_cache))
    assert changed.rendered and changed.cache_folder != again.cache_folder
    assert len(changed.manifest) == 30


def test_a_damaged_cache_is_rendered_again(kws_cache: Path, tmp_path: Path) -> None:
    settings = {**TINY_KWS, "n_speakers": 3, "cache_dir": str(tmp_path)}
    folder = build(**settings).cache_folder
    (folder / "fingerprint").write_text("stale")
    assert build(**settings).rendered


def test_splits_are_speaker_disjoint(kws_cache: Path) -> None:
    ds = build(**TINY_KWS, cache_dir=str(kws_cache))
    train, val, test = (ds.speakers(s) for s in ("train", "val", "test"))
    assert train and val and test
    assert not (train & val) and not (train & test) and not (val & test)
    assert ds.x.shape[1:] == (64, 98) and ds.task.n_classes == 10
    assert sorted(np.concatenate([ds.split_indices(s) for s in ds.splits]).tolist()) == list(
        range(80))


def test_accent_split_holds_accents_out(kws_cache: Path) -> None:
    ds = build(**{**TINY_KWS, "n_speakers": 10}, split="accent", cache_dir=str(kws_cache))
    accents = {s: {sp.split("+")[0] for sp in ds.speakers(s)} for s in ds.splits}
    assert accents["test"] <= {"en-gb-scotland", "en-029"} and accents["test"]
    assert not accents["test"] & (accents["train"] | accents["val"])


def test_noisy_condition_changes_every_clip_reproducibly(kws_cache: Path) -> None:
    clean = build(**TINY_KWS, cache_dir=str(kws_cache))
    noisy = build(**TINY_KWS, condition="noisy", cache_dir=str(kws_cache))
    again = build(**TINY_KWS, condition="noisy", cache_dir=str(kws_cache))
    assert np.array_equal(noisy.x.numpy(), again.x.numpy())
    diff = (noisy.x - clean.x).abs().flatten(1).max(dim=1).values
    assert (diff > 0.1).all()
    # noise raises the quietest parts of the spectrogram (the silence around the word)
    assert float(noisy.x.amin()) > float(clean.x.amin())


def test_voices_are_drawn_from_the_accent_variant_grid() -> None:
    config = parse_options(KWSConfig, {"n_speakers": 20, "voices_per_speaker": 3}, "t")
    voices = choose_voices(config)
    assert len(voices) == 60 and len({v["speaker"] for v in voices}) == 20
    assert len({(v["speaker"], v["rate"], v["pitch"]) for v in voices}) == 60
