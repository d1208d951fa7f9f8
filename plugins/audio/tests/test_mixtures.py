"""``audio.mixtures``: multi-label event mixtures, their targets, and mAP through the runner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from selfsup.api import Component, Experiment, run_experiment
from selfsup_audio.datasets.mixtures import CLASSES, SAMPLE_RATE, build, synth_event, synthesise
from selfsup_audio.datasets.mixtures import MixturesConfig as Config

SMALL = {"n_clips": 160, "n_mels": 32}


def _peak_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()])


def test_events_follow_their_recipes() -> None:
    rng = np.random.default_rng(0)
    n = SAMPLE_RATE // 2
    tone = synth_event("tone", n, rng)
    assert 300 <= _peak_hz(tone) <= 3000 and np.abs(tone).max() == pytest.approx(1.0)
    up, down = (synth_event(k, n, np.random.default_rng(1)) for k in ("chirp_up", "chirp_down"))
    half = n // 2  # an upward sweep is lower in its first half than in its second
    assert _peak_hz(up[:half]) < _peak_hz(up[half:])
    assert _peak_hz(down[:half]) > _peak_hz(down[half:])
    thump = synth_event("thump", n, rng)
    assert _peak_hz(thump) < 200
    with pytest.raises(ValueError, match="unknown event class 'siren'"):
        synth_event("siren", n, rng)


def test_clips_are_multi_hot_mixtures_and_seeded() -> None:
    config = Config(n_clips=200, max_events=3)
    waves, targets = synthesise(config)
    assert waves.shape == (200, SAMPLE_RATE) and targets.shape == (200, len(CLASSES))
    per_clip = targets.sum(1)
    assert per_clip.min() == 1 and per_clip.max() == 3 and 1.6 < per_clip.mean() < 2.4
    assert (targets.sum(0) > 20).all()  # every class occurs
    assert np.abs(waves).max() <= 0.9 + 1e-6 and np.isfinite(waves).all()
    again, _ = synthesise(config)
    other, _ = synthesise(Config(n_clips=200, seed=1))
    assert np.array_equal(waves, again) and not np.array_equal(waves, other)


def test_dataset_is_multilabel_with_disjoint_splits() -> None:
    ds = build(**SMALL)
    assert ds.task.kind == "multilabel" and ds.task.n_classes == len(CLASSES)
    idx = [set(ds.split_indices(s).tolist()) for s in ("train", "val", "test")]
    assert not (idx[0] & idx[1] or idx[0] & idx[2] or idx[1] & idx[2])
    assert sum(map(len, idx)) == SMALL["n_clips"]
    x, y = ds.labelled_split("test")[0]
    assert x.shape == (32, 101) and y.dtype == torch.float32 and y.sum() >= 1
    with pytest.raises(ValueError, match=r"option max_events must be in \[1, 8\]"):
        build(max_events=9)


def test_linear_probe_scores_map_above_the_label_prevalence(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the events' spectra separate them: a probe on a random-init CNN's embeddings
    # ranks clips with an event above those without, far above the ~0.25 prevalence
    exp = Experiment(name="tagging", dataset=Component("audio.mixtures", dict(SMALL)),
                     encoder=Component("audio.cnn", {"width": 8, "embed_dim": 32}),
                     pretext=None, training={"steps": 1},
                     evaluators=[Component("core.linear_probe", {"label_fractions": [1.0]})],
                     evaluation={"seeds": [0]})
    metrics = run_experiment(exp, tmp_path)["metrics"]
    assert metrics["linear_probe.map"] > 0.5
