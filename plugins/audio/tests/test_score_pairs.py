"""Audio-score retrieval on real music21 chorales: data, synthesiser, pretext, metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from selfsup.api import EvalContext
from selfsup_audio.datasets import score_pairs
from selfsup_audio.datasets.score_pairs import (
    SAMPLE_RATE,
    ScorePairs,
    ScorePairsConfig,
    piano_roll,
    synthesise,
)
from selfsup_audio.encoders import ScoreAudioPair, build_score_pair
from selfsup_audio.evaluators import retrieval
from selfsup_audio.evaluators.retrieval import ranks, retrieval_metrics
from selfsup_audio.pretexts.score_contrast import build as build_contrast

from .conftest import TINY_SCORES


@pytest.fixture(scope="module")
def pairs(score_cache: Path) -> ScorePairs:
    return score_pairs.build(**TINY_SCORES, cache_dir=str(score_cache))


def test_splits_hold_out_whole_pieces(pairs: ScorePairs) -> None:
    pieces = pairs.split_pieces
    assert sorted(pieces["train"] + pieces["val"] + pieces["test"]) == list(range(5))
    assert len(pieces["test"]) == 1 and len(pieces["val"]) == 1
    for split in ("train", "val", "test"):
        assert set(pairs.window_piece[split]) == set(pieces[split])
        p = pairs.pairs(split)
        assert p.audio.shape[1:] == (64, 201) and p.score.shape[1:] == (48, 32)
        assert len(p.audio) == len(p.score) == len(pairs.window_piece[split])
    assert all(name.startswith("bwv") for name in pairs.pieces)
    # training windows overlap by half (hop 2 of 4 beats): the second half of one
    # window's roll is the first half of the next's
    train = pairs.pairs("train").score
    assert torch.equal(train[0][:, 16:], train[1][:, :16])
    test = pairs.pairs("test").score
    assert not torch.equal(test[0][:, 16:], test[1][:, :16])


def test_second_build_reads_the_caches(pairs: ScorePairs, score_cache: Path) -> None:
    again = score_pairs.build(**TINY_SCORES, cache_dir=str(score_cache))
    assert not again.parsed and not again.rendered
    assert again.fingerprint() == pairs.fingerprint()
    other = score_pairs.build(**TINY_SCORES, tempo=90.0, cache_dir=str(score_cache))
    assert not other.parsed and other.rendered  # same notes, a new rendering
    assert other.fingerprint() != pairs.fingerprint()


def test_audio_and_score_of_a_pair_agree(pairs: ScorePairs) -> None:
    """Higher notes in a window's roll, brighter spectrum in its audio: across windows the
    spectral centroid (mel bin) follows the roll's mean sounding pitch."""
    p = pairs.pairs("train")
    spectrum = p.audio.exp().mean(dim=2)  # [N, mels]
    centroid = (spectrum * torch.arange(spectrum.shape[1])).sum(1) / spectrum.sum(1)
    sounding = (p.score > 0).float().sum(dim=2)  # [N, pitches]
    pitch = (sounding * torch.arange(sounding.shape[1])).sum(1) / sounding.sum(1)

    def r(x: torch.Tensor, y: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([x, y]))[0, 1])

    assert r(centroid, pitch) > 0.8
    assert abs(r(centroid, pitch.roll(7))) < 0.5  # another window's roll does not fit


def test_synthesiser_is_the_documented_one() -> None:
    notes = np.array([[69.0, 0.0, 1.0]])  # A4 for one beat at 120 bpm: 0.5 s
    wave = synthesise(notes, tempo=120.0)
    assert abs(np.abs(wave).max() - 0.5) < 1e-6
    assert len(wave) == int((0.5 + 0.08 + 0.01) * SAMPLE_RATE) + 1
    spectrum = np.abs(np.fft.rfft(wave[:8000]))
    freqs = np.fft.rfftfreq(8000, 1 / SAMPLE_RATE)
    assert abs(freqs[spectrum.argmax()] - 440.0) < 3.0
    peaks = [spectrum[np.abs(freqs - k * 440.0).argmin()] for k in (1, 2, 3)]
    assert peaks[0] > peaks[1] > peaks[2]  # harmonics at 1/k
    assert np.abs(wave[int(0.59 * SAMPLE_RATE):]).max() < 1e-3  # released


