"""Frozen embeddings, and the bookkeeping every core evaluator shares.

:func:`extract_embeddings` runs an encoder over a labelled split and returns
numpy arrays; the frozen-embedding protocols (linear probe, kNN, k-means, CKA)
then never touch the encoder again. The rest of this module is what those
evaluators and fine-tuning have in common, kept in one place so that they agree:

- splits: the dataset's own ``"val"`` when it has one, otherwise a seeded,
  stratified validation split carved out of ``"train"`` (:func:`carve_validation`);
- label fractions: seeded, class-balanced subsets of the training labels that
  keep at least one example of every class (:func:`stratified_subset`), as in
  the 1%/10% ImageNet subsets of Zhai et al., "S4L: Self-Supervised
  Semi-Supervised Learning", ICCV 2019, used by SimCLR (Chen et al., ICML 2020);
- metric keys: ``"<evaluator>.<metric>"``, ``"@10%"`` appended for a label
  fraction below 1, and the spread over ``ctx.seeds`` under the same key with
  ``"_std"`` appended (:func:`summarise_seeds`);
- options: read by :func:`selfsup.options.parse_options`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from selfsup.batching import move_to
from selfsup.components import EvalContext, SSLDataset

# -- embeddings -----------------------------------------------------------------------


def extract_embeddings(
    encoder: nn.Module,
    dataset: SSLDataset,
    split: str,
    ctx: EvalContext,
    indices: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings ``Z`` ``[N, D]`` (float32) and labels ``y`` ``[N, ...]`` of a split.

    The encoder runs in eval mode (dropout off, batch-norm statistics frozen)
    without gradients, on ``ctx.device``; its train/eval mode is restored
    afterwards, but it stays on ``ctx.device`` (``nn.Module.to`` works in place and
    moving it back would cost a copy per call). Batches come from
    ``dataset.labelled_batches``, so a dataset whose samples are not independent
    (the nodes of one graph) decides what the encoder sees and which output
    ``rows`` carry labels. ``indices`` restricts the split, as there.
    """
    device = torch.device(ctx.device)
    was_training = encoder.training
    encoder.to(device)
    encoder.eval()
    zs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    try:
        with torch.no_grad():
            for batch, y, rows in dataset.labelled_batches(split, ctx.batch_size, indices=indices):
                z = _embed(encoder, move_to(batch, device))
                if not isinstance(z, torch.Tensor) or z.ndim != 2:
                    shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
                    raise ValueError(
                        f"encoder {type(encoder).__name__} must return embeddings [B, D] "
                        f"for evaluation, got {shape}"
                    )
                if rows is not None:
                    z = z[rows.to(z.device)]
                y_np = torch.as_tensor(y).detach().cpu().numpy()
                if z.shape[0] != y_np.shape[0]:
                    raise ValueError(
                        f"dataset {dataset.name!r}, split {split!r}: the encoder gave "
                        f"{z.shape[0]} labelled rows but the batch has {y_np.shape[0]} labels; "
                        "labelled_batches must yield `rows` selecting one output row per label"
                    )
                # float() first: numpy has no bfloat16, and probes want float32 anyway
                zs.append(z.detach().float().cpu().numpy())
                ys.append(y_np)
    finally:
        encoder.train(was_training)
    if not zs:
        raise ValueError(
            f"dataset {dataset.name!r}, split {split!r} has no labelled samples"
            + ("" if indices is None else f" among the {len(indices)} requested indices")
        )
    return np.concatenate(zs), np.concatenate(ys)


def _embed(encoder: Any, batch: Any) -> Any:
    """The embedding face (typed Any: faces are declared on the EncoderSpec)."""
    return encoder.embed(batch)


@dataclass(frozen=True)
class Embedded:
    """Embeddings and labels of one labelled split (or a subset of one)."""

    z: np.ndarray
    y: np.ndarray

    def take(self, positions: np.ndarray) -> Embedded:
        return Embedded(self.z[positions], self.y[positions])

    def __len__(self) -> int:
        return int(self.z.shape[0])


def embed_splits(
    encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext, splits: Iterable[str]
) -> dict[str, Embedded]:
    """Embed each of ``splits`` that the dataset has (its ``splits`` attribute).

    ``"train"`` and ``"test"`` are required when asked for; a missing ``"val"`` is
    left out, for :func:`train_and_val` to carve one.
    """
    out: dict[str, Embedded] = {}
    for split in splits:
        if split not in dataset.splits:
            if split == "val":
                continue
            raise ValueError(
                f"dataset {dataset.name!r} has no labelled split {split!r}; "
                f"its labelled splits are {list(dataset.splits)}"
            )
        out[split] = Embedded(*extract_embeddings(encoder, dataset, split, ctx))
    return out


