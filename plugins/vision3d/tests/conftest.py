"""Shared fixtures: one thread, a tiny shapes cache per session, a folder of real files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

#: 12 classes x 5 clouds of 64 points: generated in well under a second
TINY_SHAPES = {"n_per_class": 5, "n_points": 64}


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shapes_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shapes-cache")


@pytest.fixture(scope="session")
def class_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .files import write_class_folder

    return write_class_folder(tmp_path_factory.mktemp("clouds"))


@pytest.fixture(scope="session")
def kicad_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .files import write_kicad_library

    return write_kicad_library(tmp_path_factory.mktemp("3dmodels"))


#: 5 categories x (4 + 2 + 4 + 4) scenes of 64 points: generated in about a second
TINY_POSE = {"n_train": 4, "n_val": 2, "n_unlabelled": 4, "n_test": 4, "n_points": 64,
             "n_model": 64, "image": 48}


@pytest.fixture(scope="session")
def pose_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pose-cache")
