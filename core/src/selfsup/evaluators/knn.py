"""Weighted k-nearest-neighbour classification on frozen embeddings.

The non-parametric evaluation of Wu, Xiong, Yu & Lin, "Unsupervised Feature
Learning via Non-Parametric Instance Discrimination", CVPR 2018: embeddings are
L2-normalised, the ``k`` training embeddings most cosine-similar to a test
embedding vote for their labels with weight ``exp(s / temperature)``, and the
class with the largest total wins. The defaults ``k=20, temperature=0.07`` are
those of Caron et al., "Emerging Properties in Self-Supervised Vision
Transformers" (DINO), ICCV 2021. ``weighting="majority"`` gives every neighbour
one vote (ties go to the smallest class index).

The protocol has no hyperparameter search, so the validation split is unused:
the training embeddings are the memory bank and the test split is scored.

Metric key: ``knn.accuracy``. It is deterministic, so no ``_std`` is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from selfsup.components import EvalContext, Evaluator, SSLDataset
from selfsup.evaluators.embeddings import (
    class_labels,
    embed_splits,
    require_task,
)
from selfsup.options import (
    check_value,
    one_of,
    option,
    parse_options,
    positive,
    positive_int,
)

NAME = "knn"
WEIGHTINGS = ("temperature", "majority")


@dataclass(frozen=True)
class KNNConfig:
    """Options of :func:`build`."""

    k: int = option(20, positive_int, "neighbours that vote (clamped to the train split)")
    temperature: float = option(0.07, positive, "softness of the weights exp(sim / T)")
    weighting: str = option("temperature", one_of(*WEIGHTINGS),
                            "'temperature' (Wu et al. 2018) or 'majority' (one vote each)")


def build(**options: Any) -> Evaluator:
    """The kNN evaluator; options are the fields of :class:`KNNConfig`."""
    config = parse_options(KNNConfig, options, NAME)

    def evaluate(encoder: nn.Module, dataset: SSLDataset, ctx: EvalContext) -> dict[str, float]:
        require_task(dataset, NAME, ("classification",), "Use linear_probe for regression targets.")
        embedded = embed_splits(encoder, dataset, ctx, ("train", "test"))
        train, test = embedded["train"], embedded["test"]
        accuracy = knn_accuracy(
            train.z,
            class_labels(train.y),
            test.z,
            class_labels(test.y),
            config.k,
            temperature=config.temperature,
            weighting=config.weighting,
        )
        return {f"{NAME}.accuracy": accuracy}

    return evaluate


@torch.no_grad()
def knn_accuracy(
    z_train: np.ndarray | torch.Tensor,
    y_train: np.ndarray | torch.Tensor,
    z_test: np.ndarray | torch.Tensor,
    y_test: np.ndarray | torch.Tensor,
    k: int = 20,
    *,
    temperature: float = 0.07,
    weighting: str = "temperature",
    chunk_size: int = 1024,
) -> float:
    """Accuracy of cosine kNN on ``z_test`` ``[M, D]`` with ``z_train`` ``[N, D]`` as memory.

    Labels are any integer class ids (they need not be contiguous). Tensors stay
    on their device, so the trainer can call this on GPU embeddings for online
    monitoring; numpy arrays are scored on the CPU. Test embeddings are processed
    ``chunk_size`` at a time to bound the ``[chunk, N]`` similarity matrix.
    """
    check_value(NAME, "k", k, positive_int)
    check_value(NAME, "temperature", temperature, positive)
    check_value(NAME, "weighting", weighting, one_of(*WEIGHTINGS))
    bank = torch.as_tensor(z_train).float()
    queries = torch.as_tensor(z_test).float().to(bank.device)
    y_bank = torch.as_tensor(y_train).to(bank.device).reshape(-1)
    y_query = torch.as_tensor(y_test).to(bank.device).reshape(-1)
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"knn_accuracy expects z_train [N, D] and z_test [M, D], got "
            f"{tuple(bank.shape)} and {tuple(queries.shape)}"
        )
    if len(bank) != len(y_bank) or len(queries) != len(y_query):
        raise ValueError(
            f"knn_accuracy: {len(bank)} train embeddings with {len(y_bank)} labels, "
            f"{len(queries)} test embeddings with {len(y_query)} labels; counts must match"
        )
    if len(bank) == 0 or len(queries) == 0:
        raise ValueError("knn_accuracy needs at least one train and one test embedding")
    # Contiguous class ids over both splits, so votes fit a [chunk, n_classes] table.
    _, ids = torch.unique(torch.cat([y_bank, y_query]), return_inverse=True)
    ids_bank, ids_query = ids[: len(y_bank)], ids[len(y_bank) :]
    n_classes = int(ids.max()) + 1
    bank = F.normalize(bank, dim=1)
    queries = F.normalize(queries, dim=1)
    k = min(k, len(bank))
    correct = 0
    for start in range(0, len(queries), chunk_size):
        sim, nearest = (queries[start : start + chunk_size] @ bank.T).topk(k, dim=1)
        if weighting == "temperature":
            # Shifting by each row's best similarity leaves the vote unchanged and
            # keeps exp() finite for small temperatures (exp(1/0.01) overflows float32).
            weights = torch.exp((sim - sim[:, :1]) / temperature)
        else:
            weights = torch.ones_like(sim)
        votes = torch.zeros(len(sim), n_classes, device=bank.device)
        votes.scatter_add_(1, ids_bank[nearest], weights)
        correct += int((votes.argmax(dim=1) == ids_query[start : start + chunk_size]).sum())
    return correct / len(queries)
