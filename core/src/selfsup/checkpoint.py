"""Atomic training checkpoints that load without unpickling code.

A checkpoint is written to a temporary file in the target directory, flushed and
fsynced, renamed over its final name with ``os.replace`` (atomic on POSIX), and
the directory is fsynced so the rename itself survives a power cut. A crash
therefore leaves either the complete new file or none at all, and the previous
checkpoint stays on disk until the new one is committed. Loading uses
``torch.load(..., weights_only=True)``: a checkpoint holds tensors, numbers,
strings, lists and dicts only, and anything else is refused.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from selfsup.errors import CheckpointError
from selfsup.rundir import TEMPORARY, atomic_path
from selfsup.seeding import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)

#: Version of the training-state layout below; bump it when keys change meaning.
STATE_FORMAT = 1

#: Seconds to sleep between writing the temporary file and renaming it; lets the
#: tests kill a process in the middle of a save. Never set it outside tests.
TEST_DELAY_ENV = "SELFSUP_TEST_CHECKPOINT_DELAY_S"

_NAME = re.compile(r"^step-(\d+)\.pt$")


def checkpoint_path(directory: Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives: ``directory/step-000100.pt``."""
    return Path(directory) / f"step-{step:06d}.pt"


def list_checkpoints(directory: Path) -> list[Path]:
    """Committed checkpoints in ``directory``, newest (highest step) first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def save_checkpoint(path: Path, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``state`` to ``path`` atomically, then delete all but the newest ``keep``.

    Older checkpoints are pruned only after the new one is committed, so at every
    instant at least one complete checkpoint is on disk.
    """
    if keep < 1:
        raise ValueError(f"keep={keep} would delete the checkpoint just written; use keep >= 1")
    path = Path(path)
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(directory)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(state, f)
        delay = os.environ.get(TEST_DELAY_ENV)
        if delay:
            time.sleep(float(delay))
    if _NAME.match(path.name):
        for old in list_checkpoints(directory)[keep:]:
            old.unlink(missing_ok=True)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load one checkpoint onto the CPU; raises :class:`CheckpointError` if it cannot."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        what = found.group(1) if found else "an object that is not plain data"
        raise CheckpointError(
            f"checkpoint {path} cannot be loaded: it holds {what}, and checkpoints are loaded "
            "with weights_only=True (tensors, numbers, strings, lists, dicts), never unpickled"
        ) from exc
    except Exception as exc:  # truncation surfaces as RuntimeError, EOFError, zip errors...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} cannot be loaded: {reason}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds {type(state).__name__}, not a dict")
    return state


def latest_valid_checkpoint(directory: Path) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint of ``directory`` that loads, with its path.

    A checkpoint that fails to load (zero length, truncated, or holding pickled
    objects that ``weights_only`` refuses) is skipped with a warning naming it.
    Returns None when there is no checkpoint at all; raises
    :class:`CheckpointError` when there are some and none loads, rather than
    letting a run silently start again from step 0.
    """
    failures: list[str] = []
    for path in list_checkpoints(directory):
        try:
            state = load_checkpoint(path)
        except CheckpointError as exc:
            log.warning("skipping unreadable checkpoint %s: %s", path, exc)
            failures.append(str(exc))
            continue
        if failures:
            log.warning("resuming from the older checkpoint %s instead", path)
        return path, state
    if failures:
        raise CheckpointError(
            f"no checkpoint in {directory} can be loaded:\n  "
            + "\n  ".join(failures)
            + f"\nNothing was loaded or deleted. Move {str(directory)!r} away to start the "
            "run afresh, or restore a good checkpoint into it"
        )
    return None


def load_latest_checkpoint(directory: Path) -> dict[str, Any] | None:
    """The state of the newest loadable checkpoint in ``directory``, or None if none."""
    found = latest_valid_checkpoint(directory)
    return None if found is None else found[1]


def training_state(
    task: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    progress: Mapping[str, float],
    config: dict[str, Any],
) -> dict[str, Any]:
    """Everything a resumed run needs: weights, optimiser, schedule, RNG streams, data position.

    ``progress`` holds ``step``, ``epoch``, ``position`` (samples of the epoch consumed
    by this rank) and ``loss``. Under DDP every rank must call this (the RNG states of
    all ranks are gathered, since each rank draws its own dropout masks); rank 0 saves.
    """
    rngs: list[Any] = [capture_rng_state()]
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        mine, rngs = rngs[0], [None] * dist.get_world_size()
        dist.all_gather_object(rngs, mine)
    return {
        "format": STATE_FORMAT,
        **progress,
        "task": task.state_dict(),  # model, heads and EMA teachers all live in the task
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "rng": rngs,
        "config": config,
    }


def restore_training_state(
    state: dict[str, Any],
    task: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
    rank: int = 0,
) -> bool:
    """Load ``state`` into the live objects; False when the RNG streams could not be restored.

    They cannot when the checkpoint was written by a different number of processes;
    the caller then reseeds, and the run will not match an uninterrupted one.
    """
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(
            f"checkpoint format {state.get('format')!r} is not {STATE_FORMAT}; it was written "
            "by another selfsup version: resume with that version or start a new run folder"
        )
    task.load_state_dict(state["task"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if state["scaler"]:
        scaler.load_state_dict(state["scaler"])
    world = dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1
    if len(state["rng"]) != world:
        return False
    restore_rng_state(state["rng"][rank])
    return True


def _remove_stale_temporaries(directory: Path) -> None:
    # Left by a process killed mid-save; only the main process writes here, so a
    # temporary file that exists now belongs to a dead writer.
    for p in directory.iterdir():
        if p.name.startswith(".step-") and TEMPORARY in p.name:
            p.unlink(missing_ok=True)
