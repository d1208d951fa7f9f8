"""graph.edge_gat and graph.edge_features: self-supervised edge features (Ravindra et al. 2021)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from selfsup.api import Registry
from selfsup_graph.datasets import sbm
from selfsup_graph.pretexts import edge_features as ef


def small_encoder(dataset, **options) -> ef.EdgeFeatureGAT:
    torch.manual_seed(0)
    return ef.build_encoder(dataset, **{"hidden_dim": 16, "embed_dim": 8, **options})


def test_shapes(node_dataset) -> None:
    data = node_dataset.data
    n, e = node_dataset.num_nodes, data.edge_index.shape[1]
    encoder = small_encoder(node_dataset, edge_dim=5)
    assert encoder.embed_dim == 8
    assert encoder(data).shape == (n, 8)
    assert encoder.node_states(data).shape == (n, 8)
    with torch.no_grad():
        tokens, rows = encoder.tokens(data), encoder.embed(data)
    assert tokens.states.shape == (1, n, 8) and bool(tokens.mask.all())
    assert torch.equal(tokens.flat(), rows) and torch.equal(rows, encoder(data))
    assert encoder.edge_features(data).shape == (e, 5)
    plain = small_encoder(node_dataset, edge_dim=5, curvature=False)
    assert plain.edge_features(data).shape == (e, 5)
    assert plain.edge_encoder.n_heads == 5 and encoder.edge_encoder.n_heads == 4


def test_default_edge_features_are_eight_heads_and_curvature(node_dataset) -> None:
    encoder = ef.build_encoder(node_dataset)
    assert encoder.edge_dim == 9 and encoder.edge_encoder.n_heads == 8
    assert encoder.embed_dim == 64


def test_attention_features_are_normalised_per_target(node_dataset) -> None:
    data = node_dataset.data
    encoder = small_encoder(node_dataset, curvature=False)
    with torch.no_grad():
        alpha = encoder.edge_features(data)
    # softmax over a node's in-edges and its self loop: in-edges share less than 1
    per_target = torch.zeros(node_dataset.num_nodes, alpha.shape[1]).index_add_(
        0, data.edge_index[1], alpha
    )
    assert (alpha > 0).all()
    assert (per_target < 1).all() and (per_target > 0).all()


def test_curvature_column_is_range_scaled_forman_curvature(node_dataset) -> None:
    data = node_dataset.data
    encoder = small_encoder(node_dataset)
    with torch.no_grad():
        curv = encoder.edge_features(data)[:, -1]
    src, dst = data.edge_index
    deg = torch.bincount(src, minlength=node_dataset.num_nodes).float()
    forman = 4 - deg[src] - deg[dst]  # unweighted, symmetric edge list
    expected = 2 * (forman - forman.min()) / (forman.max() - forman.min()) - 1
    torch.testing.assert_close(curv, expected)
    assert curv.min() == -1 and curv.max() == 1


def test_forman_curvature_uses_edge_weights() -> None:
    # path 0-1-2 stored both ways; the heavier edge is less negatively curved
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])
    w = torch.tensor([1.0, 1.0, 4.0, 4.0])
    curv = ef.forman_curvature(edge_index, 3, w)
    assert curv.shape == (4,)
    assert curv[0] == curv[1] and curv[2] == curv[3] and curv[0] != curv[2]
    assert torch.equal(ef.forman_curvature(edge_index, 3), torch.zeros(4))  # all equal


def test_pretext_gradients_reach_the_edge_encoder_and_the_gat(node_dataset) -> None:
    encoder = small_encoder(node_dataset)
    task = ef.build(encoder, node_dataset, n_clusters=3)
    out = task(node_dataset.data, torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "edge_loss", "node_loss", "embedding"}
    assert out["loss"].ndim == 0 and out["embedding"].shape == (node_dataset.num_nodes, 8)
    out["loss"].backward()
    for name, p in encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_node_term_does_not_shape_the_edge_features(node_dataset) -> None:
    # The GAT reads the edge features detached: the edge encoder's gradient is the
    # auxiliary GAT's alone, whatever node_weight is.
    data = node_dataset.data
    encoder = small_encoder(node_dataset)
    task = ef.build(encoder, node_dataset, n_clusters=3, node_weight=1.0)
    grads = {}
    for weight in (0.0, 1.0):
        task.config = dataclasses.replace(task.config, node_weight=weight)
        task.zero_grad()
        task(data, torch.Generator())["loss"].backward()
        grads[weight] = {n: p.grad.clone() for n, p in encoder.edge_encoder.named_parameters()}
        if weight == 0.0:
            assert all(p.grad is None or not p.grad.any() for p in encoder.layers.parameters())
    for name, g in grads[0.0].items():
        torch.testing.assert_close(grads[1.0][name], g)


def test_encoder_alone_is_end_to_end_differentiable(node_dataset) -> None:
    encoder = small_encoder(node_dataset)
    encoder(node_dataset.data).square().mean().backward()
    assert encoder.edge_encoder.conv.att_src.grad.abs().sum() > 0


def test_deterministic_with_the_same_generator(node_dataset) -> None:
    data = node_dataset.data
    outs = []
    for _ in range(2):
        torch.manual_seed(0)
        encoder = ef.build_encoder(node_dataset, hidden_dim=16, embed_dim=8)
        task = ef.build(encoder, node_dataset, n_clusters=3)
        outs.append(task(data, torch.Generator().manual_seed(1)))
    for key in outs[0]:
        assert torch.equal(outs[0][key], outs[1][key]), key
    assert torch.equal(ef.make_pseudo_labels(data, task.config), task.pseudo_labels)


def test_loss_decreases_over_a_short_training(node_dataset) -> None:
    data = node_dataset.data
    task = ef.build(small_encoder(node_dataset), node_dataset, n_clusters=3)
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    losses, edge_losses = [], []
    for _ in range(30):
        out = task(data, g)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(float(out["loss"].detach()))
        edge_losses.append(float(out["edge_loss"]))
    assert losses[-1] < 0.5 * losses[0]
    assert edge_losses[-1] < 0.5 * edge_losses[0]


def test_diffusion_averages_over_the_closed_neighbourhood() -> None:
    x = torch.tensor([[0.0], [3.0], [6.0]])
    edge_index = torch.tensor([[0, 1, 1, 2], [1, 0, 2, 1]])  # path 0-1-2
    assert torch.equal(ef.diffuse_features(x, edge_index, 0), x)
    one = ef.diffuse_features(x, edge_index, 1)
    torch.testing.assert_close(one, torch.tensor([[1.5], [3.0], [4.5]]))


def test_smoothed_pseudo_labels_find_the_blocks_that_raw_features_miss() -> None:
    # graph.sbm's point: weak features, labels in the edges. Clusters of the raw
    # features barely match the blocks; clusters of the diffused features do.
    from sklearn.metrics import adjusted_rand_score

    ds = sbm.build(n_nodes=300, n_blocks=3, p_in=0.1, p_out=0.01, feature_signal=0.25, seed=0)
    y = ds.data.y.numpy()
    scores = {}
    for steps in (0, 2):
        config = ef.EdgeFeaturesConfig(n_clusters=3, smoothing_steps=steps)
        scores[steps] = adjusted_rand_score(y, ef.make_pseudo_labels(ds.data, config).numpy())
    assert scores[0] < 0.5 < 0.9 < scores[2]


def test_the_pretext_trains_a_face_only_edge_gat_offers() -> None:
    # graph.edge_features needs the edge encoder: it declares the plugin's own face,
    # which only graph.edge_gat offers, so the runner refuses any other encoder and
    # selfsup bench trains it on graph.edge_gat whatever the benchmark's encoder
    reg = Registry(plugins=["graph"], strict=True).load()
    face = reg.get("pretext", "graph.edge_features").face
    assert face == ef.LEARNED_EDGES == "graph.learned_edges"
    offering = [e.name for e in reg.specs("encoder") if e.offers(face)]
    assert offering == [ef.ENCODER_NAME]
    assert reg.get("encoder", ef.ENCODER_NAME).faces == ("embedding", "tokens", face)


def test_encoder_refuses_graph_level_datasets(graph_dataset) -> None:
    with pytest.raises(ValueError, match=r"graph\.graph"):
        ef.build_encoder(graph_dataset)


def test_options_are_checked(node_dataset) -> None:
    encoder = small_encoder(node_dataset)
    with pytest.raises(TypeError, match="did you mean 'n_clusters'"):
        ef.build(encoder, node_dataset, n_cluster=3)
    with pytest.raises(ValueError, match="n_clusters"):
        ef.build(encoder, node_dataset, n_clusters=1)
    with pytest.raises(ValueError, match="n_clusters=500 exceeds"):
        ef.build(encoder, node_dataset, n_clusters=500)
    with pytest.raises(ValueError, match="smoothing_steps"):
        ef.build(encoder, node_dataset, smoothing_steps=-1)
    with pytest.raises(ValueError, match="node_weight"):
        ef.build(encoder, node_dataset, node_weight=-1.0)
    with pytest.raises(ValueError, match="edge_dim >= 2 or curvature=False"):
        ef.build_encoder(node_dataset, edge_dim=1)
    with pytest.raises(ValueError, match="divisible by heads"):
        ef.build_encoder(node_dataset, hidden_dim=10, heads=4)


def test_a_batch_of_another_graph_is_refused(node_dataset) -> None:
    task = ef.build(small_encoder(node_dataset), node_dataset, n_clusters=3)
    other = node_dataset.data.subgraph(torch.arange(50))
    with pytest.raises(ValueError, match="whole pretraining graph"):
        task(other, torch.Generator())
