"""scanpy's bundled ``pbmc68k_reduced`` as a cell graph (``graph.pbmc68k``).

A subsample of the 68k peripheral blood mononuclear cells of Zheng et al.,
"Massively parallel digital transcriptional profiling of single cells", Nature
Communications 8, 14049 (2017), shipped inside scanpy (nothing is downloaded):
700 cells x 765 genes. Labels are the 10 cell types of ``obs["bulk_labels"]``,
very unequal: 240 Dendritic cells down to 8 CD4+/CD45RA+/CD25- naive T cells.

``X`` is already normalised, log-transformed and scaled per gene (it has negative
values, minimum about -2.0), so it is used as it is: normalising it again would
be wrong. The file's own ``X_pca`` (50 components) is used for the kNN graph and
kept as ``data.pca``. The graph is built by
:func:`selfsup_graph.datasets.anndata.cell_graph` (about 0.5 s).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..data import NodeGraphDataset
from ..views import graph_views
from .anndata import cell_graph


def build(
    *,
    features: str = "expression",
    n_neighbors: int = 15,
    n_pcs: int = 50,
    seed: int = 0,
    holdout_edges: float = 0.0,
    views: Mapping[str, Any] | None = None,
) -> NodeGraphDataset:
    """``features``: ``"expression"`` (765 scaled genes) or ``"pca"`` (``n_pcs`` columns)."""
    import scanpy as sc

    return cell_graph(
        sc.datasets.pbmc68k_reduced(),
        name="graph.pbmc68k",
        label_key="bulk_labels",
        use_rep="X_pca",
        features=features,
        n_neighbors=n_neighbors,
        n_pcs=n_pcs,
        seed=seed,
        holdout_edges=holdout_edges,
        views=graph_views(views),
        source="scanpy.datasets.pbmc68k_reduced (Zheng et al. 2017)",
    )
