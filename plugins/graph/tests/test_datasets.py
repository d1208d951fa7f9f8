"""The dataset readers on real (small) files: scanpy, AnnData, Planetoid, TUDataset, motifs.

Every file is written by the test into ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from selfsup_graph.data import GraphDataError, NodeGraphDataset


def _registry_dataset(key: str):  # the factories as the runner reaches them
    from selfsup.api import Registry

    reg = Registry(plugins=["graph"], strict=True)
    reg.load()
    return reg.get("dataset", key)


def _undirected_without_loops(edge_index: torch.Tensor) -> None:
    from torch_geometric.utils import contains_self_loops, is_undirected

    assert is_undirected(edge_index)
    assert not contains_self_loops(edge_index)


def _splits_partition(ds: NodeGraphDataset) -> None:
    masks = torch.stack([ds.data[f"{s}_mask"] for s in ("train", "val", "test")])
    assert torch.equal(masks.sum(0), torch.ones(ds.num_nodes, dtype=torch.long))


# -- pbmc68k (scanpy's bundled file) --------------------------------------------------------
@pytest.fixture(scope="module")
def pbmc() -> NodeGraphDataset:
    return _registry_dataset("graph.pbmc68k").build()


def test_pbmc68k_graph(pbmc: NodeGraphDataset) -> None:
    assert pbmc.name == "graph.pbmc68k"
    assert pbmc.num_nodes == 700 and pbmc.num_features == 765
    assert pbmc.task.n_classes == 10 and len(pbmc.class_names) == 10
    assert "Dendritic" in pbmc.class_names
    assert np.bincount(pbmc.data.y.numpy()).tolist()[pbmc.class_names.index("Dendritic")] == 240
    _undirected_without_loops(pbmc.data.edge_index)
    _splits_partition(pbmc)
    assert pbmc.data.pca.shape == (700, 50) and pbmc.data.pca.dtype == torch.float32
    # about n_neighbors - 1 neighbours a cell, more where kNN is not mutual
    assert 14 <= pbmc.data.edge_index.shape[1] / 700 <= 30


def test_pbmc68k_is_deterministic_and_pca_features(pbmc: NodeGraphDataset) -> None:
    from selfsup_graph.datasets import pbmc68k

    again = pbmc68k.build(features="pca", n_pcs=20)
    assert again.num_features == 20
    assert torch.equal(again.data.x, again.data.pca)
    same = pbmc68k.build()
    assert torch.equal(same.data.edge_index, pbmc.data.edge_index)
    assert torch.equal(same.data.train_mask, pbmc.data.train_mask)


# -- graph.h5ad ---------------------------------------------------------------------------
def _write_h5ad(path: Path, *, nan_cell: int | None = None, counts: bool = False) -> Path:
    """60 cells x 30 genes, sparse X, 3 clustered cell types, one cell without a label."""
    import anndata
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    types = np.repeat(["B", "T", "NK"], 20)
    centres = rng.normal(0, 3, size=(3, 30))
    x = np.abs(centres[np.repeat(np.arange(3), 20)] + rng.normal(0, 1, size=(60, 30)))
    x[x < 1.0] = 0.0  # sparse, as expression is
    if counts:
        x = np.round(x * 5)
    if nan_cell is not None:
        x[nan_cell, 3] = np.nan
    labels = pd.Categorical(types.astype(object))
    labels[7] = np.nan
    obs = pd.DataFrame({"cell_type": labels, "batch": "b1"}, index=[f"cell{i}" for i in range(60)])
    var = pd.DataFrame(index=[f"gene{j}" for j in range(30)])
    adata = anndata.AnnData(X=sp.csr_matrix(x.astype(np.float32)), obs=obs, var=var)
    adata.obsm["X_emb"] = rng.normal(size=(60, 5)).astype(np.float32)
    adata.write_h5ad(path)
    return path


def test_h5ad_through_the_registry(tmp_path: Path) -> None:
    path = _write_h5ad(tmp_path / "cells.h5ad")
    spec = _registry_dataset("graph.h5ad")
    with pytest.warns(UserWarning, match="dropped 1 of 60 cells"):
        ds = spec.build(path=str(path), label_key="cell_type", n_neighbors=6)
    assert ds.name == "graph.h5ad" and ds.n_dropped == 1
    assert ds.num_nodes == 59 and ds.num_features == 30
    assert ds.class_names == ["B", "NK", "T"] and ds.task.n_classes == 3
    assert "cell7" not in ds.cell_names and len(ds.cell_names) == 59
    assert ds.data.pca.shape == (59, 29)  # n_pcs=50 capped by 30 genes
    _undirected_without_loops(ds.data.edge_index)
    _splits_partition(ds)
    # neighbours share a type: the kNN graph carries the labels
    src, dst = ds.data.edge_index
    assert (ds.data.y[src] == ds.data.y[dst]).float().mean() > 0.9


def test_h5ad_other_rep_pca_features_and_holdout(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    path = _write_h5ad(tmp_path / "cells.h5ad")
    with pytest.warns(UserWarning, match="dropped"):
        a = reader.build(
            path=path,
            label_key="cell_type",
            use_rep="X_emb",
            features="pca",
            n_pcs=8,
            n_neighbors=5,
            holdout_edges=0.2,
        )
    with pytest.warns(UserWarning, match="dropped"):
        b = reader.build(
            path=path,
            label_key="cell_type",
            use_rep="X_emb",
            features="pca",
            n_pcs=8,
            n_neighbors=5,
            holdout_edges=0.2,
        )
    assert a.num_features == 8
    assert torch.equal(a.data.x, b.data.x) and torch.equal(a.data.edge_index, b.data.edge_index)
    pos, neg = a.link_split("test")
    assert pos.shape[0] == 2 and pos.shape == neg.shape


def test_h5ad_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    path = _write_h5ad(tmp_path / "cells.h5ad")
    with pytest.raises(GraphDataError) as err:
        reader.build(path=path, label_key="celltype")
    msg = str(err.value)
    assert "graph.h5ad" in msg and "'celltype'" in msg
    assert "'cell_type'" in msg and "'batch'" in msg and "label_key=" in msg


def test_h5ad_missing_rep_lists_obsm_keys(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    path = _write_h5ad(tmp_path / "cells.h5ad")
    with pytest.warns(UserWarning), pytest.raises(GraphDataError, match=r"X_scvi.*'X_emb'"):
        reader.build(path=path, label_key="cell_type", use_rep="X_scvi")


def test_h5ad_nan_expression_names_cell_and_gene(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    path = _write_h5ad(tmp_path / "cells.h5ad", nan_cell=12)
    with pytest.warns(UserWarning), pytest.raises(GraphDataError) as err:
        reader.build(path=path, label_key="cell_type")
    msg = str(err.value)
    assert "graph.h5ad" in msg and "'cell12'" in msg and "'gene3'" in msg


def test_h5ad_path_errors(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    with pytest.raises(ValueError, match=r"pass path=\.\.\."):
        reader.build(label_key="cell_type")
    missing = tmp_path / "nowhere.h5ad"
    with pytest.raises(FileNotFoundError, match=r"nowhere.h5ad") as err:
        reader.build(path=missing, label_key="cell_type")
    assert "pass path=" in str(err.value)
    with pytest.raises(ValueError, match="label_key="):
        reader.build(path=_write_h5ad(tmp_path / "cells.h5ad"))


def test_h5ad_counts_warn_and_normalize(tmp_path: Path) -> None:
    from selfsup_graph.datasets import anndata as reader

    path = _write_h5ad(tmp_path / "counts.h5ad", counts=True)
    with (
        pytest.warns(UserWarning, match="dropped"),
        pytest.warns(UserWarning, match="normalize=True"),
    ):
        reader.build(path=path, label_key="cell_type")
    with pytest.warns(UserWarning, match="dropped"):
        ds = reader.build(path=path, label_key="cell_type", normalize=True)
    assert float(ds.data.x.max()) < 10  # log1p of counts per 10,000


def test_normalize_refuses_scaled_data() -> None:
    import anndata
    import pandas as pd

    from selfsup_graph.datasets.anndata import cell_graph

    rng = np.random.default_rng(0)
    scaled = anndata.AnnData(
        X=rng.normal(size=(20, 6)).astype(np.float32),
        obs=pd.DataFrame({"t": ["a", "b"] * 10}, index=[f"c{i}" for i in range(20)]),
    )
    with pytest.raises(ValueError, match=r"already scaled.*normalize=False"):
        cell_graph(scaled, name="test.scaled", label_key="t", normalize=True)


# -- Planetoid raw files --------------------------------------------------------------------
def _write_planetoid(raw: Path, name: str = "tiny") -> dict[str, np.ndarray]:
    """Planetoid's raw format (as torch_geometric.io.read_planetoid_data reads it).

    560 nodes: 21 labelled training nodes (x, y), 530 non-test nodes (allx, ally),
    30 test nodes (tx, ty) listed in test.index in a shuffled order; PyG's public
    split takes the 500 nodes after the training ones for validation.
    """
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, n_all, n_train, n_cls = 560, 530, 21, 3
    labels = rng.integers(0, n_cls, size=n)
    feats = (rng.random((n, 16)) < 0.3).astype(np.float32)
    test_index = rng.permutation(np.arange(n_all, n))
    onehot = np.eye(n_cls, dtype=np.int64)
    objects = {
        "x": sp.csr_matrix(feats[:n_train]),
        "y": onehot[labels[:n_train]],
        "allx": sp.csr_matrix(feats[:n_all]),
        "ally": onehot[labels[:n_all]],
        "tx": sp.csr_matrix(feats[test_index]),
        "ty": onehot[labels[test_index]],
    }
    graph: dict[int, list[int]] = {i: [] for i in range(n)}
    for _ in range(1500):
        u, v = (int(a) for a in rng.integers(0, n, size=2))
        graph[u].append(v)
        graph[v].append(u)
    objects["graph"] = graph
    raw.mkdir(parents=True)
    for part, obj in objects.items():
        with open(raw / f"ind.{name}.{part}", "wb") as f:
            pickle.dump(obj, f)
    (raw / f"ind.{name}.test.index").write_text("\n".join(str(i) for i in test_index) + "\n")
    return {"labels": labels, "feats": feats}


def _no_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch_geometric.io.fs as fs
    from torch_geometric.datasets import Planetoid, TUDataset

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("a download was attempted")

    monkeypatch.setattr(fs, "cp", boom)
    monkeypatch.setattr(Planetoid, "download", boom)
    monkeypatch.setattr(TUDataset, "download", boom)


def test_planetoid_reads_raw_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_download(monkeypatch)
    truth = _write_planetoid(tmp_path / "Tiny" / "raw")
    ds = _registry_dataset("graph.planetoid").build(root=str(tmp_path), name="Tiny")
    assert ds.name == "graph.planetoid" and ds.num_nodes == 560 and ds.num_features == 16
    assert ds.task.n_classes == 3
    assert torch.equal(ds.data.y, torch.from_numpy(truth["labels"]))
    assert [ds.n_labelled(s) for s in ("train", "val", "test")] == [21, 500, 30]  # public split
    assert ds.nodes("test").tolist() == list(range(530, 560))
    rows = truth["feats"] / np.maximum(truth["feats"].sum(1, keepdims=True), 1)
    assert np.allclose(ds.data.x.numpy(), rows, atol=1e-6)  # row-normalised bag of words
    _undirected_without_loops(ds.data.edge_index)


def test_planetoid_missing_files_fail_before_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup_graph.datasets import pyg

    _no_download(monkeypatch)
    with pytest.raises(FileNotFoundError) as err:
        pyg.build_planetoid(root=tmp_path, name="Cora")
    msg = str(err.value)
    assert str(tmp_path) in msg and "ind.cora.x" in msg and "ind.cora.test.index" in msg
    assert "never downloads" in msg and "planetoid" in msg
    assert not (tmp_path / "Cora").exists()  # PyG never ran
    with pytest.raises(ValueError, match="root="):
        pyg.build_planetoid(root=None)


# -- TUDataset raw files --------------------------------------------------------------------
def _write_tu(raw: Path, name: str, *, node_labels: bool) -> None:
    """20 graphs in TU's text format: triangles (label -1) and 4-node paths (label 1)."""
    raw.mkdir(parents=True)
    edges, indicator, graph_labels, node_lab, edge_lab = [], [], [], [], []
    offset = 0
    for g in range(20):
        if g % 2 == 0:
            local, size, label = [(0, 1), (1, 2), (2, 0)], 3, -1
        else:
            local, size, label = [(0, 1), (1, 2), (2, 3)], 4, 1
        for u, v in local:  # TU lists both directions, 1-based
            edges += [(offset + u + 1, offset + v + 1), (offset + v + 1, offset + u + 1)]
            edge_lab += [g % 3, g % 3]
        indicator += [g + 1] * size
        node_lab += [i % 2 for i in range(size)]
        graph_labels.append(label)
        offset += size
    (raw / f"{name}_A.txt").write_text("".join(f"{u}, {v}\n" for u, v in edges))
    (raw / f"{name}_graph_indicator.txt").write_text("".join(f"{i}\n" for i in indicator))
    (raw / f"{name}_graph_labels.txt").write_text("".join(f"{y}\n" for y in graph_labels))
    if node_labels:
        (raw / f"{name}_node_labels.txt").write_text("".join(f"{v}\n" for v in node_lab))
        (raw / f"{name}_edge_labels.txt").write_text("".join(f"{v}\n" for v in edge_lab))
    else:  # continuous attributes only: PyG drops them by default
        (raw / f"{name}_node_attributes.txt").write_text("".join(f"{v}.5\n" for v in node_lab))


