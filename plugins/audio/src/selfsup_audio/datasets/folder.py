"""Your own labelled audio (``audio.folder``): a folder read as it is, nothing downloaded.

Labels come from sub-folder names or a CSV (:mod:`selfsup_audio.io.folders`: the
Speech Commands, ESC-50 and UrbanSound8K layouts work unchanged). Every clip is
read with soundfile, mixed down to mono, resampled to ``sample_rate`` and cropped
(centre) or zero-padded to ``duration`` seconds, then turned into the same
spectrograms as the synthesised set. Files that cannot be used are skipped and
reported, each with its reason, in :attr:`AudioFolder.skipped` and in one warning:
unreadable or corrupt, empty, silent (peak below ``silence``), NaN/inf samples, or
a wrong sample rate (below ``min_sample_rate``, or any rate but ``sample_rate``
when ``resample=false``).

Splits: a layout's own (Speech Commands' lists; for ESC-50/UrbanSound8K and CSVs
with folds, ``test_fold`` is the test split and ``val_fold`` the validation split,
by default the last two folds); otherwise a seeded, class-stratified 70/15/15.
Pretraining uses the train split's clips.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from selfsup.api import (
    boolean,
    non_negative_int,
    one_of,
    option,
    optional,
    parse_options,
    positive,
    positive_int,
)

from ..io.audio import check_clip, fit_length, read_audio, resample, to_mono
from ..io.folders import LAYOUTS, discover
from .base import SpectrogramDataset
from .views import parse_views

NAME = "audio.folder"


def _text(x: Any) -> str | None:
    return None if isinstance(x, str) and x else "be a non-empty string"


@dataclass(frozen=True)
class FolderConfig:
    """Options of ``audio.folder``."""

    path: str = option("", _text, "the folder of clips (required)")
    layout: str = option("auto", one_of(*LAYOUTS), "how labels are given (see the module)")
    csv: str | None = option(None, optional(_text), "CSV of files and labels (layout csv)")
    file_column: str = option("filename", _text, "CSV column of the file names")
    label_column: str = option("label", _text, "CSV column of the labels")
    fold_column: str | None = option(None, optional(_text), "CSV column of the folds")
    test_fold: str | None = option(None, optional(_text), "fold of the test split (last)")
    val_fold: str | None = option(None, optional(_text), "fold of the val split (one before)")
    sample_rate: int = option(16000, positive_int, "the model's sample rate, Hz")
    duration: float = option(1.0, positive, "clip length in seconds (crop or pad)")
    resample: bool = option(True, boolean, "resample other rates (else skip them)")
    min_sample_rate: int = option(8000, positive_int, "files below this rate are skipped")
    silence: float = option(1e-4, positive, "a clip whose peak is below this is silent")
    features: str = option("fbank", one_of("fbank", "logmel"), "Kaldi fbank or log-mel")
    n_mels: int = option(64, positive_int, "mel bins")
    seed: int = option(0, non_negative_int, "the stratified split")


def load_clip(path: Any, config: FolderConfig) -> tuple[np.ndarray | None, str | None]:
    """One conformed clip ``[samples]`` float32, or None and the reason it was skipped."""
    try:
        samples, rate = read_audio(path)
    except Exception as exc:  # libsndfile's errors: corrupt, truncated, not audio
        return None, f"unreadable: {type(exc).__name__}: {str(exc).strip()[:120]}"
    problem = check_clip(samples, config.silence)
    if problem:
        return None, problem
    if rate < config.min_sample_rate or (rate != config.sample_rate and not config.resample):
        return None, f"wrong sample rate {rate} Hz (want {config.sample_rate} Hz)"
    mono = to_mono(samples)
    if rate != config.sample_rate:
        mono = resample(torch.from_numpy(mono), rate, config.sample_rate).numpy()
    return fit_length(mono, round(config.duration * config.sample_rate)).astype(np.float32), None


def _stratified(labels: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = rng.permutation(np.nonzero(labels == c)[0])
        n_test = round(0.15 * len(idx))
        n_val = round(0.15 * len(idx))
        parts["test"] += idx[:n_test].tolist()
        parts["val"] += idx[n_test:n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val:].tolist()
    return {k: np.array(sorted(v), dtype=np.int64) for k, v in parts.items()}


class AudioFolder(SpectrogramDataset):
    """Your clips as spectrograms (see the module)."""

    def __init__(self, config: FolderConfig, views: dict[str, Any]) -> None:
        self.layout, entries = discover(config.path, config.layout, config.csv,
                                        config.file_column, config.label_column,
                                        config.fold_column)
        self.skipped: list[tuple[str, str]] = []
        kept, waves = [], []
        for entry in entries:
            wave, why = (None, "missing file") if not entry.path.is_file() else load_clip(
                entry.path, config)
            if wave is None:
                self.skipped.append((str(entry.path), str(why)))
                continue
            kept.append(entry)
            waves.append(wave)
        if self.skipped:
            listing = "; ".join(f"{p}: {why}" for p, why in self.skipped[:20])
            more = f" (and {len(self.skipped) - 20} more)" if len(self.skipped) > 20 else ""
            warnings.warn(f"{NAME}: skipped {len(self.skipped)} of {len(entries)} file(s): "
                          f"{listing}{more}", stacklevel=2)
        classes = sorted({e.label for e in kept})
        if len(kept) < 3 or len(classes) < 2:
            raise ValueError(f"{NAME}: {config.path!r} holds {len(kept)} usable clip(s) in "
                             f"{len(classes)} class(es); it needs at least 3 clips and 2 classes "
                             f"({len(self.skipped)} skipped)")
        labels = np.array([classes.index(e.label) for e in kept])
        folds = [e.fold for e in kept]
        self.files = [str(e.path) for e in kept]
        super().__init__(torch.from_numpy(np.stack(waves)), labels,
                         self._splits_of(folds, labels, config), classes,
                         sample_rate=config.sample_rate, kind=config.features,
                         n_mels=config.n_mels, views=parse_views(views, NAME))

    @staticmethod
    def _splits_of(folds: list[str | None], labels: np.ndarray,
                   config: FolderConfig) -> dict[str, np.ndarray]:
        names = np.array([f if f is not None else "" for f in folds])
        if all(f in ("train", "val", "test") for f in names):  # Speech Commands lists
            splits = {k: np.nonzero(names == k)[0] for k in ("train", "val", "test")}
            if all(len(v) for v in splits.values()):
                return splits
        if all(folds):
            order = sorted(set(names), key=lambda f: (len(f), f))
            if len(order) >= 3:
                test = config.test_fold or order[-1]
                val = config.val_fold or next(f for f in reversed(order) if f != test)
                return {"train": np.nonzero((names != test) & (names != val))[0],
                        "val": np.nonzero(names == val)[0],
                        "test": np.nonzero(names == test)[0]}
        return _stratified(labels, config.seed)


def build(views: dict[str, Any] | None = None, **options: Any) -> AudioFolder:
    """``audio.folder`` factory; ``options`` are :class:`FolderConfig` fields (``path``
    required)."""
    if not options.get("path"):
        raise ValueError(f"{NAME} needs path= (a folder of .wav/.flac/.ogg clips)")
    return AudioFolder(parse_options(FolderConfig, options, NAME), dict(views or {}))
