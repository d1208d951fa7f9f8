"""What a new user sees when a run folder is damaged or the output pipe closes.

Each case ends in one line on stderr and exit status 2: nothing executed (a pickle
is never unpickled), nothing lost (no file deleted or overwritten).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from selfsup.baselines import Constant
from selfsup.cli import main
from selfsup.components import BaselineContext, EvalContext

PRETRAIN = ["pretrain", "--dataset", "core.digits", "--encoder", "core.mlp",
            "--pretext", "core.simclr", "--set", "training.progress=false",
            "--set", "training.batch_size=32", "--set", "training.checkpoint_every=2",
            "--set", "pretext.proj_hidden_dim=16", "--set", "pretext.proj_out_dim=8"]


class _Payload:
    """Unpickling this would run code: it must never happen."""

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/selfsup-pwned",))


def _one_error_line(err: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("selfsup: error:") and "Traceback" not in err
    return lines[0]


def test_every_checkpoint_damaged_is_one_line_and_deletes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    assert main([*PRETRAIN, "--steps", "4", "--run-dir", str(run)]) == 0
    ckpts = sorted((run / "checkpoints").iterdir())
    assert len(ckpts) == 2
    ckpts[0].write_bytes(ckpts[0].read_bytes()[:100])  # truncated
    ckpts[1].write_bytes(pickle.dumps({"task": _Payload()}))  # a pickle payload
    before = {p.name: p.read_bytes() for p in ckpts}
    capsys.readouterr()
    assert main([*PRETRAIN, "--steps", "4", "--run-dir", str(run)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no checkpoint in" in line and "can be loaded" in line and "Nothing was loaded" in line
    assert {p.name: p.read_bytes() for p in sorted((run / "checkpoints").iterdir())} == before
    assert not Path("/tmp/selfsup-pwned").exists()


def _evaluate_with_weights(tmp_path: Path, damage: Callable[[bytes], bytes],
                           capsys: pytest.CaptureFixture[str]) -> tuple[str, Path]:
    """Pretrain 2 steps, replace the exported weights by ``damage(weights)``, evaluate;
    the one error line and the weights file."""
    run = tmp_path / "run"
    assert main([*PRETRAIN, "--steps", "2", "--run-dir", str(run)]) == 0
    weights = run / "encoder.safetensors"
    weights.write_bytes(damage(weights.read_bytes()))
    capsys.readouterr()
    assert main(["evaluate", str(run), "--evaluator", "core.knn", "--seeds", "0"]) == 2
    return _one_error_line(capsys.readouterr().err), weights


def test_a_pickle_in_place_of_the_safetensors_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = pickle.dumps({"weights": _Payload()})
    line, weights = _evaluate_with_weights(tmp_path, lambda _: payload, capsys)
    assert "encoder.safetensors is not a safetensors file" in line and "pickle" in line
    assert "selfsup pretrain --run-dir" in line
    assert weights.read_bytes() == payload
    assert not Path("/tmp/selfsup-pwned").exists()


def test_a_truncated_safetensors_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line, _ = _evaluate_with_weights(tmp_path, lambda data: data[:5], capsys)
    assert "shorter than a safetensors header" in line


def test_a_closed_pipe_is_one_line_and_exit_code_2() -> None:
    # `selfsup list pretext | head -1`: the reader leaves after one line
    proc = subprocess.run(
        f"{sys.executable} -m selfsup.cli list pretext --verbose | head -1",
        shell=True, capture_output=True, text=True, check=False,
        env={**os.environ, "SELFSUP_DISABLE_PLUGIN_AUTOLOAD": "1"},
        executable="/bin/bash",
    )
    assert proc.stdout.count("\n") == 1
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr
    proc = subprocess.run(
        f"set -o pipefail; {sys.executable} -m selfsup.cli list pretext --verbose "
        "| (read -r line; exit 0)",
        shell=True, capture_output=True, text=True, check=False, executable="/bin/bash",
        env={**os.environ, "SELFSUP_DISABLE_PLUGIN_AUTOLOAD": "1"},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "selfsup: output closed by the reader (broken pipe); nothing else was lost"]


def test_register_baselines_and_list_show_them(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "baseline"]) == 0
    out = capsys.readouterr().out
    for key in ("core.input", "core.random_init", "core.supervised", "core.mean"):
        assert key in out
    assert main(["show", "core.supervised"]) == 0
    out = capsys.readouterr().out
    assert "option epochs = 60" in out and "task_kinds" in out
    assert main(["show", "core.simclr"]) == 0
    assert "option temperature = 0.1  # " in capsys.readouterr().out
    assert main(["show", "core.simclrr"]) == 2
    assert "did you mean core.simclr" in capsys.readouterr().err


def test_a_baseline_module_offers_the_embedding_face() -> None:
    from selfsup.datasets.digits import DigitsDataset

    ds = DigitsDataset()
    ctx = BaselineContext(encoder_factory=lambda: Constant(ds), eval=EvalContext())
    model = Constant(ds)
    batch, _, _ = next(ds.labelled_batches("train", 4))
    assert model.embed(batch).shape == (4, 1)
    assert ctx.encoder_factory() is not model
