"""Seeds derived from a run's seed, and RNG states that a checkpoint can hold.

Every random stream of a training run (epoch permutations, DataLoader workers,
the per-step view generator) is seeded from a hash of ``(seed, purpose, ...)``
rather than from a running RNG, so that a resumed run can recreate the stream of
any step without replaying the steps before it.

RNG states are converted to tensors, lists and plain numbers so that checkpoints
load with ``torch.load(..., weights_only=True)``, which never unpickles code.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

_SEED_MASK = (1 << 63) - 1  # torch.Generator.manual_seed accepts any non-negative int64


def derive_seed(*parts: int | str) -> int:
    """A 63-bit seed from ``parts``; different parts give independent-looking seeds.

    A hash, not ``seed + step``, so that neighbouring runs (seed 0 step 1, seed 1
    step 0) do not share streams.
    """
    data = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little") & _SEED_MASK


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """Seed of the generator the trainer passes to the task at optimiser step ``step``."""
    return derive_seed(seed, "step", step, rank)


def seed_everything(seed: int) -> None:
    """Seed torch (CPU and CUDA), numpy's and Python's global RNGs."""
    torch.manual_seed(seed)  # also seeds every CUDA device
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The global RNG states of this process, as weights-only-loadable values."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(np_name),
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "python": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`capture_rng_state` captured."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["name"],
            npst["keys"].numpy().astype(np.uint32),
            npst["pos"],
            npst["has_gauss"],
            npst["cached_gaussian"],
        )
    )
    pyst = state["python"]
    random.setstate((pyst["version"], tuple(int(v) for v in pyst["state"]), pyst["gauss_next"]))
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        # A machine with fewer GPUs restores the devices it has; CUDA runs are not
        # bit-exact anyway, but their random streams should still continue.
        for index, device_state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(device_state, index)


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run a block (an online evaluation) without advancing the training RNG streams."""
    saved = capture_rng_state()
    try:
        yield
    finally:
        restore_rng_state(saved)