def test_tu_reads_raw_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_download(monkeypatch)
    _write_tu(tmp_path / "TINY" / "raw", "TINY", node_labels=True)
    ds = _registry_dataset("graph.tu").build(root=str(tmp_path), name="TINY", seed=3)
    assert ds.name == "graph.tu" and len(ds.graphs) == 20 and ds.task.n_classes == 2
    assert [int(g.y) for g in ds.graphs[:4]] == [0, 1, 0, 1]  # -1/1 relabelled 0/1
    assert all(g.y.shape == (1,) for g in ds.graphs)
    assert ds.num_features == 2  # one-hot node labels
    assert ds.edge_dim == 3 and ds.graphs[1].edge_attr.shape == (6, 3)  # one-hot edge labels
    idx = {s: set(ds.split_index[s]) for s in ds.splits}
    assert [len(idx[s]) for s in ("train", "val", "test")] == [16, 2, 2]
    assert set().union(*idx.values()) == set(range(20))
    assert sorted(ds.labels("test").tolist()) == [0, 1]  # stratified
    other = _registry_dataset("graph.tu").build(root=str(tmp_path), name="TINY", seed=4)
    assert other.split_index != ds.split_index  # the split follows the seed


def test_tu_without_node_features_gets_degree_one_hot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup_graph.datasets import pyg

    _no_download(monkeypatch)
    _write_tu(tmp_path / "PLAIN" / "raw", "PLAIN", node_labels=False)
    ds = pyg.build_tu(root=tmp_path, name="PLAIN")
    assert ds.num_features == 3  # degrees 0..2 (the continuous attribute is left out)
    path = ds.graphs[1]  # 4-node path: degrees 1, 2, 2, 1
    assert path.x.argmax(1).tolist() == [1, 2, 2, 1]
    assert ds.edge_dim is None


