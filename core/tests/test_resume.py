"""A run killed with SIGKILL and resumed ends with the same weights, bit for bit, on CPU.

The training runs in subprocesses so that the kill is real: no ``finally`` blocks,
no flushing, a half-written temporary checkpoint left on disk.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from selfsup.checkpoint import TEST_DELAY_ENV, checkpoint_path
from selfsup.rundir import read_metrics
from selfsup.sampler import ResumableSampler, epoch_permutation
from selfsup.trainer import TrainConfig, Trainer

TESTS = Path(__file__).resolve().parent
STEPS, EVERY = 40, 10

# 48 samples in batches of 16: three steps an epoch, so checkpoints fall mid-epoch.
SCRIPT = f"""
import os, sys
from pathlib import Path
import torch
sys.path.insert(0, {str(TESTS)!r})
from test_trainer import ToyDataset, ToyTask
from selfsup.trainer import Trainer, TrainConfig

torch.set_num_threads(1)
torch.manual_seed(0)
ds = ToyDataset(n=48)
task = ToyTask(ds, step_sleep=float(os.environ.get("TOY_STEP_SLEEP", "0")))
cfg = TrainConfig(steps={STEPS}, batch_size=16, lr=1e-2, warmup_steps=5, seed=3, device="cpu",
                  checkpoint_every={EVERY}, log_every=5, progress=False)
result = Trainer(task, ds, cfg, Path(sys.argv[1])).fit()
torch.save({{"weights": task.state_dict(), "resumed_from": result.resumed_from}}, sys.argv[2])
"""


def _start(script: Path, run_dir: Path, out: Path, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(script), str(run_dir), str(out)],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
    )


def _finish(proc: subprocess.Popen[bytes]) -> None:
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert proc.poll() is None, f"training ended before the kill: {proc.stderr.read()!r}"  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "timed out waiting for the training subprocess"
        time.sleep(0.01)


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _assert_same_weights(a: Path, b: Path) -> int | None:
    sa, sb = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    assert sa["weights"].keys() == sb["weights"].keys()
    for key, value in sa["weights"].items():
        assert torch.equal(value, sb["weights"][key]), key
    return sb["resumed_from"]  # type: ignore[no-any-return]


def test_kills_mid_save_and_mid_training_then_resume_match_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(SCRIPT, encoding="utf-8")
    # Each subprocess spends seconds importing torch; the reference runs alongside.
    reference = tmp_path / "reference.pt"
    ref_proc = _start(script, tmp_path / "reference-run", reference)
    run, out = tmp_path / "run", tmp_path / "final.pt"
    ckpts = run / "checkpoints"

    # 1. Killed while saving step 20, between writing the temporary file and renaming it.
    proc = _start(script, run, out, **{TEST_DELAY_ENV: "0.5"})
    _wait_for(lambda: any(ckpts.glob(".step-000020.pt.tmp-*")), proc)
    _kill(proc)
    assert [p.name for p in ckpts.glob("step-*.pt")] == ["step-000010.pt"]

    # 2. Resumed from step 10, then killed mid-training once step 30 is committed.
    proc = _start(script, run, out, TOY_STEP_SLEEP="0.05")
    _wait_for(checkpoint_path(ckpts, 3 * EVERY).exists, proc)
    _kill(proc)
    assert not out.exists() and not checkpoint_path(ckpts, STEPS).exists()
    assert not any(ckpts.glob(".*tmp*"))  # the first kill's temporary file is gone

    # 3. Resumed from step 30 to the end.
    _finish(_start(script, run, out))
    _finish(ref_proc)
    assert _assert_same_weights(reference, out) == 3 * EVERY
    steps = [r["step"] for r in read_metrics(run / "metrics.jsonl")]
    assert steps == list(range(5, STEPS + 1, 5))  # re-logged steps replaced the first copies


def test_resume_from_an_older_checkpoint_in_process_is_bit_exact(tmp_path: Path) -> None:
    def fit(run: Path) -> Trainer:
        torch.manual_seed(0)
        from test_trainer import ToyDataset, ToyTask

        ds = ToyDataset(n=40)
        cfg = TrainConfig(steps=12, batch_size=16, drop_last=False, checkpoint_every=4,
                          progress=False, device="cpu", log_every=4)  # fmt: skip
        trainer = Trainer(ToyTask(ds), ds, cfg, run)
        trainer.fit()
        return trainer

    sys.path.insert(0, str(TESTS))
    try:
        first = fit(tmp_path)
        weights = {k: v.clone() for k, v in first.task.state_dict().items()}
        newest = checkpoint_path(tmp_path / "checkpoints", 12)
        newest.write_bytes(newest.read_bytes()[:100])  # damaged: resume falls back to step 8
        again = fit(tmp_path)
    finally:
        sys.path.remove(str(TESTS))
    for key, value in again.task.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_sampler_shards_one_permutation_and_restarts_mid_epoch() -> None:
    perm = epoch_permutation(10, seed=5, epoch=2)
    shards = [ResumableSampler(10, seed=5, rank=r, world_size=2) for r in range(2)]
    for s in shards:
        s.set_state(epoch=2)
    assert sorted(list(shards[0]) + list(shards[1])) == list(range(10))
    assert list(shards[0]) == perm[0::2].tolist() and list(shards[1]) == perm[1::2].tolist()
    shards[1].set_state(epoch=2, position=3)
    assert list(shards[1]) == perm[1::2].tolist()[3:] and len(shards[1]) == 2
    assert not torch.equal(perm, epoch_permutation(10, seed=5, epoch=3))
    padded = ResumableSampler(3, rank=1, world_size=2)  # 3 samples, 2 ranks: 2 each
    assert len(padded) == 2
