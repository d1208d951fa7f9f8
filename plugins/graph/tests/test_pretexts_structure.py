"""Structure pretexts: SelfTask-GNN (pairwise distance, node clustering), D-SLA and SCGC.

Each loss is checked against an independent small computation (hand-made graphs,
explicit loops), then for determinism under a fixed generator seed, gradients
reaching the encoder, a short training lowering the loss and clear option errors.
"""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Data

from selfsup.api import TaskSpec
from selfsup_graph.data import GraphLevelDataset, NodeGraphDataset
from selfsup_graph.encoders import build as build_encoder
from selfsup_graph.pretexts import dsla, scgc, selftask


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _encoder(dataset, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_encoder(dataset, hidden_dim=16, embed_dim=8)


def _undirected(pairs: list[tuple[int, int]]) -> torch.Tensor:
    src = [u for u, v in pairs] + [v for u, v in pairs]
    dst = [v for u, v in pairs] + [u for u, v in pairs]
    return torch.tensor([src, dst], dtype=torch.long)


def _path_dataset() -> NodeGraphDataset:
    """A path 0-1-2-3-4-5-6 and a separate edge 7-8."""
    edges = [(i, i + 1) for i in range(6)] + [(7, 8)]
    data = Data(x=torch.randn(9, 3, generator=_gen(1)), edge_index=_undirected(edges))
    return NodeGraphDataset("test.path", data, task=TaskSpec("none"))


def _trains(task: torch.nn.Module, batch, steps: int = 40, lr: float = 1e-2) -> tuple[float, float]:
    """Loss at a fixed generator seed before and after ``steps`` Adam steps."""

    def loss_at_fixed_seed() -> float:
        return copy.deepcopy(task)(batch, _gen(123))["loss"].item()

    before = loss_at_fixed_seed()
    opt = torch.optim.Adam(task.parameters(), lr=lr)
    for step in range(steps):
        opt.zero_grad()
        task(batch, _gen(step))["loss"].backward()
        opt.step()
    return before, loss_at_fixed_seed()


def _encoder_grad(task: torch.nn.Module, batch) -> float:
    task.zero_grad()
    task(batch, _gen(0))["loss"].backward()
    grads = [p.grad for p in task.encoder.parameters()]
    assert all(g is not None for g in grads)
    return float(sum(g.abs().sum() for g in grads))


# -- SelfTask-GNN: PairwiseDistance -------------------------------------------------------------


def _path_class(u: int, v: int) -> int:
    """Hand-computed class of a pair of the path dataset (max_distance=4)."""
    comp = lambda n: 0 if n <= 6 else 1  # noqa: E731
    if comp(u) != comp(v):
        return 3  # unreachable: the last class
    return min(abs(u - v), 4) - 1


def test_distance_bins_match_hand_computed_path() -> None:
    ds = _path_dataset()
    bins = selftask.DistanceBins(ds.data.edge_index, 9, max_distance=4)
    # ordered pairs: d=1: 2*6 + 2, d=2: 2*5, d=3: 2*4, the rest (9*8 in all) far
    assert bins.class_sizes == [14, 10, 8, 72 - 14 - 10 - 8]
    pairs, labels = bins.sample(4000, _gen())
    assert pairs.shape == (2, 4000)
    assert torch.bincount(labels).tolist() == [1000] * 4  # balanced over the classes
    expected = [_path_class(u, v) for u, v in pairs.T.tolist()]
    assert labels.tolist() == expected
    assert (pairs[0] != pairs[1]).all()
    far = {tuple(p) for p in pairs[:, labels == 3].T.tolist()}
    all_far = {(u, v) for u in range(9) for v in range(9) if u != v and _path_class(u, v) == 3}
    assert far == all_far  # the far class is drawn from all far pairs, and only those


def test_distance_bins_with_anchors_and_larger_cap() -> None:
    ds = _path_dataset()
    bins = selftask.DistanceBins(ds.data.edge_index, 9, max_distance=3, max_anchors=4, seed=5)
    assert len(bins.anchors) == 4
    pairs, labels = bins.sample(3000, _gen(2))
    assert set(pairs[0].tolist()) <= set(bins.anchors.tolist())
    for (u, v), c in zip(pairs.T.tolist(), labels.tolist()):
        d = abs(u - v) if (u <= 6) == (v <= 6) else 99
        assert c == min(d, 3) - 1


def test_pairwise_distance_loss_matches_reference(node_dataset) -> None:
    task = selftask.build_pairwise_distance(_encoder(node_dataset), node_dataset, n_pairs=256)
    out = task(node_dataset.data, _gen(7))
    pairs, labels = task.bins.sample(256, _gen(7))
    with torch.no_grad():
        h = task.encoder.tokens(node_dataset.data).flat()
    w, b = task.head.weight.detach(), task.head.bias.detach()
    total = 0.0
    for (u, v), c in zip(pairs.T.tolist(), labels.tolist()):
        logits = w @ (h[u] - h[v]).abs() + b
        total += float(-(logits[c] - torch.logsumexp(logits, 0)))
    assert out["loss"].item() == pytest.approx(total / 256, rel=1e-5)
    assert out["embedding"].shape == (node_dataset.num_nodes, 8)
    assert not out["embedding"].requires_grad
    assert 0.0 <= float(out["pair_accuracy"]) <= 1.0


def test_pairwise_distance_determinism_gradients_training(node_dataset) -> None:
    task = selftask.build_pairwise_distance(_encoder(node_dataset), node_dataset, n_pairs=512)
    batch = node_dataset.data
    a, b = task(batch, _gen(3))["loss"], task(batch, _gen(3))["loss"]
    assert a.item() == b.item()
    assert task(batch, _gen(4))["loss"].item() != a.item()
    assert _encoder_grad(task, batch) > 0
    before, after = _trains(task, batch)
    assert after < before


def test_pairwise_distance_errors(node_dataset, graph_dataset) -> None:
    enc = _encoder(node_dataset)
    with pytest.raises(ValueError, match="max_distance"):
        selftask.build_pairwise_distance(enc, node_dataset, max_distance=1)
    with pytest.raises(ValueError, match="n_pairs"):
        selftask.build_pairwise_distance(enc, node_dataset, n_pairs=0)
    with pytest.raises(TypeError, match=r"max_distnce.*max_distance"):
        selftask.build_pairwise_distance(enc, node_dataset, max_distnce=3)
    with pytest.raises(ValueError, match=r"graph\.node"):
        selftask.build_pairwise_distance(_encoder(graph_dataset), graph_dataset)
    task = selftask.build_pairwise_distance(enc, node_dataset)
    small = Data(x=torch.randn(5, 8), edge_index=_undirected([(0, 1)]))
    with pytest.raises(ValueError, match="120 nodes"):
        task(small, _gen())


# -- SelfTask-GNN / You et al.: node clustering ------------------------------------------------


def _blob_dataset() -> tuple[NodeGraphDataset, np.ndarray]:
    """30 nodes in 3 well-separated feature blobs, on a ring."""
    rng = np.random.default_rng(0)
    blob = np.repeat(np.arange(3), 10)
    centres = np.array([[10.0, 0, 0], [0, 10.0, 0], [0, 0, 10.0]])
    x = centres[blob] + 0.1 * rng.standard_normal((30, 3))
    data = Data(
        x=torch.tensor(x, dtype=torch.float32),
        edge_index=_undirected([(i, (i + 1) % 30) for i in range(30)]),
    )
    return NodeGraphDataset("test.blobs", data, task=TaskSpec("none")), blob


def test_node_clustering_pseudo_labels_and_loss() -> None:
    ds, blob = _blob_dataset()
    task = selftask.build_node_clustering(_encoder(ds), ds, n_clusters=3)
    labels = task.pseudo_labels.numpy()
    # the k-means partition is the planted one, up to a renaming of the clusters
    mapping = {b: labels[blob == b][0] for b in range(3)}
    assert len(set(mapping.values())) == 3
    assert (labels == np.array([mapping[b] for b in blob])).all()
    out = task(ds.data, _gen())
    with torch.no_grad():
        logits = task.head(task.encoder.tokens(ds.data).flat())
    ref = -np.mean([float(torch.log_softmax(logits[i], 0)[labels[i]]) for i in range(30)])
    assert out["loss"].item() == pytest.approx(ref, rel=1e-5)


def test_node_clustering_determinism_gradients_training(node_dataset) -> None:
    task = selftask.build_node_clustering(_encoder(node_dataset), node_dataset, n_clusters=4)
    again = selftask.build_node_clustering(_encoder(node_dataset), node_dataset, n_clusters=4)
    assert torch.equal(task.pseudo_labels, again.pseudo_labels)  # seeded k-means
    batch = node_dataset.data
    assert task(batch, _gen(1))["loss"].item() == task(batch, _gen(1))["loss"].item()
    assert _encoder_grad(task, batch) > 0
    before, after = _trains(task, batch)
    assert after < 0.8 * before


def test_node_clustering_errors(node_dataset, graph_dataset) -> None:
    enc = _encoder(node_dataset)
    with pytest.raises(ValueError, match="n_clusters"):
        selftask.build_node_clustering(enc, node_dataset, n_clusters=1)
    with pytest.raises(ValueError, match="more than the 120 nodes"):
        selftask.build_node_clustering(enc, node_dataset, n_clusters=500)
    flat = Data(x=torch.ones(12, 2), edge_index=_undirected([(0, 1)]))
    flat_ds = NodeGraphDataset("test.flat", flat, task=TaskSpec("none"))
    with pytest.raises(ValueError, match="1 distinct rows"):
        selftask.build_node_clustering(_encoder(flat_ds), flat_ds, n_clusters=3)
    with pytest.raises(ValueError, match=r"graph\.node"):
        selftask.build_node_clustering(_encoder(graph_dataset), graph_dataset)


# -- D-SLA --------------------------------------------------------------------------------------


def _edge_set(edge_index: torch.Tensor) -> set[tuple[int, int]]:
    return {(min(u, v), max(u, v)) for u, v in edge_index.T.tolist()}


def test_dsla_perturbation_edit_distance_is_the_number_of_edits() -> None:
    ring = Data(
        x=torch.randn(8, 2),
        edge_index=_undirected([(i, (i + 1) % 8) for i in range(8)]),
        edge_attr=torch.arange(16, dtype=torch.float32)[:, None] + 1,
    )
    for k in (1, 2, 3):
        out, e = dsla.perturb_edges(ring, k, _gen(k))
        before, after = _edge_set(ring.edge_index), _edge_set(out.edge_index)
        assert e == 2 * k == len(before ^ after)  # k removed + k added
        assert len(before - after) == k and len(after - before) == k
        assert out.edge_index.shape[1] == 16  # still symmetric, no duplicates
        assert _edge_set(out.edge_index.flip(0)) == after
        assert (out.edge_index[0] != out.edge_index[1]).all()
        assert out.edge_attr.shape == (16, 1)
        added = {(u, v) for u, v in (after - before)}
        for (u, v), a in zip(out.edge_index.T.tolist(), out.edge_attr[:, 0].tolist()):
            assert (a == 0) == ((min(u, v), max(u, v)) in added)  # new edges get zero attrs
    # directed graph: edited edge by edge
    chain = Data(x=torch.randn(5, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    out, e = dsla.perturb_edges(chain, 2, _gen())
    old = set(map(tuple, chain.edge_index.T.tolist()))
    new = set(map(tuple, out.edge_index.T.tolist()))
    assert e == 4 == len(old ^ new)
    # a complete graph has nothing to add: only removals count
    full = Data(
        x=torch.randn(4, 2), edge_index=_undirected(list(itertools.combinations(range(4), 2)))
    )
    out, e = dsla.perturb_edges(full, 2, _gen())
    assert e == 2 == len(_edge_set(full.edge_index) ^ _edge_set(out.edge_index))


def test_dsla_candidates_edit_distances(graph_dataset) -> None:
    task = dsla.build(_encoder(graph_dataset), graph_dataset, n_perturbed=3, edit_fraction=0.2)
    graphs = graph_dataset.graphs[:4]
    cand, edits = task.candidates(graph_dataset.collate(graphs), _gen())
    assert cand.num_graphs == 4 * 4 and edits.shape == (4, 3)
    listed = cand.to_data_list()
    for b, g in enumerate(graphs):
        k = max(1, round(0.2 * g.edge_index.shape[1] / 2))
        assert torch.equal(listed[4 * b].edge_index, g.edge_index)  # the original first
        for i in range(1, 4):
            diff = _edge_set(g.edge_index) ^ _edge_set(listed[4 * b + i].edge_index)
            assert edits[b, i - 1] == len(diff) == 2 * i * k


def test_dsla_loss_terms_match_references() -> None:
    d = torch.tensor([[1.0, 2.0, 3.0], [0.5, 1.0, 1.5]])
    e = torch.tensor([[2.0, 4.0, 6.0], [1.0, 2.0, 3.0]])
    assert float(dsla.edit_loss(d, e)) == 0.0  # exactly proportional: no discrepancy
    d2 = torch.tensor([[1.0, 3.0, 3.0], [0.5, 1.0, 2.5]])
    ratios = (d2 / e).tolist()
    ref = np.mean([(r[i] - r[j]) ** 2 for r in ratios for i in range(3) for j in range(i + 1, 3)])
    assert float(dsla.edit_loss(d2, e)) == pytest.approx(ref)
    # a copy without edits is left out
    e0 = e.clone()
    e0[1, 2] = 0
    ref0 = np.mean(
        [(ratios[0][i] - ratios[0][j]) ** 2 for i, j in [(0, 1), (0, 2), (1, 2)]]
        + [(ratios[1][0] - ratios[1][1]) ** 2]
    )
    assert float(dsla.edit_loss(d2, e0)) == pytest.approx(ref0)

    anchors = torch.randn(3, 4, generator=_gen())
    dist = torch.rand(3, 2, generator=_gen(1)) * 3
    terms = [
        max(0.0, 1.5 + float(dist[b, i]) - float((anchors[b] - anchors[c]).norm()))
        for b in range(3)
        for c in range(3)
        if c != b
        for i in range(2)
    ]
    assert float(dsla.margin_loss(anchors, dist, 1.5)) == pytest.approx(np.mean(terms), rel=1e-5)
    assert float(dsla.margin_loss(anchors[:1], dist[:1], 1.5)) == 0.0

    scores = torch.randn(5, 3, generator=_gen(2))
    ref_gd = np.mean([-float(torch.log_softmax(s, 0)[0]) for s in scores])
    assert float(dsla.discrimination_loss(scores)) == pytest.approx(ref_gd, rel=1e-5)


def test_dsla_forward_determinism_gradients_training(graph_dataset) -> None:
    task = dsla.build(_encoder(graph_dataset), graph_dataset, margin=0.5)
    batch = graph_dataset.collate(graph_dataset.graphs[:8])
    out = task(batch, _gen(5))
    assert out["embedding"].shape == (8, 8) and not out["embedding"].requires_grad
    total = out["gd_loss"] + 0.7 * out["edit_loss"] + 0.5 * out["margin_loss"]
    assert out["loss"].item() == pytest.approx(total.item(), rel=1e-5)
    assert task(batch, _gen(5))["loss"].item() == out["loss"].item()
    assert _encoder_grad(task, batch) > 0
    before, after = _trains(task, batch, steps=40)
    assert after < before


def test_dsla_edge_attr_and_masking() -> None:
    graphs = [
        Data(
            x=torch.randn(6, 3, generator=_gen(i)),
            edge_index=_undirected([(j, (j + 1) % 6) for j in range(6)]),
            edge_attr=torch.ones(12, 2),
            y=torch.tensor([i % 2]),
        )
        for i in range(4)
    ]
    ds = GraphLevelDataset(
        "test.attr", graphs, {"train": range(4)}, task=TaskSpec("classification", 2)
    )
    enc = build_encoder(ds, conv="gin", hidden_dim=16, embed_dim=8)
    task = dsla.build(enc, ds, mask_fraction=0.5)
    batch = ds.collate(graphs)
    cand, _ = task.candidates(batch, _gen())
    assert cand.edge_attr.shape[0] == cand.edge_index.shape[1]
    zero_rows = (cand.x.abs().sum(1) == 0).view(-1, 6).sum(1)
    assert (zero_rows == 3).all()  # half the nodes of every candidate, the originals too
    assert torch.isfinite(task(batch, _gen())["loss"])


def test_dsla_errors(graph_dataset, node_dataset) -> None:
    enc = _encoder(graph_dataset)
    with pytest.raises(ValueError, match="n_perturbed"):
        dsla.build(enc, graph_dataset, n_perturbed=1)
    with pytest.raises(ValueError, match="edit_fraction"):
        dsla.build(enc, graph_dataset, edit_fraction=0.0)
    with pytest.raises(ValueError, match="margin"):
        dsla.build(enc, graph_dataset, margin=-1.0)
    with pytest.raises(ValueError, match=r"graph\.graph"):
        dsla.build(_encoder(node_dataset), node_dataset)
    # an encoder built for nodes gives node rows: D-SLA says so at its first batch
    node_level = build_encoder(node_dataset, hidden_dim=16, embed_dim=8)
    flat = GraphLevelDataset(  # the node dataset's width, so the encoder can run
        "test.width", [Data(x=torch.randn(5, 8), edge_index=_undirected([(0, 1), (1, 2)]),
                            y=torch.tensor([0]))] * 2, {}, task=TaskSpec("none"))
    task = dsla.build(node_level, flat)
    with pytest.raises(ValueError, match="one row per graph"):
        task(flat.collate(flat.graphs), _gen())


# -- SCGC ---------------------------------------------------------------------------------------


def test_scgc_smoothing_matches_dense_filter() -> None:
    ds = _path_dataset()
    n = 9
    a = np.zeros((n, n))
    for u, v in ds.data.edge_index.T.tolist():
        a[u, v] = 1
    a_tilde = a + np.eye(n)
    d = np.diag(a_tilde.sum(1) ** -0.5)
    filt = d @ a_tilde @ d
    x = ds.data.x.double().numpy()
    ref = np.linalg.matrix_power(filt, 3) @ x
    got = scgc.smooth_features(ds.data.x, ds.data.edge_index, 3)
    assert np.allclose(got.numpy(), ref, atol=1e-5)
    assert torch.equal(scgc.smooth_features(ds.data.x, ds.data.edge_index, 0), ds.data.x)


def test_scgc_contrastive_loss_matches_loop_reference() -> None:
    ds = _path_dataset()
    n = 9
    z1 = F.normalize(torch.randn(n, 4, generator=_gen(1)), dim=1)
    z2 = F.normalize(torch.randn(n, 4, generator=_gen(2)), dim=1) + 0.01
    target = scgc.self_looped_edges(ds.data.edge_index, n)
    adj = {(u, v) for u, v in ds.data.edge_index.T.tolist()} | {(i, i) for i in range(n)}
    total = 0.0
    for i in range(n):
        for j in range(n):
            t = 1.0 if (i, j) in adj else 0.0
            total += (float(z1[i] @ z2[j]) - t) ** 2
    got = scgc.neighbour_contrastive_loss(z1, z2, target, n)
    assert float(got) == pytest.approx(total / n**2, rel=1e-5)
    dense = torch.zeros(n, n)
    dense[target[0], target[1]] = 1
    assert float(got) == pytest.approx(float(F.mse_loss(z1 @ z2.T, dense)), rel=1e-5)


def test_scgc_assignments_and_target_distribution(node_dataset) -> None:
    task = scgc.build(_encoder(node_dataset), node_dataset, n_clusters=4)
    q = task.cluster_assignments(node_dataset.data)
    assert q.shape == (node_dataset.num_nodes, 4)
    assert (q >= 0).all() and torch.allclose(q.sum(1), torch.ones(node_dataset.num_nodes))
    p = scgc.target_distribution(q)
    assert torch.allclose(p.sum(1), torch.ones(node_dataset.num_nodes))
    # sharper than q: the target puts more mass on each row's top cluster
    assert (p.max(1).values >= q.max(1).values - 1e-6).float().mean() > 0.9


def test_scgc_determinism_gradients_training(node_dataset) -> None:
    task = scgc.build(_encoder(node_dataset), node_dataset, n_clusters=3)
    batch = node_dataset.data
    twin = copy.deepcopy(task)  # centres not yet initialised in either
    a, b = task(batch, _gen(9)), twin(batch, _gen(9))
    assert a["loss"].item() == b["loss"].item()
    assert torch.equal(task.centres, twin.centres)
    assert a["embedding"].shape == (node_dataset.num_nodes, 8)
    assert _encoder_grad(task, batch) > 0
    assert task.view2.weight.grad is not None and task.centres.grad is not None
    before, after = _trains(task, batch, steps=40)
    assert after < before
    q = task.cluster_assignments(batch)
    assert torch.allclose(q.sum(1), torch.ones(node_dataset.num_nodes))


def test_scgc_errors(node_dataset, graph_dataset) -> None:
    enc = _encoder(node_dataset)
    with pytest.raises(ValueError, match="temperature"):
        scgc.build(enc, node_dataset, temperature=0.0)
    with pytest.raises(ValueError, match="smoothing_steps"):
        scgc.build(enc, node_dataset, smoothing_steps=-1)
    with pytest.raises(ValueError, match="n_clusters"):
        scgc.build(enc, node_dataset, n_clusters=1)
    with pytest.raises(TypeError, match="smoothing_step"):
        scgc.build(enc, node_dataset, smoothing_step=2)
    with pytest.raises(ValueError, match=r"graph\.node"):
        scgc.build(_encoder(graph_dataset), graph_dataset)
    with pytest.raises(ValueError, match="more than the 120 nodes"):
        scgc.build(enc, node_dataset, n_clusters=121)