def test_tu_missing_files_fail_before_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfsup_graph.datasets import pyg

    _no_download(monkeypatch)
    (tmp_path / "MUTAG" / "raw").mkdir(parents=True)
    (tmp_path / "MUTAG" / "raw" / "MUTAG_A.txt").write_text("1, 2\n")
    with pytest.raises(FileNotFoundError) as err:
        pyg.build_tu(root=tmp_path)
    msg = str(err.value)
    assert "MUTAG_graph_indicator.txt" in msg and "MUTAG_graph_labels.txt" in msg
    assert "MUTAG_A.txt'" not in msg and str(tmp_path) in msg and "never downloads" in msg
    assert not (tmp_path / "MUTAG" / "processed").exists()
    with pytest.raises(ValueError, match="root="):
        pyg.build_tu(root=None)


# -- motifs ---------------------------------------------------------------------------------
def _structure(g: object) -> list[float]:
    """Independent cycles, triangles, leaves and maximum degree of a graph."""
    n, ei = int(g.num_nodes), g.edge_index  # type: ignore[attr-defined]
    adj = torch.zeros(n, n)
    adj[ei[0], ei[1]] = 1.0
    deg = adj.sum(1)
    triangles = float(torch.trace(adj @ adj @ adj)) / 6
    return [ei.shape[1] / 2 - n + 1, triangles, float((deg == 1).sum()), float(deg.max())]


