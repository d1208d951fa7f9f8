"""The graph plugin's baselines: fixed features that pretrained encoders should beat.

``graph.pca`` (:func:`build_pca`): the PCA of expression that single-cell datasets
(``graph.pbmc68k``, ``graph.h5ad``) store as ``data.pca``, as fixed node features:
a linear probe on it is the classic single-cell baseline, a logistic regression on
the expression PCA. Before selfsup 0.2 it was registered as an encoder and named
``encoder:graph.pca`` in benchmarks; it computes the same rows.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from selfsup.api import BaselineContext, NotApplicable, SSLDataset

from .data import NodeGraphDataset


class NodeAttribute(nn.Module):
    """A stored node matrix (e.g. the expression PCA) as fixed embeddings, no parameters.

    The ``embedding`` face: ``embed(data)`` is ``data.<attribute>`` ``[N, width]``.
    """

    def __init__(self, attribute: str, width: int) -> None:
        super().__init__()
        self.attribute, self.embed_dim = attribute, width

    def embed(self, data: Any) -> torch.Tensor:
        return getattr(data, self.attribute).float()  # type: ignore[no-any-return]

    def forward(self, data: Any) -> torch.Tensor:
        return self.embed(data)


def build_pca(dataset: SSLDataset, context: BaselineContext) -> NodeAttribute:
    """``graph.pca``: the expression PCA a single-cell graph dataset stores as ``data.pca``."""
    if not isinstance(dataset, NodeGraphDataset) or "pca" not in dataset.data:
        raise NotApplicable(
            f"baseline graph.pca needs a single-cell graph dataset that stores the "
            f"expression PCA (graph.pbmc68k, graph.h5ad); {dataset.name!r} has none"
        )
    return NodeAttribute("pca", int(dataset.data.pca.shape[1]))
