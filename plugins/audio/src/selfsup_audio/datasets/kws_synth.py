"""Spoken keyword spotting synthesised offline with eSpeak NG (``audio.kws_synth``).

The words are the Speech Commands v2 vocabulary (Warden, "Speech Commands: A
Dataset for Limited-Vocabulary Speech Recognition", arXiv:1804.03209, 2018): 35
words, or its ten digits (``vocabulary="digits"``). Each is spoken by synthetic
voices: a *speaker* is an English accent of espeak-ng (8: US, British, Scottish,
received pronunciation, Caribbean, Lancastrian, West Midlands, New York) with a
voice variant (32 of espeak-ng's ``voices/!v``, the ones whose output is
reproducible: variants with breath noise are not), and each speaker speaks at
``voices_per_speaker`` settings of speed (140-210 words per minute) and pitch.
Clips are 1 s at 16 kHz: the synthesiser's 22,050 Hz output is resampled, its
silence trimmed, and the word centred (a word longer than 1 s is cut to its
middle second).

Generated once into a cache folder (``cache_dir``, default
``$SELFSUP_AUDIO_CACHE`` or ``~/.cache/selfsup-audio``) as ``clips.npy`` (int16
``[N, 16000]``), ``manifest.json`` (word, label, speaker, accent, variant, rate,
pitch of each clip) and ``fingerprint`` (a hash of every setting that changes the
audio, the synthesiser's data included): a folder per fingerprint, so changing a
setting renders a new cache and the same settings reuse it.

Splits are by *speaker*: no speaker of the test (or val) split is heard in
training, at any speed or pitch. ``split="accent"`` is harder: the speakers of the
held-out accents (``held_out_accents``) are the test split, so test accents are
never heard in training at all. ``condition="noisy"`` places each word at a random
offset in its second (up to ``shift_ms`` either way) and adds white or pink noise
at an SNR drawn uniformly from ``snr_db`` dB, seeded, to every split: where
invariance to shift and noise should pay. Pretraining uses the train split's
clips, without labels.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.api import (
    non_negative_int,
    one_of,
    option,
    optional,
    parse_options,
    positive_int,
)

from ..io.audio import resample
from .base import SpectrogramDataset
from .views import noise_waveforms, parse_views

NAME = "audio.kws_synth"
#: Speech Commands v2, the 35 words (Warden 2018)
SPEECH_COMMANDS_35 = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one",
    "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up", "visual", "wow",
    "yes", "zero",
)
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
VOCABULARIES = {"speech_commands35": SPEECH_COMMANDS_35, "digits": DIGITS}
ACCENTS = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
#: espeak-ng variants whose output is bit-for-bit reproducible (checked on 2026-11);
#: the breathy ones (f2, f3, f5, whisper, Alicia, ...) draw unseeded noise
VARIANTS = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f4", "klatt", "klatt2", "klatt3",
    "klatt4", "Andy", "Annie", "adam", "anika", "antonio", "benjamin", "caleb", "david",
    "edward", "grandma", "grandpa", "iven", "john", "linda", "max", "norbert", "quincy",
    "steph",
)
RATES = (140, 175, 210)
PITCHES = (30, 50, 70)
SAMPLE_RATE = 16000
#: bump when the rendering below changes what a cache holds
RENDER_VERSION = 1


def _snr_range(x: Any) -> str | None:
    ok = (isinstance(x, (list, tuple)) and len(x) == 2
          and all(isinstance(v, (int, float)) for v in x) and x[0] <= x[1])
    return None if ok else "be [low, high] in dB with low <= high"


def _accents(x: Any) -> str | None:
    if isinstance(x, (list, tuple)) and x and all(a in ACCENTS for a in x):
        return None
    return f"be a non-empty list of {list(ACCENTS)}"


@dataclass(frozen=True)
class KWSConfig:
    """Options of ``audio.kws_synth``."""

    vocabulary: str = option("speech_commands35", one_of(*VOCABULARIES),
                             "the 35 Speech Commands words, or the 10 digits")
    n_speakers: int = option(40, positive_int,
                             f"speakers (accent x variant) of the {len(ACCENTS) * len(VARIANTS)}")
    voices_per_speaker: int = option(2, positive_int, "speed/pitch settings per speaker")
    split: str = option("speaker", one_of("speaker", "accent"),
                        "speaker-disjoint splits, or test on held-out accents")
    held_out_accents: tuple[str, ...] = option(("en-gb-scotland", "en-029"), _accents,
                                               "the test accents of split='accent'")
    val_share: float = option(0.15, lambda x: None if isinstance(x, float) and 0 < x < 0.5
                              else "be in (0, 0.5)", "share of speakers in val")
    test_share: float = option(0.2, lambda x: None if isinstance(x, float) and 0 < x < 0.5
                               else "be in (0, 0.5)", "share of speakers in test (split=speaker)")
    condition: str = option("clean", one_of("clean", "noisy"),
                            "noisy: random shift and white/pink noise in every split")
    snr_db: tuple[float, float] = option((0.0, 20.0), _snr_range, "SNR range of 'noisy', dB")
    shift_ms: int = option(150, non_negative_int, "largest word shift of 'noisy', ms")
    features: str = option("fbank", one_of("fbank", "logmel"),
                           "Kaldi fbank (SSAST's input) or a torch.stft log-mel")
    n_mels: int = option(64, positive_int, "mel bins")
    seed: int = option(0, non_negative_int, "speakers, voices, splits and noise")
    cache_dir: str | None = option(None, optional(lambda x: None if isinstance(x, str)
                                                  else "be a path"),
                                   "cache folder (default $SELFSUP_AUDIO_CACHE or "
                                   "~/.cache/selfsup-audio)")


def default_cache_dir() -> Path:
    env = os.environ.get("SELFSUP_AUDIO_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "selfsup-audio"


def choose_voices(config: KWSConfig) -> list[dict[str, Any]]:
    """The speakers and their speed/pitch settings, seeded: ``[{speaker, accent, ...}]``."""
    rng = random.Random(config.seed)
    grid = [(a, v) for a in ACCENTS for v in VARIANTS]
    if config.n_speakers > len(grid):
        raise ValueError(f"{NAME}: n_speakers={config.n_speakers} exceeds the {len(grid)} "
                         "accent x variant speakers")
    if config.voices_per_speaker > len(RATES) * len(PITCHES):
        raise ValueError(f"{NAME}: voices_per_speaker={config.voices_per_speaker} exceeds the "
                         f"{len(RATES) * len(PITCHES)} speed x pitch settings")
    if config.split == "accent":  # every accent represented, the held-out ones included
        by_accent = {a: [g for g in grid if g[0] == a] for a in ACCENTS}
        for pool in by_accent.values():
            rng.shuffle(pool)
        speakers = [by_accent[ACCENTS[i % len(ACCENTS)]][i // len(ACCENTS)]
                    for i in range(config.n_speakers)]
    else:
        speakers = rng.sample(grid, config.n_speakers)
    settings = [(r, p) for r in RATES for p in PITCHES]
    voices = []
    for accent, variant in sorted(speakers):
        for rate, pitch in rng.sample(settings, config.voices_per_speaker):
            voices.append({"speaker": f"{accent}+{variant}", "accent": accent,
                           "variant": variant, "rate": rate, "pitch": pitch})
    return voices


def fingerprint(words: tuple[str, ...], voices: list[dict[str, Any]]) -> str:
    """A hash of everything that changes the rendered audio."""
    import espeakng_loader

    data = Path(espeakng_loader.get_data_path())
    phon = hashlib.sha256((data / "phondata").read_bytes()).hexdigest()
    payload = json.dumps({"words": words, "voices": voices, "rate": SAMPLE_RATE,
                          "render": RENDER_VERSION, "phondata": phon}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def place(clip: np.ndarray, rate: int, length: int) -> np.ndarray:
    """Resample an int16 clip to 16 kHz, trim its silence, centre it in ``length``."""
    x = resample(torch.from_numpy(clip.astype(np.float32) / 32768.0), rate, SAMPLE_RATE).numpy()
    frame = SAMPLE_RATE // 100
    energy = np.array([np.abs(x[i:i + frame]).max() for i in range(0, max(len(x) - frame, 1),
                                                                   frame)])
    active = np.nonzero(energy > 0.02 * max(float(energy.max()), 1e-9))[0]
    if len(active):
        x = x[active[0] * frame:(active[-1] + 1) * frame]
    out = np.zeros(length, dtype=np.float32)
    if len(x) >= length:
        start = (len(x) - length) // 2
        out[:] = x[start:start + length]
    else:
        start = (length - len(x)) // 2
        out[start:start + len(x)] = x
    return np.clip(np.round(out * 32767.0), -32768, 32767).astype(np.int16)


def render(words: tuple[str, ...], voices: list[dict[str, Any]],
           folder: Path) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """Synthesise every (word, voice), write the cache files, return clips and manifest."""
    from ..io.espeak import synthesise

    jobs, manifest = [], []
    for voice in voices:
        for label, word in enumerate(words):
            jobs.append({"text": word, "accent": voice["accent"], "variant": voice["variant"],
                         "rate": voice["rate"], "pitch": voice["pitch"]})
            manifest.append({"word": word, "label": label, **voice})
    clips, rate = synthesise(jobs)
    audio = np.stack([place(c, rate, SAMPLE_RATE) for c in clips]) if clips else np.zeros(
        (0, SAMPLE_RATE), np.int16)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / "clips.npy.tmp"
    with open(tmp, "wb") as fh:
        np.save(fh, audio)
    os.replace(tmp, folder / "clips.npy")
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return audio, manifest


def load_or_render(words: tuple[str, ...], voices: list[dict[str, Any]],
                   cache_dir: Path) -> tuple[np.ndarray, list[dict[str, Any]], Path, bool]:
    """The cached clips of these settings, rendered first if absent or stale.

    Returns ``(clips, manifest, folder, rendered)``.
    """
    key = fingerprint(words, voices)
    folder = cache_dir / f"kws-{key[:16]}"
    stamp = folder / "fingerprint"
    if stamp.is_file() and stamp.read_text().strip() == key and (folder / "clips.npy").is_file():
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        clips = np.load(folder / "clips.npy")
        if len(manifest) == len(clips):
            return clips, manifest, folder, False
    clips, manifest = render(words, voices, folder)
    stamp.write_text(key)  # written last: a cache without it is rendered again
    return clips, manifest, folder, True


def speaker_splits(manifest: list[dict[str, Any]], config: KWSConfig) -> dict[str, np.ndarray]:
    """Clip indices of train/val/test, no speaker in two splits (see the module)."""
    speakers = sorted({m["speaker"] for m in manifest})
    rng = random.Random(config.seed + 1)
    if config.split == "accent":
        test = {s for s in speakers if s.split("+")[0] in config.held_out_accents}
        rest = [s for s in speakers if s not in test]
        rng.shuffle(rest)
        n_val = max(1, round(config.val_share * len(rest)))
        val = set(rest[:n_val])
    else:
        rng.shuffle(speakers)
        n_test = max(1, round(config.test_share * len(speakers)))
        n_val = max(1, round(config.val_share * len(speakers)))
        test, val = set(speakers[:n_test]), set(speakers[n_test:n_test + n_val])
    which = np.array(["test" if m["speaker"] in test else "val" if m["speaker"] in val
                      else "train" for m in manifest])
    splits = {k: np.nonzero(which == k)[0] for k in ("train", "val", "test")}
    empty = [k for k, v in splits.items() if len(v) == 0]
    if empty:
        raise ValueError(f"{NAME}: split(s) {empty} hold no speaker; raise n_speakers "
                         f"(now {len(speakers)})")
    return splits


def noisy(waves: torch.Tensor, config: KWSConfig) -> torch.Tensor:
    """Shift each clip by up to ``shift_ms`` and add white or pink noise at a random SNR."""
    g = torch.Generator().manual_seed(config.seed + 2)
    n, length = waves.shape
    most = config.shift_ms * SAMPLE_RATE // 1000
    shifts = torch.randint(-most, most + 1, (n,), generator=g)
    idx = torch.arange(length)[None] - shifts[:, None]
    valid = (idx >= 0) & (idx < length)
    moved = torch.where(valid, waves.gather(1, idx.clamp(0, length - 1)), torch.zeros(()))
    lo, hi = config.snr_db
    snr = lo + (hi - lo) * torch.rand(n, 1, generator=g)
    bank = noise_waveforms(64, length, seed=config.seed + 3)
    noise = bank[torch.randint(len(bank), (n,), generator=g)]
    power = moved.pow(2).mean(dim=1, keepdim=True).clamp_min(1e-10)
    return moved + noise * (power / 10 ** (snr / 10)).sqrt()


class KeywordSpotting(SpectrogramDataset):
    """The synthesised keyword-spotting set (see the module)."""

    def __init__(self, config: KWSConfig, views: dict[str, Any]) -> None:
        words = VOCABULARIES[config.vocabulary]
        voices = choose_voices(config)
        cache = Path(config.cache_dir) if config.cache_dir else default_cache_dir()
        clips, manifest, self.cache_folder, self.rendered = load_or_render(words, voices, cache)
        self.manifest = manifest
        self.config = config
        waves = torch.from_numpy(clips.astype(np.float32) / 32768.0)
        if config.condition == "noisy":
            waves = noisy(waves, config)
        super().__init__(waves, np.array([m["label"] for m in manifest]),
                         speaker_splits(manifest, config), words, sample_rate=SAMPLE_RATE,
                         kind=config.features, n_mels=config.n_mels,
                         views=parse_views(views, NAME))

    def speakers(self, split: str) -> set[str]:
        return {self.manifest[i]["speaker"] for i in self.split_indices(split)}


def build(views: dict[str, Any] | None = None, **options: Any) -> KeywordSpotting:
    """``audio.kws_synth`` factory; ``options`` are :class:`KWSConfig` fields."""
    if "snr_db" in options:
        options["snr_db"] = tuple(options["snr_db"])
    if "held_out_accents" in options:
        options["held_out_accents"] = tuple(options["held_out_accents"])
    return KeywordSpotting(parse_options(KWSConfig, options, NAME), dict(views or {}))
