"""Audio / score snippet pairs from music21's bundled corpus (``audio.score_pairs``).

The scores are real: the first ``n_pieces`` Bach chorales in 4/4 of the corpus that
the ``music21`` wheel ships (``music21.corpus.getComposer("bach")``, sorted by file
name; works offline). Each piece is parsed once, its notes (MIDI pitch, onset and
length in quarter notes, every part flattened together; ties are not merged, so a
tied note sounds again) are cached in ``cache_dir`` (a piece takes about 0.35 s to
parse), and the cache is keyed by the piece list and this module's version.

A sample is a pair of views of one window of ``window_beats`` quarter notes
(default 4, one 4/4 bar; windows start at beat 0 of the piece, so a pickup shifts
them against the bar lines):

- ``"audio"``: log-mel ``[n_mels, frames]`` (the plugin's ``features.log_mel``,
  25 ms windows, 10 ms hop) of the window cut from the whole piece rendered at
  ``tempo`` quarter notes per minute and 16 kHz by :func:`synthesise`, a numpy
  additive synthesiser: each note is a sum of 6 harmonics of its equal-tempered
  MIDI frequency (A4 = 440 Hz) with amplitudes ``1/k`` (harmonics above 7 kHz
  dropped), all in cosine phase, under a linear ADSR envelope (attack 10 ms, decay
  50 ms to a sustain of 0.6, release 80 ms after the note's written end); notes are
  summed at equal loudness and the piece is scaled to a peak of 0.5. Notes that
  start before a window and sound into it are heard in it, as in a recording.
- ``"score"``: a piano-roll image ``[pitches, steps]`` of the same window: one row
  per MIDI pitch from ``pitch_low`` (row 0) up to ``pitch_high`` (exclusive), one
  column per ``1/steps_per_beat`` quarter note; 1.0 where a note starts, 0.5 where
  it sustains, 0 elsewhere (so repeated notes stay apart). Engraved notation
  cannot be rendered offline here (music21 needs MuseScore or LilyPond for
  images), hence the piano roll; notes outside the pitch range are left out
  (:attr:`ScorePairs.notes_out_of_range` counts them).

Splits are by piece (``val_pieces``, ``test_pieces`` drawn with ``seed``): test
pieces are never seen in pretraining. Training windows overlap (``hop_beats``);
val/test windows do not (hop = ``window_beats``), so no two test candidates share
a beat. Windows without a note are skipped. There are no labels (task ``none``):
the evaluator ``audio.retrieval`` matches each test audio snippet to its score
snippet and back. Chorales repeat phrases, so a test piece can hold two windows
with the same notes: the retrieval metrics count such a twin as a wrong answer.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from selfsup.api import (
    SSLDataset,
    TaskSpec,
    non_negative_int,
    option,
    optional,
    parse_options,
    positive,
    positive_int,
)

from .. import features
from .kws_synth import default_cache_dir

NAME = "audio.score_pairs"
MODALITY = "audio.score_pair"
SAMPLE_RATE = 16000
#: bump when what the note cache holds changes
CACHE_VERSION = 1
HARMONICS = 6
ATTACK, DECAY, SUSTAIN, RELEASE = 0.010, 0.050, 0.6, 0.080


@dataclass(frozen=True)
class ScorePairsConfig:
    """Options of ``audio.score_pairs``."""

    n_pieces: int = option(36, positive_int, "Bach chorales in 4/4, first by file name")
    val_pieces: int = option(4, positive_int, "pieces held out for val")
    test_pieces: int = option(8, positive_int, "pieces held out for test")
    window_beats: int = option(4, positive_int, "quarter notes per snippet")
    hop_beats: int = option(2, positive_int, "quarter notes between training windows")
    tempo: float = option(120.0, positive, "quarter notes per minute of the rendering")
    n_mels: int = option(64, positive_int, "mel bins of the audio side")
    pitch_low: int = option(36, non_negative_int, "lowest MIDI pitch of the piano roll")
    pitch_high: int = option(84, positive_int, "MIDI pitch above the piano roll's top row")
    steps_per_beat: int = option(8, positive_int, "piano-roll columns per quarter note")
    seed: int = option(0, non_negative_int, "which pieces go to val and test")
    cache_dir: str | None = option(None, optional(lambda x: None if isinstance(x, str)
                                                  else "be a folder path"),
                                   "note cache (default $SELFSUP_AUDIO_CACHE or "
                                   "~/.cache/selfsup-audio)")


# -- the corpus ----------------------------------------------------------------------------

def chorale_paths() -> list[Path]:
    """The Bach files music21's corpus ships, sorted by name (imports music21)."""
    try:
        from music21 import corpus
    except ImportError as err:  # an optional extra: say how to get it
        raise ImportError("audio.score_pairs reads music21's corpus: pip install "
                          "'selfsup-audio[music]'") from err
    return sorted((Path(p) for p in corpus.getComposer("bach")), key=lambda p: p.name)


