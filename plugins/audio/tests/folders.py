"""Writers of small real audio folders (soundfile), in the layouts the reader knows."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from selfsup_audio.io.audio import write_audio


def tone(freq: float, rate: int = 16000, seconds: float = 1.0, channels: int = 1,
         seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    x = 0.3 * np.sin(2 * np.pi * freq * t) + 0.01 * rng.standard_normal(len(t))
    return np.stack([x * (1 + 0.1 * c) for c in range(channels)]) if channels > 1 else x


def write_speech_commands(root: Path) -> Path:
    """``<word>/<clip>.wav|.flac`` plus the validation/testing lists and a noise folder."""
    words = {"yes": 300.0, "no": 600.0, "up": 900.0}
    val, test = [], []
    for w, (word, freq) in enumerate(words.items()):
        (root / word).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            suffix = ".flac" if i % 2 else ".wav"
            name = f"{word}/spk{i}_nohash_0{suffix}"
            write_audio(root / name, tone(freq * (1 + 0.02 * i), seed=10 * w + i), 16000)
            (val if i == 4 else test if i == 5 else []).append(name)
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    (root / "_background_noise_").mkdir(exist_ok=True)
    write_audio(root / "_background_noise_" / "white.wav", tone(50.0, seconds=2.0), 16000)
    return root


def write_esc50(root: Path) -> Path:
    """``meta/esc50.csv`` and ``audio/`` at 44.1 kHz stereo, 5 folds, 2 classes."""
    (root / "audio").mkdir(parents=True, exist_ok=True)
    (root / "meta").mkdir(exist_ok=True)
    rows = []
    for fold in range(1, 6):
        for target, category in enumerate(("dog", "rain")):
            name = f"{fold}-{100 + target}-A-{target}.wav"
            write_audio(root / "audio" / name,
                        tone(400.0 + 800 * target, rate=44100, seconds=1.5, channels=2,
                             seed=fold), 44100)
            rows.append({"filename": name, "fold": fold, "target": target,
                         "category": category, "esc10": "True", "src_file": "x", "take": "A"})
    with open(root / "meta" / "esc50.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root