def test_piano_roll_marks_onsets_and_sustains() -> None:
    config = ScorePairsConfig()
    notes = np.array([[60.0, 0.5, 1.0], [72.0, -1.0, 2.0], [30.0, 1.0, 1.0],
                      [64.0, 9.0, 1.0]])
    roll, dropped = piano_roll(notes, 0.0, 4, config)
    assert dropped == 1  # MIDI 30 is below pitch_low
    c4 = roll[60 - 36]
    assert c4[4] == 1.0 and (c4[5:12] == 0.5).all() and c4[:4].sum() == 0 and c4[12:].sum() == 0
    c5 = roll[72 - 36]  # began a beat before the window: sustain only, no onset
    assert (c5[:8] == 0.5).all() and c5[8:].sum() == 0
    assert roll[64 - 36].sum() == 0


def test_retrieval_metrics_on_known_ranks() -> None:
    # candidates are unit axes; query i scores its own candidate at position rank_i
    n = 12
    candidates = torch.eye(n)
    wanted = [1, 2, 1, 3, 11, 1, 5, 12, 1, 10, 4, 1]
    queries = torch.zeros(n, n)
    for i, r in enumerate(wanted):
        others = [j for j in range(n) if j != i]
        ahead = others[:r - 1]  # these candidates score above the pair
        queries[i, ahead] = 2.0
        queries[i, i] = 1.0
        queries[i, others[r - 1:]] = torch.linspace(0.5, 0.1, n - r)
    sim = F.normalize(queries, dim=1) @ candidates.T
    assert ranks(sim).tolist() == wanted
    m = retrieval_metrics(queries, candidates, "q")
    assert m["q_r1"] == pytest.approx(5 / 12)
    assert m["q_r10"] == pytest.approx(10 / 12)
    assert m["q_mrr"] == pytest.approx(float(np.mean([1 / r for r in wanted])))


def test_ties_count_against_the_query() -> None:
    same = torch.ones(4, 3)
    m = retrieval_metrics(same, same, "t")
    assert m["t_r1"] == 0.0 and m["t_mrr"] == pytest.approx(0.25)
    with pytest.raises(ValueError, match="must both be"):
        retrieval_metrics(torch.ones(4, 3), torch.ones(5, 3), "t")


def test_symmetric_infonce_matches_its_definition(pairs: ScorePairs) -> None:
    torch.manual_seed(0)
    model = build_score_pair(pairs, audio_width=4, score_width=4, embed_dim=16)
    task = build_contrast(model, pairs, temperature=0.2)
    data = pairs.pretrain_set()
    batch = {"audio": data.audio[:8], "score": data.score[:8]}
    model.eval()
    out = task(batch, torch.Generator().manual_seed(0))
    a = F.normalize(model.embed(batch), dim=1)
    s = F.normalize(model.embed_score(batch), dim=1)
    target = torch.arange(8)
    expected = (F.cross_entropy(a @ s.T / 0.2, target)
                + F.cross_entropy(s @ a.T / 0.2, target)) / 2
    assert torch.allclose(out["loss"], expected)
    with pytest.raises(TypeError, match=r"audio\.score"):
        build_contrast(torch.nn.Linear(2, 2), pairs)


def test_contrast_training_makes_pairs_findable(pairs: ScorePairs) -> None:
    """80 steps on three real chorales: retrieval on them leaves chance behind."""
    torch.manual_seed(0)
    model = build_score_pair(pairs, audio_width=4, score_width=8, embed_dim=32)
    assert isinstance(model, ScoreAudioPair)
    evaluate = retrieval.build(split="train")
    ctx = EvalContext(batch_size=64)
    before = evaluate(model, pairs, ctx)
    task = build_contrast(model, pairs)
    opt = torch.optim.AdamW(task.parameters(), lr=3e-3)
    data = pairs.pretrain_set()
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        task.train()
        idx = torch.randint(len(data), (32,), generator=g)
        loss = task({"audio": data.audio[idx], "score": data.score[idx]}, g)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = evaluate(model, pairs, ctx)
    chance = after["retrieval.chance_mrr"]
    assert after["retrieval.n_candidates"] == len(data)
    assert before["retrieval.a2s_mrr"] < 2 * chance
    assert after["retrieval.a2s_mrr"] > 3 * chance and after["retrieval.s2a_mrr"] > 3 * chance