def parse_notes(path: Path) -> np.ndarray | None:
    """``[N, 3]`` (midi, onset, length in quarter notes) of a 4/4 piece; None otherwise."""
    from music21 import converter, meter

    score = converter.parse(str(path))
    signatures = list(score.recurse().getElementsByClass(meter.TimeSignature))
    if not signatures or any(s.ratioString != "4/4" for s in signatures):
        return None
    rows = [(p.midi, float(n.offset), float(n.quarterLength))
            for n in score.flatten().notes if float(n.quarterLength) > 0 for p in n.pitches]
    return np.asarray(rows, dtype=np.float64) if rows else None


def load_notes(n_pieces: int, cache_dir: Path) -> tuple[list[str], list[np.ndarray], bool]:
    """The first ``n_pieces`` 4/4 chorales' notes, parsed once into the cache.

    Returns (piece names, note arrays, whether they were parsed now).
    """
    key = hashlib.sha256(f"v{CACHE_VERSION}:{n_pieces}".encode()).hexdigest()[:16]
    folder = cache_dir / f"scores-{key}"
    stamp = folder / "pieces.json"
    if stamp.exists():
        names = json.loads(stamp.read_text())
        with np.load(folder / "notes.npz") as data:
            return names, [data[f"p{i}"] for i in range(len(names))], False
    names, notes = [], []
    for path in chorale_paths():
        got = parse_notes(path)
        if got is not None:
            names.append(path.stem)
            notes.append(got)
        if len(names) == n_pieces:
            break
    if len(names) < n_pieces:
        raise ValueError(f"n_pieces={n_pieces}: music21's corpus has only {len(names)} Bach "
                         "pieces in 4/4")
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = {f"p{i}": a for i, a in enumerate(notes)}
    np.savez(folder / "notes.npz", **arrays)
    stamp.write_text(json.dumps(names))  # written last: a cache without it is parsed again
    return names, notes, True


# -- rendering -----------------------------------------------------------------------------

def midi_hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def adsr(n_on: int, sample_rate: int) -> np.ndarray:
    """The envelope of a note held ``n_on`` samples, its release appended (see module)."""
    a, d, r = (max(1, int(x * sample_rate)) for x in (ATTACK, DECAY, RELEASE))
    held = np.concatenate([np.linspace(0, 1, a, endpoint=False),
                           np.linspace(1, SUSTAIN, d, endpoint=False),
                           np.full(max(0, n_on - a - d), SUSTAIN)])[:n_on]
    end = held[-1] if len(held) else 0.0
    return np.concatenate([held, np.linspace(end, 0, r)])


