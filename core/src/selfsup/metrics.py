"""Training metrics: one JSON object per line in ``metrics.jsonl``, and TensorBoard.

The JSONL file is the record the runner and the tests read; TensorBoard is a
convenience that switches itself off when ``tensorboard`` is not installed.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

import torch

from selfsup.diagnostics import embedding_stats

log = logging.getLogger(__name__)

#: Entries of a task's output that are not scalars to log.
_NOT_LOGGED = ("loss", "embedding")


def step_record(out: dict[str, Any], **known: Any) -> dict[str, Any]:
    """The metrics of one training step: ``known`` values, the task's scalars, diagnostics.

    Reads tensors back from the device, so the trainer calls it on logging steps only.
    ``embedding_stats`` of ``out["embedding"]`` (emb_std, emb_std_min, emb_rank) are
    included when the task returned an embedding of at least two rows.
    """
    record: dict[str, Any] = dict(known)
    record["loss"] = float(out["loss"].detach())
    if not math.isfinite(record["loss"]):
        raise FloatingPointError(
            f"loss is {record['loss']} at step {known.get('step')}; lower TrainConfig.lr, "
            "keep grad_clip on, or use precision='fp32' to find the overflowing operation"
        )
    for key, value in out.items():
        if key in _NOT_LOGGED or isinstance(value, bool):
            continue
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            record[key] = float(value.detach())
        elif isinstance(value, (int, float)):
            record[key] = float(value)
    emb = out.get("embedding")
    if isinstance(emb, torch.Tensor) and emb.ndim == 2 and emb.shape[0] >= 2:
        record.update(embedding_stats(emb))
    return record


def _clean(value: Any) -> Any:
    # JSON has no NaN or infinity; null keeps the line valid and the key present.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """All records of a metrics file, in order."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class MetricsWriter:
    """Appends records to a JSONL file; a resumed run first drops records after its step.

    A run killed after logging step 130 but resumed from the checkpoint of step
    100 logs steps 101-130 again; ``resume_step`` removes the first copies so the
    file has one record per logged step.
    """

    def __init__(self, path: Path, resume_step: int = 0, tensorboard: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._truncate_after(resume_step)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 closed in close()
        self._tb: Any = None
        if tensorboard:
            self._tb = _tensorboard_writer(self.path.parent / "tensorboard", resume_step)

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (it must hold ``"step"``) and flush it to the OS."""
        if "step" not in record:
            raise ValueError(f"a metrics record needs a 'step' key, got keys {sorted(record)}")
        clean = {k: _clean(v) for k, v in record.items()}
        self._file.write(json.dumps(clean, allow_nan=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _truncate_after(self, step: int) -> None:
        kept = []
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a line cut off by a kill mid-write
                # Records without a step are not training records (the runner's evaluation).
                if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
                    kept.append(line.rstrip("\n") + "\n")
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


_tb_missing_reported = False


def _tensorboard_writer(logdir: Path, purge_step: int) -> Any:
    global _tb_missing_reported
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as exc:  # tensorboard is an optional extra
        if not _tb_missing_reported:
            log.debug("TensorBoard logging is off: %s", exc)
            _tb_missing_reported = True
        return None
    # purge_step drops events after the resumed step, as _truncate_after does for JSONL.
    return SummaryWriter(str(logdir), purge_step=purge_step or None)
