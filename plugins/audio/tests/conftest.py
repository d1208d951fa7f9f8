"""Shared fixtures: one small synthesised cache per test session, one thread."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

#: 10 digits x 8 speakers x 1 voice: 80 clips, rendered in about a second
TINY_KWS = {"vocabulary": "digits", "n_speakers": 8, "voices_per_speaker": 1}


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def kws_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kws-cache")


#: 5 real Bach chorales from music21's corpus (3 train, 1 val, 1 test pieces), ~2 s to parse
TINY_SCORES = {"n_pieces": 5, "val_pieces": 1, "test_pieces": 1}


@pytest.fixture(scope="session")
def score_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("score-cache")
