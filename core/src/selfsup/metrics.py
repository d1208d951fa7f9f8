"""The metrics of one training step (written by :class:`selfsup.rundir.MetricsWriter`)."""

from __future__ import annotations

import math
from typing import Any

import torch

from selfsup.diagnostics import embedding_stats

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


