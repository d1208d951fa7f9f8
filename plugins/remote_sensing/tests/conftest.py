"""One thread; small data."""

from __future__ import annotations

import pytest
import torch

#: 48x48 pictures, 32-pixel patches: the dataset builds in about a second
TINY = {"image_size": 48, "patch_size": 32, "patch_overlap": 16}
TINY_UNET = {"width": 4, "depth": 2}
TINY_DNCNN = {"width": 4, "depth": 3}


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)