def train_and_val(
    embedded: Mapping[str, Embedded], seed: int, *, stratify: bool, val_fraction: float = 0.2
) -> tuple[Embedded, Embedded]:
    """The training and validation embeddings for one seed.

    The dataset's own ``"val"`` when it has one (the same for every seed);
    otherwise ``val_fraction`` of ``"train"``, carved by :func:`carve_validation`.
    """
    train = embedded["train"]
    if "val" in embedded:
        return train, embedded["val"]
    fit, val = carve_validation(train.y, seed, val_fraction, stratify=stratify)
    return train.take(fit), train.take(val)


# -- splits and label fractions -------------------------------------------------------


def class_labels(y: np.ndarray) -> np.ndarray:
    """Classification labels as a 1-D array (``[N, 1]`` label columns are flattened)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"classification labels must be one per sample, got shape {y.shape}; "
            "multi-label targets need a domain evaluator"
        )
    return y


def _rounded(x: float) -> int:
    # Half-up, not Python's half-to-even: 2.5% of 100 should keep 3, not 2.
    return int(np.floor(x + 0.5))


def stratified_subset(
    y: np.ndarray, fraction: float, seed: int, *, stratify: bool = True
) -> np.ndarray:
    """Sorted positions of a seeded subset holding about ``fraction`` of ``y``.

    With ``stratify`` (classification), each class keeps
    ``max(1, round(fraction * n_class))`` of its examples, drawn at random: every
    class present stays present however small the fraction, so a 1% subset of a
    set with 100 classes holds at least 100 examples, possibly more than 1%.
    Without it (regression), ``max(1, round(fraction * N))`` examples are drawn.
    ``fraction >= 1`` returns every position.
    """
    n = len(y)
    if not fraction > 0.0:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    if fraction >= 1.0:
        return np.arange(n)
    rng = np.random.default_rng([seed, 1])  # its own stream: independent of the val carve
    if not stratify:
        return np.sort(rng.choice(n, size=max(1, _rounded(fraction * n)), replace=False))
    y = class_labels(y)
    chosen = []
    for cls in np.unique(y):
        members = np.flatnonzero(y == cls)
        take = min(len(members), max(1, _rounded(fraction * len(members))))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))


def carve_validation(
    y: np.ndarray, seed: int, fraction: float = 0.2, *, stratify: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Split positions of ``y`` into ``(fit, val)``, seeded, for datasets without "val".

    With ``stratify``, each class gives ``round(fraction * n_class)`` examples to
    validation but keeps at least one for fitting, so no class vanishes from the
    training side.
    """
    n = len(y)
    rng = np.random.default_rng([seed, 0])
    val_parts: list[np.ndarray] = []
    if stratify:
        y = class_labels(y)
        for cls in np.unique(y):
            members = np.flatnonzero(y == cls)
            take = min(len(members) - 1, _rounded(fraction * len(members)))
            val_parts.append(rng.choice(members, size=take, replace=False))
    else:
        take = min(n - 1, max(1, _rounded(fraction * n)))
        val_parts.append(rng.choice(n, size=max(take, 0), replace=False))
    val = np.sort(np.concatenate(val_parts)) if val_parts else np.zeros(0, dtype=np.int64)
    if len(val) == 0:
        raise ValueError(
            f"cannot carve a validation split from {n} training samples; "
            "give the dataset a 'val' split or more training samples"
        )
    fit = np.setdiff1d(np.arange(n), val)
    return fit, val


# -- metric keys and summaries --------------------------------------------------------


def fraction_suffix(fraction: float) -> str:
    """``""`` for all labels, ``"@10%"`` for 0.1, ``"@0.5%"`` for 0.005."""
    return "" if fraction >= 1.0 else f"@{fraction * 100:g}%"


def summarise_seeds(per_seed: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over seeds, and its sample std under ``key + "_std"``.

    The std uses ``ddof=1`` (the spread one would expect from another seed). With a
    single seed there is no spread, and no ``_std`` key: tables show none.
    """
    if not per_seed:
        raise ValueError("no per-seed results to summarise; ctx.seeds is empty")
    out: dict[str, float] = {}
    for key in per_seed[0]:
        values = np.asarray([result[key] for result in per_seed], dtype=np.float64)
        out[key] = float(values.mean())
        if len(values) > 1:
            out[f"{key}_std"] = float(values.std(ddof=1))
    return out


def require_seeds(ctx: EvalContext, evaluator: str) -> tuple[int, ...]:
    seeds = tuple(int(s) for s in ctx.seeds)
    if not seeds:
        raise ValueError(f"{evaluator}: EvalContext.seeds is empty; pass e.g. seeds=(0, 1, 2)")
    return seeds


def require_task(
    dataset: SSLDataset, evaluator: str, kinds: Sequence[str], instead: str = ""
) -> str:
    """The dataset's task kind, or a ValueError when ``evaluator`` cannot use it."""
    kind = dataset.task.kind
    if kind not in kinds:
        raise ValueError(
            f"{evaluator} needs a dataset with a {' or '.join(kinds)} task; dataset "
            f"{dataset.name!r} has task kind {kind!r}" + (f". {instead}" if instead else "")
        )
    return kind
