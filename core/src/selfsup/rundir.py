"""The run folder: its file names, its one metrics file, and atomic writes.

A run folder holds::

    config.toml          the resolved experiment (defaults filled in)
    metrics.jsonl        one JSON object per line: {"phase": "train", "step": ...} records,
                         then {"phase": "eval", ...} lines (one per evaluation)
    checkpoints/         resumable training state (a re-run resumes from it)
    encoder.safetensors  the exported encoder weights
    encoder.json         its card: config, plugin versions, data fingerprint, metrics
    summary.md           a human-readable summary

Every file but ``metrics.jsonl`` is written atomically (:func:`atomic_path`): to a
temporary file in the same folder, flushed and fsynced, renamed over its name, and
the folder fsynced, so a crash leaves the old file or the new one, never half of one.
``metrics.jsonl`` is appended line by line; :class:`MetricsWriter` drops the records
after a resumed step, so the file has one record per logged step.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONFIG = "config.toml"
METRICS = "metrics.jsonl"
CHECKPOINTS = "checkpoints"
ENCODER_WEIGHTS = "encoder.safetensors"
ENCODER_CARD = "encoder.json"
SUMMARY = "summary.md"

#: Marks the temporary file of an atomic write: ``.<name>.tmp-<pid>`` beside ``<name>``.
TEMPORARY = ".tmp-"

#: The phases of metrics.jsonl records.
TRAIN = "train"
EVAL = "eval"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success, commit it over ``path``.

    The caller writes the temporary file by any means (``open``, ``torch.save``,
    ``safetensors``); it is then fsynced and renamed with ``os.replace`` (atomic on
    POSIX), and the folder is fsynced. On an exception the temporary file is removed
    and ``path`` is untouched.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}{TEMPORARY}{os.getpid()}")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open directories; rename is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        log.debug("could not fsync directory %s", directory)
    finally:
        os.close(fd)


def append_eval(run_dir: Path, metrics: Mapping[str, float], **info: Any) -> None:
    """Append one ``{"phase": "eval", ...}`` line (``info``: evaluators, seeds...)."""
    record = {"phase": EVAL, **info, **{k: _clean(float(v)) for k, v in metrics.items()}}
    with open(Path(run_dir) / METRICS, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, allow_nan=False) + "\n")


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
        clean = {"phase": TRAIN, **{k: _clean(v) for k, v in record.items()}}
        self._file.write(json.dumps(clean, allow_nan=False) + "\n")
        self._file.flush()
        if self._tb is not None:
            step = int(record["step"])
            for key, value in record.items():
                number = isinstance(value, (int, float)) and math.isfinite(value)
                if key not in ("step", "phase") and number:
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
                # Evaluation records have no step and are kept.
                if not isinstance(record, dict) or int(record.get("step", 0)) <= step:
                    kept.append(line.rstrip("\n") + "\n")
        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            f.writelines(kept)


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