def _nearest_centroid_accuracy(z: np.ndarray, y: np.ndarray) -> float:
    z = (z - z.mean(0)) / (z.std(0) + 1e-9)
    train = np.arange(len(y)) % 5 != 0
    centroids = np.stack([z[train & (y == c)].mean(0) for c in range(4)])
    pred = ((z[~train, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    return float((pred == y[~train]).mean())


def test_motifs_balanced_split_and_fast() -> None:
    import torch_geometric  # noqa: F401  (import time is not build time)

    from selfsup_graph.datasets import motifs

    start = time.perf_counter()
    ds = _registry_dataset("graph.motifs").build()
    assert time.perf_counter() - start < 2.0
    assert ds.name == "graph.motifs" and len(ds.graphs) == 600 and ds.task.n_classes == 4
    assert ds.class_names == list(motifs.CLASS_NAMES)
    y = np.array([int(g.y) for g in ds.graphs])
    assert np.bincount(y).tolist() == [150] * 4
    assert {s: np.bincount(ds.labels(s)).tolist() for s in ds.splits} == {
        "train": [120] * 4,
        "val": [15] * 4,
        "test": [15] * 4,
    }
    for g in ds.graphs[:50]:
        assert g.y.shape == (1,) and 16 <= g.num_nodes <= 30
        _undirected_without_loops(g.edge_index)


def test_motifs_deterministic_per_seed() -> None:
    from selfsup_graph.datasets import motifs

    a, b, c = (
        motifs.build(n_graphs=80),
        motifs.build(n_graphs=80),
        motifs.build(n_graphs=80, seed=1),
    )
    assert all(
        torch.equal(g.edge_index, h.edge_index) and torch.equal(g.x, h.x)
        for g, h in zip(a.graphs, b.graphs)
    )
    assert a.split_index == b.split_index
    assert not all(torch.equal(g.x, h.x) for g, h in zip(a.graphs, c.graphs))
    with pytest.raises(ValueError, match="n_graphs"):
        motifs.build(n_graphs=10)


def test_motifs_label_is_in_the_structure_not_the_features() -> None:
    from selfsup_graph.datasets import motifs

    ds = motifs.build(n_graphs=400)
    y = np.array([int(g.y) for g in ds.graphs])
    structure = np.array([_structure(g) for g in ds.graphs])
    mean_x = np.stack([g.x.mean(0).numpy() for g in ds.graphs])
    sizes = np.array([g.num_nodes for g in ds.graphs])
    assert _nearest_centroid_accuracy(structure, y) > 0.55
    assert _nearest_centroid_accuracy(mean_x, y) < 0.4  # chance is 0.25
    size_means = [sizes[y == c].mean() for c in range(4)]
    assert max(size_means) - min(size_means) < 2.0  # node count says little
    clique = motifs.CLASS_NAMES.index("clique4")
    assert structure[y == clique, 1].min() >= 4  # every 4-clique has 4 triangles
