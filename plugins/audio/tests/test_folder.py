"""The folder reader, on real WAV/FLAC/OGG files written with soundfile."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest

from selfsup_audio.datasets.folder import build
from selfsup_audio.io.audio import read_audio, write_audio

from .folders import tone, write_esc50, write_speech_commands


def test_speech_commands_layout_reads_folders_and_lists(tmp_path: Path) -> None:
    ds = build(path=str(write_speech_commands(tmp_path)))
    assert ds.layout == "folders" and ds.classes == ["no", "up", "yes"]
    assert len(ds.files) == 18 and not ds.skipped  # _background_noise_ is not a label
    assert [len(ds.split_indices(s)) for s in ("train", "val", "test")] == [12, 3, 3]
    assert ds.x.shape == (18, 64, 98)


def test_esc50_layout_resamples_and_mixes_down(tmp_path: Path) -> None:
    ds = build(path=str(write_esc50(tmp_path)), duration=1.0)
    assert ds.layout == "esc50" and ds.classes == ["dog", "rain"]
    assert [len(ds.split_indices(s)) for s in ("train", "val", "test")] == [6, 2, 2]
    assert ds.x.shape == (10, 64, 98)
    samples, rate = read_audio(tmp_path / "audio" / "5-100-A-0.wav")
    assert rate == 44100 and samples.shape[0] == 2


def test_urbansound8k_layout(tmp_path: Path) -> None:
    (tmp_path / "metadata").mkdir()
    rows = []
    for fold in (1, 2, 3):
        (tmp_path / "audio" / f"fold{fold}").mkdir(parents=True)
        for cid, cls in enumerate(("siren", "drilling")):
            name = f"{fold}{cid}-1-0-0.ogg"
            write_audio(tmp_path / "audio" / f"fold{fold}" / name,
                        tone(500 + 700 * cid, rate=22050, seconds=0.6), 22050)
            rows.append({"slice_file_name": name, "fsID": 1, "start": 0, "end": 1,
                         "salience": 1, "fold": fold, "classID": cid, "class": cls})
    with open(tmp_path / "metadata" / "UrbanSound8K.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    ds = build(path=str(tmp_path))
    assert ds.layout == "urbansound8k" and len(ds.files) == 6
    assert [len(ds.split_indices(s)) for s in ("train", "val", "test")] == [2, 2, 2]


def test_bad_files_are_skipped_and_reported(tmp_path: Path) -> None:
    for label, freq in (("a", 300.0), ("b", 900.0)):
        (tmp_path / label).mkdir()
        for i in range(4):
            write_audio(tmp_path / label / f"ok{i}.wav", tone(freq, seed=i), 16000)
    (tmp_path / "a" / "corrupt.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
    write_audio(tmp_path / "a" / "empty.wav", np.zeros(0, dtype=np.float32), 16000)
    write_audio(tmp_path / "b" / "silent.flac", np.zeros(16000, dtype=np.float32), 16000)
    nan = tone(300.0)
    nan[100] = np.nan
    write_audio(tmp_path / "b" / "nan.wav", nan.astype(np.float32), 16000, subtype="FLOAT")
    write_audio(tmp_path / "b" / "lowrate.wav", tone(300.0, rate=4000), 4000)
    write_audio(tmp_path / "a" / "other_rate.wav", tone(300.0, rate=22050), 22050)
    with pytest.warns(UserWarning, match="skipped 5 of 14"):
        ds = build(path=str(tmp_path))
    reasons = {Path(p).name: why for p, why in ds.skipped}
    assert set(reasons) == {"corrupt.wav", "empty.wav", "silent.flac", "nan.wav", "lowrate.wav"}
    assert reasons["corrupt.wav"].startswith("unreadable")
    assert reasons["empty.wav"].startswith("empty")
    assert reasons["silent.flac"].startswith("silent")
    assert reasons["nan.wav"].startswith("non-finite")
    assert reasons["lowrate.wav"].startswith("wrong sample rate 4000")
    assert len(ds.files) == 9  # the 22,050 Hz clip is resampled, not skipped
    with pytest.warns(UserWarning, match="skipped 6"):
        strict = build(path=str(tmp_path), resample=False)
    assert any(Path(p).name == "other_rate.wav" for p, _ in strict.skipped)


def test_csv_layout_and_crop_pad(tmp_path: Path) -> None:
    rows = []
    for i in range(6):
        name = f"clip{i}.wav"
        write_audio(tmp_path / name, tone(300 + 200 * (i % 2), seconds=0.4 + 0.5 * i), 16000)
        rows.append({"file": name, "kind": "low" if i % 2 == 0 else "high"})
    with open(tmp_path / "labels.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["file", "kind"])
        w.writeheader()
        w.writerows(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = build(path=str(tmp_path), csv="labels.csv", file_column="file", label_column="kind",
                   duration=0.5)
    assert ds.layout == "csv" and ds.classes == ["high", "low"]
    assert ds.x.shape == (6, 64, 48)  # 0.5 s: cropped or padded to 8,000 samples


def test_errors_name_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs path="):
        build()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build(path=str(tmp_path / "nowhere"))
    (tmp_path / "only").mkdir()
    write_audio(tmp_path / "only" / "x.wav", tone(300.0), 16000)
    with pytest.raises(ValueError, match="at least 3 clips and 2 classes"):
        build(path=str(tmp_path))