def synthesise(notes: np.ndarray, tempo: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A piece's waveform (float32) from ``[N, 3]`` (midi, onset, length) notes."""
    spb = 60.0 / tempo
    total = float((notes[:, 1] + notes[:, 2]).max()) * spb + RELEASE + 0.01
    out = np.zeros(int(total * sample_rate) + 1)
    longest = int(float(notes[:, 2].max()) * spb * sample_rate) + 2 * int(RELEASE * sample_rate)
    t = np.arange(longest) / sample_rate
    tones: dict[float, np.ndarray] = {}  # each pitch's harmonic stack, computed once
    for midi, onset, length in notes:
        start = round(onset * spb * sample_rate)
        env = adsr(max(1, round(length * spb * sample_rate)), sample_rate)
        if midi not in tones:
            f0 = midi_hz(midi)
            tones[midi] = sum((np.cos(2 * np.pi * k * f0 * t) / k
                               for k in range(1, HARMONICS + 1) if k * f0 < 7000.0),
                              np.zeros_like(t))
        out[start:start + len(env)] += env * tones[midi][:len(env)]
    peak = np.abs(out).max()
    return (0.5 * out / peak if peak > 0 else out).astype(np.float32)


def piano_roll(notes: np.ndarray, start: float, beats: int, config: ScorePairsConfig
               ) -> tuple[np.ndarray, int]:
    """The window's piano roll ``[pitches, steps]`` and the notes left out of range."""
    steps = beats * config.steps_per_beat
    roll = np.zeros((config.pitch_high - config.pitch_low, steps), dtype=np.float32)
    dropped = 0
    for midi, onset, length in notes:
        a = (onset - start) * config.steps_per_beat
        b = (onset + length - start) * config.steps_per_beat
        if b <= 0 or a >= steps:
            continue
        row = int(midi) - config.pitch_low
        if not 0 <= row < roll.shape[0]:
            dropped += 1
            continue
        lo, hi = max(0, round(a)), min(steps, max(round(b), round(a) + 1))
        roll[row, lo:hi] = np.maximum(roll[row, lo:hi], 0.5)
        if a >= 0:
            roll[row, round(a)] = 1.0
    return roll, dropped


# -- the dataset ---------------------------------------------------------------------------

class _Pairs(Dataset[dict[str, torch.Tensor]]):
    def __init__(self, audio: torch.Tensor, score: torch.Tensor) -> None:
        self.audio, self.score = audio, score

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"audio": self.audio[i], "score": self.score[i]}


