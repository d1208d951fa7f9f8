"""Single-cell data as a cell graph: cells are nodes of a kNN graph on an embedding.

The usual single-cell pipeline (Wolf, Angerer and Theis, "SCANPY: large-scale
single-cell gene expression data analysis", Genome Biology 2018): PCA of the
expression matrix, a k-nearest-neighbour graph on the PCA, and the cells'
annotation (a column of ``obs``) as labels. :func:`cell_graph` turns any AnnData
object into a :class:`~selfsup_graph.data.NodeGraphDataset` that way;
:func:`build` (``graph.h5ad``) reads one from an ``.h5ad`` file.

The graph: ``sc.pp.neighbors`` on ``use_rep`` with ``n_neighbors`` (scanpy counts
the cell itself), exact neighbours (``transformer="sklearn"``) and Gaussian
connectivities (``method="gauss"``). The edge set is the symmetrised kNN graph,
which is the same for scanpy's default UMAP connectivities; only the weights,
unused here, differ. UMAP's connectivities and pynndescent compile numba code on
first use (20-40 s a process on these machines); the choices above take well
under a second for a few thousand cells and are deterministic.

Node features are the expression matrix ``X`` (``features="expression"``) or the
PCA (``features="pca"``); the PCA is always kept as ``data.pca`` so that the
``graph.pca`` baseline can serve it as fixed features (the classic baseline of a
linear classifier on the PCA).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from selfsup.api import TaskSpec

from ..data import GraphDataError, NodeGraphDataset
from ..views import GraphViews, graph_views

if TYPE_CHECKING:
    from anndata import AnnData

FEATURES = ("expression", "pca")
#: a dense float32 expression matrix above this many entries (8 GiB) is refused
MAX_DENSE = 2**31


def build(
    *,
    path: str | Path | None = None,
    label_key: str | None = None,
    use_rep: str = "X_pca",
    features: str = "expression",
    n_neighbors: int = 15,
    n_pcs: int = 50,
    seed: int = 0,
    holdout_edges: float = 0.0,
    normalize: bool = False,
    views: Mapping[str, Any] | None = None,
) -> NodeGraphDataset:
    """Read an ``.h5ad`` file (``graph.h5ad``) and build its cell graph.

    ``label_key``: the ``obs`` column of cell types (cells without one are dropped).
    ``use_rep``: the ``obsm`` embedding the kNN graph is built on (``"X_pca"`` is
    computed when absent; ``"X"`` uses the expression matrix). ``features``:
    ``"expression"`` (dense ``X``) or ``"pca"``. ``n_pcs``: PCA components, at most
    cells - 1 and genes - 1 (a PCA already in the file with that many is reused).
    ``n_neighbors``: k of the kNN graph, the cell itself included (scanpy's
    convention). ``normalize=True`` is for raw counts only: ``sc.pp.normalize_total``
    then ``sc.pp.log1p`` before the PCA; data that is already normalised or scaled
    must not be normalised again (refused when ``X`` has negative values). Without
    it, integer-valued ``X`` gets a warning. ``views``: the graph views table
    (:class:`~selfsup_graph.views.GraphViews`).
    """
    if path is None:
        raise ValueError(
            "graph.h5ad needs the .h5ad file to read: pass path=... "
            "(e.g. --set dataset.path=/data/cells.h5ad)"
        )
    file = Path(path).expanduser()
    if not file.is_file():
        raise FileNotFoundError(
            f"graph.h5ad: no file at path={str(path)!r} (resolved to "
            f"{file.resolve()}); pass path= to an existing .h5ad file, "
            "e.g. one written by adata.write_h5ad(...)"
        )
    import anndata

    try:
        adata = anndata.read_h5ad(file)
    except (OSError, KeyError) as err:  # h5py's errors for a file that is not AnnData
        raise ValueError(
            f"graph.h5ad: {str(file)!r} could not be read as an .h5ad AnnData "
            f"file ({err}); write it with adata.write_h5ad(...)"
        ) from err
    return cell_graph(
        adata,
        name="graph.h5ad",
        label_key=label_key,
        use_rep=use_rep,
        features=features,
        n_neighbors=n_neighbors,
        n_pcs=n_pcs,
        seed=seed,
        holdout_edges=holdout_edges,
        normalize=normalize,
        views=graph_views(views),
        source=f"AnnData file {file}",
    )


def cell_graph(
    adata: AnnData,
    *,
    name: str,
    label_key: str | None,
    use_rep: str = "X_pca",
    features: str = "expression",
    n_neighbors: int = 15,
    n_pcs: int = 50,
    seed: int = 0,
    holdout_edges: float = 0.0,
    normalize: bool = False,
    views: GraphViews | None = None,
    source: str = "",
) -> NodeGraphDataset:
    """The kNN cell graph of ``adata`` labelled by ``obs[label_key]`` (see the module doc).

    ``adata`` gains ``obsm["X_pca"]`` (when absent) and the neighbour matrices
    under ``obsp["selfsup_knn_*"]``; pass a copy to keep yours unchanged. The
    dataset keeps ``class_names`` (category ``i`` is label ``i``), ``cell_names``
    (``obs_names`` of the nodes, in order) and ``n_dropped`` (cells without a label).
    """
    import scanpy as sc

    where = f"dataset {name!r}" + (f" ({source})" if source else "")
    _check_options(where, label_key, features, n_neighbors, n_pcs)
    if label_key not in adata.obs.columns:
        raise GraphDataError(
            f"{where}: obs has no column label_key={label_key!r}; its obs "
            f"columns are {list(adata.obs.columns)}: pass label_key= one of them"
        )
    missing = np.asarray(adata.obs[label_key].isna())
    n_dropped = int(missing.sum())
    if n_dropped == adata.n_obs:
        raise GraphDataError(f"{where}: every cell's {label_key!r} is missing (NaN)")
    if n_dropped:  # unlabelled cells cannot be nodes: every node needs a label for the splits
        warnings.warn(
            f"{where}: dropped {n_dropped} of {adata.n_obs} cells whose "
            f"{label_key!r} is missing (NaN)",
            stacklevel=2,
        )
        adata = adata[~missing].copy()
    labels = adata.obs[label_key].astype("category").cat.remove_unused_categories()
    class_names = [str(c) for c in labels.cat.categories]
    if len(class_names) < 2:
        raise GraphDataError(
            f"{where}: obs[{label_key!r}] has {len(class_names)} class "
            f"{class_names}; classification needs at least 2"
        )
    if adata.X is None:
        raise GraphDataError(f"{where}: the AnnData object has no expression matrix X")
    _check_finite(adata.X, where, "X", adata.obs_names, adata.var_names)
    if normalize:
        _normalize(adata, where)
    elif _looks_like_counts(adata.X):
        warnings.warn(
            f"{where}: X holds non-negative integers (raw counts?); pass "
            "normalize=True to log-normalise them before the PCA",
            stacklevel=2,
        )

    n_comps = min(n_pcs, adata.n_obs - 1, adata.n_vars - 1)  # PCA's limit on small data
    have = adata.obsm["X_pca"].shape[1] if "X_pca" in adata.obsm else 0
    if normalize or have < n_comps:  # keep a PCA the file already has (scanpy's convention)
        sc.tl.pca(adata, n_comps=n_comps, random_state=seed)
    pca = np.asarray(adata.obsm["X_pca"][:, :n_comps], dtype=np.float32)

    if use_rep not in ("X", "X_pca") and use_rep not in adata.obsm:
        raise GraphDataError(
            f"{where}: use_rep={use_rep!r} is not in obsm; its obsm keys are "
            f"{list(adata.obsm.keys())} (or 'X' for the expression matrix, "
            "'X_pca' to compute a PCA)"
        )
    if use_rep not in ("X", "X_pca"):
        _check_finite(
            np.asarray(adata.obsm[use_rep]), where, f"obsm[{use_rep!r}]", adata.obs_names, None
        )
    sc.pp.neighbors(
        adata,
        n_neighbors=min(n_neighbors, adata.n_obs - 1),
        use_rep=use_rep,
        n_pcs=n_comps if use_rep == "X_pca" else None,
        transformer="sklearn",
        method="gauss",
        random_state=seed,
        key_added="selfsup_knn",
    )
    edge_index = _edge_index(adata.obsp["selfsup_knn_connectivities"])

    if features == "pca":
        x = torch.from_numpy(pca.copy())
    else:
        x = torch.from_numpy(_dense(adata.X, where))
    from torch_geometric.data import Data

    y = torch.from_numpy(np.array(labels.cat.codes, dtype=np.int64))  # a writable copy
    data = Data(x=x, edge_index=edge_index, y=y, pca=torch.from_numpy(pca))
    summary = (
        f"{source or 'AnnData'}: {adata.n_obs} cells x {adata.n_vars} genes, kNN graph "
        f"(k={n_neighbors}) on {use_rep}, {n_comps} PCs, labels obs[{label_key!r}]"
        + (f"; {n_dropped} cells without a label dropped" if n_dropped else "")
    )
    dataset = NodeGraphDataset(
        name,
        data,
        task=TaskSpec("classification", len(class_names)),
        views=views,
        source=summary,
        seed=seed,
        holdout_edges=holdout_edges,
    )
    dataset.class_names = class_names  # type: ignore[attr-defined]
    dataset.cell_names = [str(c) for c in adata.obs_names]  # type: ignore[attr-defined]
    dataset.n_dropped = n_dropped  # type: ignore[attr-defined]
    return dataset


def _check_options(
    where: str, label_key: str | None, features: str, n_neighbors: int, n_pcs: int
) -> None:
    if label_key is None:
        raise ValueError(
            f"{where}: pass label_key= the obs column of cell labels "
            "(e.g. --set dataset.label_key=cell_type)"
        )
    if features not in FEATURES:
        raise ValueError(f"{where}: features={features!r}; use one of {list(FEATURES)}")
    if n_neighbors < 2:
        raise ValueError(f"{where}: n_neighbors={n_neighbors}; use at least 2")
    if n_pcs < 1:
        raise ValueError(f"{where}: n_pcs={n_pcs}; use at least 1")


def _check_finite(matrix: Any, where: str, field: str, rows: Any, cols: Any) -> None:
    """Reject NaN/inf in a dense or sparse matrix, naming the first cell (and gene)."""
    import scipy.sparse as sp

    if sp.issparse(matrix):
        coo = matrix.tocoo()
        bad = ~np.isfinite(coo.data)
        if not bad.any():
            return
        first = int(np.flatnonzero(bad)[0])
        row, col = int(coo.row[first]), int(coo.col[first])
        value, count = coo.data[first], bad.sum()
    else:
        arr = np.asarray(matrix)
        bad = ~np.isfinite(arr)
        if not bad.any():
            return
        row, col = (int(v) for v in np.argwhere(bad)[0])
        value, count = arr[row, col], bad.sum()
    gene = f", gene {cols[col]!r}" if cols is not None else f", column {col}"
    raise GraphDataError(
        f"{where}: {field} has {int(count)} non-finite values, first at cell "
        f"{rows[row]!r}{gene} ({value}); impute them or drop those cells/genes "
        "before building the dataset"
    )


def _looks_like_counts(matrix: Any) -> bool:
    """True when a sample of ``X`` is non-negative integers with some large values."""
    import scipy.sparse as sp

    values = np.asarray(matrix.data if sp.issparse(matrix) else matrix).ravel()[:100_000]
    return bool(
        values.size
        and values.min() >= 0
        and values.max() > 10
        and np.all(values == np.round(values))
    )


def _normalize(adata: AnnData, where: str) -> None:
    """Library-size normalisation and log1p, for raw counts only."""
    import scanpy as sc
    import scipy.sparse as sp

    low = adata.X.min() if sp.issparse(adata.X) else np.min(adata.X)
    if low < 0:
        raise ValueError(
            f"{where}: normalize=True is for raw counts, but X has negative values "
            f"(min {float(low)}): it is already scaled; pass normalize=False"
        )
    if not np.issubdtype(adata.X.dtype, np.floating):
        adata.X = adata.X.astype(np.float32)
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)


def _edge_index(connectivities: Any) -> torch.Tensor:
    """Symmetric ``[2, E]`` edges of a sparse connectivity matrix, without self loops."""
    import scipy.sparse as sp

    adj = sp.coo_matrix(connectivities)
    adj = (adj + adj.T).tocoo()  # scanpy's matrix is symmetric; make sure of it
    keep = (adj.row != adj.col) & (adj.data != 0)
    row, col = adj.row[keep], adj.col[keep]
    order = np.lexsort((col, row))
    return torch.from_numpy(np.stack([row[order], col[order]]).astype(np.int64))


def _dense(matrix: Any, where: str) -> np.ndarray:
    import scipy.sparse as sp

    n, g = matrix.shape
    if n * g > MAX_DENSE:
        raise ValueError(
            f"{where}: features='expression' needs a dense {n} x {g} matrix "
            f"({n * g * 4 / 2**30:.0f} GiB); pass features='pca' or keep fewer "
            "genes (e.g. highly variable ones) first"
        )
    dense = matrix.toarray() if sp.issparse(matrix) else np.asarray(matrix)
    return np.ascontiguousarray(dense, dtype=np.float32)
