"""Atomic checkpoint writes, fallback past damaged files, weights-only loading, RNG states."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup.checkpoint import (
    CheckpointError,
    checkpoint_path,
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    load_latest_checkpoint,
    save_checkpoint,
)
from selfsup.seeding import capture_rng_state, restore_rng_state


def _state(step: int) -> dict[str, object]:
    return {"step": step, "w": torch.full((4, 4), float(step)), "meta": {"lr": [0.1, 0.2]}}


def _save_steps(directory: Path, *steps: int) -> None:
    for step in steps:
        save_checkpoint(checkpoint_path(directory, step), _state(step))


def test_save_then_load_round_trips_and_keeps_the_newest_two(tmp_path: Path) -> None:
    _save_steps(tmp_path, 50, 100, 150, 200)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000200.pt", "step-000150.pt"]
    state = load_latest_checkpoint(tmp_path)
    assert state is not None and state["step"] == 200
    assert torch.equal(state["w"], torch.full((4, 4), 200.0))
    assert load_latest_checkpoint(tmp_path / "missing") is None


def test_a_failing_save_leaves_no_partial_file_and_keeps_the_previous(tmp_path: Path) -> None:
    _save_steps(tmp_path, 10)
    bad = {"w": torch.ones(1000), "fn": lambda: 0}  # torch.save fails after writing some bytes
    with pytest.raises(Exception, match=r"lambda|pickle|Can't"):
        save_checkpoint(checkpoint_path(tmp_path, 20), bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000010.pt"]
    assert load_latest_checkpoint(tmp_path)["step"] == 10  # type: ignore[index]


def test_a_temporary_file_left_by_a_killed_save_is_ignored_then_removed(tmp_path: Path) -> None:
    _save_steps(tmp_path, 10)
    stale = tmp_path / ".step-000020.pt.tmp-99999"
    stale.write_bytes(b"half a checkpoint")
    assert load_latest_checkpoint(tmp_path)["step"] == 10  # type: ignore[index]
    _save_steps(tmp_path, 20)
    assert not stale.exists()


@pytest.mark.parametrize("damage", ["zero_length", "truncated"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    _save_steps(tmp_path, 10, 20)
    newest = checkpoint_path(tmp_path, 20)
    data = newest.read_bytes()
    newest.write_bytes(b"" if damage == "zero_length" else data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="selfsup.checkpoint"):
        found = latest_valid_checkpoint(tmp_path)
    assert found is not None
    assert found[0] == checkpoint_path(tmp_path, 10) and found[1]["step"] == 10
    assert str(newest) in caplog.text


def test_all_checkpoints_damaged_is_an_error_not_a_fresh_start(tmp_path: Path) -> None:
    _save_steps(tmp_path, 10)
    checkpoint_path(tmp_path, 10).write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"step-000010\.pt is empty") as err:
        load_latest_checkpoint(tmp_path)
    assert "start the run afresh" in str(err.value)


_UNPICKLED: list[str] = []


def _record_unpickle(tag: str) -> str:
    _UNPICKLED.append(tag)
    return tag


class Payload:
    """Unpickling this runs code (``_record_unpickle``); weights_only must refuse it."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (_record_unpickle, ("ran",))


def test_loading_refuses_pickled_objects_and_never_runs_their_code(tmp_path: Path) -> None:
    _save_steps(tmp_path, 10)
    torch.save({"step": 20, "payload": Payload()}, checkpoint_path(tmp_path, 20))
    with pytest.raises(CheckpointError, match=r"holds \S*_record_unpickle, .* weights_only=True"):
        load_checkpoint(checkpoint_path(tmp_path, 20))
    assert load_latest_checkpoint(tmp_path)["step"] == 10  # type: ignore[index]
    checkpoint_path(tmp_path, 10).unlink()
    with pytest.raises(CheckpointError):
        load_latest_checkpoint(tmp_path)
    assert _UNPICKLED == []


def test_rng_states_survive_a_weights_only_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in numpy's legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": capture_rng_state()})
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.standard_normal(3), expected[1])
    assert random.random() == expected[2]