class ScorePairs(SSLDataset):
    """Audio/piano-roll snippet pairs of Bach chorales, split by piece (see the module)."""

    task = TaskSpec("none")
    splits = ("train", "val", "test")

    def __init__(self, config: ScorePairsConfig) -> None:
        if config.pitch_high <= config.pitch_low:
            raise ValueError(f"pitch_high={config.pitch_high} must exceed "
                             f"pitch_low={config.pitch_low}")
        if config.val_pieces + config.test_pieces >= config.n_pieces:
            raise ValueError(f"val_pieces + test_pieces = {config.val_pieces + config.test_pieces}"
                             f" leaves no training piece of n_pieces={config.n_pieces}")
        self.config = config
        start = time.perf_counter()
        cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        self.pieces, notes, self.parsed = load_notes(config.n_pieces, cache)
        order = np.random.default_rng(config.seed).permutation(config.n_pieces)
        test = order[:config.test_pieces]
        val = order[config.test_pieces:config.test_pieces + config.val_pieces]
        self.split_pieces = {"test": sorted(int(i) for i in test),
                             "val": sorted(int(i) for i in val),
                             "train": sorted(int(i) for i in order[len(test) + len(val):])}
        self.notes_out_of_range = 0
        self._data: dict[str, _Pairs] = {}
        self.window_piece: dict[str, np.ndarray] = {}
        settings = {k: v for k, v in vars(config).items() if k != "cache_dir"}
        key = hashlib.sha256(f"v{CACHE_VERSION}:{sorted(settings.items())}".encode())
        pairs_file = cache / f"score-pairs-{key.hexdigest()[:16]}.npz"
        self.rendered = not pairs_file.exists()
        if not self.rendered:  # rendering and features take ~10 s for 36 pieces
            with np.load(pairs_file) as data:
                self.notes_out_of_range = int(data["out_of_range"])
                for split in self.split_pieces:
                    self._data[split] = _Pairs(torch.from_numpy(data[f"{split}_audio"]),
                                               torch.from_numpy(data[f"{split}_score"]))
                    self.window_piece[split] = data[f"{split}_piece"]
        else:
            for split, pieces in self.split_pieces.items():
                hop = config.hop_beats if split == "train" else config.window_beats
                self._data[split], self.window_piece[split] = self._windows(
                    [notes[i] for i in pieces], pieces, hop)
            tmp = pairs_file.with_suffix(".tmp.npz")
            arrays: dict[str, Any] = {
                f"{k}_{f}": v for k, d in self._data.items() for f, v in
                (("audio", d.audio.numpy()), ("score", d.score.numpy()),
                 ("piece", self.window_piece[k]))}
            np.savez(tmp, out_of_range=np.int64(self.notes_out_of_range), **arrays)
            tmp.replace(pairs_file)  # atomic: a half-written cache is never read
        self.build_seconds = time.perf_counter() - start
        fit = self._data["train"].audio
        self.feature_mean = float(fit.mean())
        self.feature_std = float(fit.std())

    def _windows(self, notes: list[np.ndarray], pieces: list[int], hop: int
                 ) -> tuple[_Pairs, np.ndarray]:
        c = self.config
        per_beat = round(60.0 / c.tempo * SAMPLE_RATE)
        length = c.window_beats * per_beat
        waves, rolls, owner = [], [], []
        for piece, piece_notes in zip(pieces, notes, strict=True):
            wave = synthesise(piece_notes, c.tempo)
            end = float((piece_notes[:, 1] + piece_notes[:, 2]).max())
            for beat in range(0, int(end) - c.window_beats + 1, hop):
                roll, dropped = piano_roll(piece_notes, float(beat), c.window_beats, c)
                if not roll.any():
                    continue
                self.notes_out_of_range += dropped
                clip = wave[beat * per_beat:beat * per_beat + length]
                waves.append(np.pad(clip, (0, length - len(clip))))
                rolls.append(roll)
                owner.append(piece)
        mel = features.log_mel(torch.from_numpy(np.stack(waves)), SAMPLE_RATE, c.n_mels,
                               n_fft=int(0.025 * SAMPLE_RATE),
                               hop_length=int(0.01 * SAMPLE_RATE))
        return _Pairs(mel, torch.from_numpy(np.stack(rolls))), np.asarray(owner)

    def pretrain_set(self) -> _Pairs:
        return self._data["train"]

    def pairs(self, split: str) -> _Pairs:
        """Every (audio, score) pair of a split, in order; ``window_piece[split]`` says
        which piece (index into :attr:`pieces`) each comes from."""
        if split not in self._data:
            raise ValueError(f"{NAME} has splits {list(self._data)}, not {split!r}")
        return self._data[split]

    def batch_rows(self, batch: Any) -> int:
        return int(batch["audio"].shape[0])

    def input_features(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return batch["audio"].flatten(1)

    def fingerprint(self) -> str:
        h = hashlib.sha256(f"{NAME}:{self.config}".encode())
        for split in ("train", "val", "test"):
            d = self._data[split]
            h.update(d.audio.numpy().tobytes()[:65536])
            h.update(d.score.numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {"pieces": {k: len(v) for k, v in self.split_pieces.items()},
                "pairs": {k: len(v) for k, v in self._data.items()},
                "audio_shape": list(self._data["train"].audio.shape[1:]),
                "score_shape": list(self._data["train"].score.shape[1:]),
                "notes_out_of_range": self.notes_out_of_range,
                "build_seconds": round(self.build_seconds, 2), "parsed_now": self.parsed,
                "rendered_now": self.rendered}


def build(views: dict[str, Any] | None = None, **options: Any) -> ScorePairs:
    """``audio.score_pairs`` factory; ``options`` are :class:`ScorePairsConfig` fields."""
    return ScorePairs(parse_options(ScorePairsConfig, options, NAME))
