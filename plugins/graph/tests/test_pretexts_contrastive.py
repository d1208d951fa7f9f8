"""GRACE, GraphCL, DGI and GraphMAE: losses against hand-written references, wiring,
determinism, gradients, a short training run and option errors."""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from selfsup.api import (
    GRAPH_NODE,
    Component,
    EncoderSpec,
    Experiment,
    IncompatibleError,
    Registry,
    SSLDataset,
    check_pretext,
    hookimpl,
    run_experiment,
)
from selfsup_graph.data import GraphLevelDataset, NodeGraphDataset
from selfsup_graph.encoders import GNNEncoder, build_gcn, build_gin
from selfsup_graph.pretexts import dgi, grace, graphcl, graphmae

# -- helpers ---------------------------------------------------------------------------


def small_encoder(dataset: SSLDataset, conv: str = "gcn") -> GNNEncoder:
    """A small GNN so that every test stays fast on one thread."""
    torch.manual_seed(0)
    factory = build_gcn if conv == "gcn" else build_gin
    return factory(dataset, hidden_dim=32, embed_dim=16)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def graph_batch(dataset: GraphLevelDataset, n: int = 16) -> Any:
    return dataset.collate(dataset.pretrain_set()[:n])


def train(task: nn.Module, batch: Any, steps: int, lr: float = 1e-2) -> list[float]:
    """Adam on the task's parameters with a fresh generator seed per step, like the trainer."""
    opt = torch.optim.Adam(task.parameters(), lr=lr)
    losses = []
    for step in range(steps):
        loss = task(batch, gen(1000 + step))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def assert_deterministic(task: nn.Module, batch: Any) -> None:
    a, b, c = (task(batch, gen(s)) for s in (3, 3, 4))
    assert torch.equal(a["loss"], b["loss"])
    assert torch.equal(a["embedding"], b["embedding"])
    assert not torch.equal(a["loss"], c["loss"])  # another seed, other random draws


def assert_encoder_gets_gradients(task: Any, batch: Any) -> None:
    task.zero_grad()
    task(batch, gen(0))["loss"].backward()
    grads = [p.grad for p in task.encoder.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads if g is not None)


def cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


# -- GRACE -----------------------------------------------------------------------------


def cosines(a: torch.Tensor, b: torch.Tensor) -> list[list[float]]:
    """``[i][k] = cos(a_i, b_k)`` as Python floats (pairwise, without normalising rows first)."""
    sim = torch.nn.functional.cosine_similarity(a[:, None, :], b[None, :, :], dim=-1)
    return sim.tolist()  # type: ignore[no-any-return]


def grace_reference(u: torch.Tensor, v: torch.Tensor, tau: float) -> float:
    """Eqs. 1-2 of GRACE, node by node: intra- and inter-view negatives, symmetric."""
    n = u.shape[0]
    sims = {
        ("u", "v"): cosines(u, v),
        ("v", "u"): cosines(v, u),
        ("u", "u"): cosines(u, u),
        ("v", "v"): cosines(v, v),
    }

    def anchor_loss(anchor: str, other: str, i: int) -> float:
        """-log of Eq. 1 for node i, its view ``anchor`` against the view ``other``."""
        inter, intra = sims[(anchor, other)][i], sims[(anchor, anchor)][i]
        pos = math.exp(inter[i] / tau)
        negatives = sum(
            math.exp(inter[k] / tau) + math.exp(intra[k] / tau) for k in range(n) if k != i
        )
        return -math.log(pos / (pos + negatives))

    return sum(anchor_loss("u", "v", i) + anchor_loss("v", "u", i) for i in range(n)) / (2 * n)


def test_grace_loss_matches_the_paper_formula(node_dataset: NodeGraphDataset) -> None:
    g = gen(0)
    u, v = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    task = grace.build(small_encoder(node_dataset), node_dataset, temperature=0.7)
    assert float(task.criterion(u, v)) == pytest.approx(grace_reference(u, v, 0.7), rel=1e-5)


def test_grace_forward_is_the_loss_of_two_projected_views(
    node_dataset: NodeGraphDataset,
) -> None:
    task = grace.build(small_encoder(node_dataset), node_dataset)
    out = task(node_dataset.data, gen(5))
    g = gen(5)  # the same draws in the same order: view 1, then view 2
    v1, v2 = node_dataset.augment(node_dataset.data, g), node_dataset.augment(node_dataset.data, g)
    with torch.no_grad():
        h1 = task.node_states(v1)
        u, v = task.projector(h1), task.projector(task.node_states(v2))
    assert out["loss"].item() == pytest.approx(grace_reference(u, v, 0.5), rel=1e-4)
    assert out["embedding"].shape == (node_dataset.num_nodes, 16)
    assert torch.allclose(out["embedding"], h1)


def test_grace_max_nodes_uses_a_generator_drawn_subset(node_dataset: NodeGraphDataset) -> None:
    task = grace.build(small_encoder(node_dataset), node_dataset, max_nodes=10)
    out = task(node_dataset.data, gen(2))
    g = gen(2)
    v1, v2 = node_dataset.augment(node_dataset.data, g), node_dataset.augment(node_dataset.data, g)
    rows = torch.randperm(node_dataset.num_nodes, generator=g)[:10]
    with torch.no_grad():
        u = task.projector(task.node_states(v1)[rows])
        v = task.projector(task.node_states(v2)[rows])
    assert out["loss"].item() == pytest.approx(grace_reference(u, v, 0.5), rel=1e-4)
    assert out["embedding"].shape[0] == node_dataset.num_nodes  # the embedding is not subset


def test_grace_is_deterministic_and_trains_the_encoder(node_dataset: NodeGraphDataset) -> None:
    task = grace.build(small_encoder(node_dataset), node_dataset)
    assert_deterministic(task, node_dataset.data)
    assert_encoder_gets_gradients(task, node_dataset.data)


def test_grace_training_reduces_the_loss(node_dataset: NodeGraphDataset) -> None:
    task = grace.build(small_encoder(node_dataset), node_dataset)
    losses = train(task, node_dataset.data, steps=40)
    assert mean(losses[-8:]) < mean(losses[:8]) - 0.2


# -- GraphCL ---------------------------------------------------------------------------


def graphcl_reference(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    """Eq. 3 of GraphCL, graph by graph: only the other view's other graphs are negatives,
    and the positive is not in the denominator."""
    n = z1.shape[0]
    total = 0.0
    for i in range(n):
        pos = math.exp(cos(z1[i], z2[i]) / tau)
        neg = sum(math.exp(cos(z1[i], z2[k]) / tau) for k in range(n) if k != i)
        total += -math.log(pos / neg)
    return total / n


def test_graphcl_loss_matches_the_paper_formula() -> None:
    g = gen(1)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    got = float(graphcl.graphcl_loss(z1, z2, 0.2))
    assert got == pytest.approx(graphcl_reference(z1, z2, 0.2), rel=1e-5)
    # Not symmetric: view 1 holds the anchors (as in the paper and the authors' code).
    assert float(graphcl.graphcl_loss(z2, z1, 0.2)) != pytest.approx(got, rel=1e-3)


def test_graphcl_forward_is_the_loss_of_two_projected_views(
    graph_dataset: GraphLevelDataset,
) -> None:
    task = graphcl.build(small_encoder(graph_dataset, "gin"), graph_dataset)
    batch = graph_batch(graph_dataset, 8)
    out = task(batch, gen(5))
    g = gen(5)
    v1, v2 = graph_dataset.augment(batch, g), graph_dataset.augment(batch, g)
    with torch.no_grad():
        h1 = task.encoder.embed(v1)
        z1, z2 = task.projector(h1), task.projector(task.encoder.embed(v2))
    assert out["loss"].item() == pytest.approx(graphcl_reference(z1, z2, 0.2), rel=1e-4)
    assert out["embedding"].shape == (8, 16)
    assert torch.allclose(out["embedding"], h1)


def test_graphcl_is_deterministic_and_trains_the_encoder(
    graph_dataset: GraphLevelDataset,
) -> None:
    task = graphcl.build(small_encoder(graph_dataset, "gin"), graph_dataset)
    batch = graph_batch(graph_dataset)
    assert_deterministic(task, batch)
    assert_encoder_gets_gradients(task, batch)


def test_graphcl_training_reduces_the_loss(graph_dataset: GraphLevelDataset) -> None:
    # 16 small graphs under strong views make per-step losses noisy: compare the
    # loss averaged over the same 8 view draws before and after training
    task = graphcl.build(small_encoder(graph_dataset, "gin"), graph_dataset)
    batch = graph_batch(graph_dataset)

    def held_out_loss() -> float:
        with torch.no_grad():
            return mean([task(batch, gen(s))["loss"].item() for s in range(8)])

    before = held_out_loss()
    train(task, batch, steps=60, lr=3e-3)
    assert held_out_loss() < before - 0.2


def test_graphcl_refuses_one_graph(graph_dataset: GraphLevelDataset) -> None:
    task = graphcl.build(small_encoder(graph_dataset, "gin"), graph_dataset)
    with pytest.raises(ValueError, match="at least 2"):
        task(graph_batch(graph_dataset, 1), gen(0))


# -- DGI -------------------------------------------------------------------------------


def test_dgi_loss_is_the_bce_of_known_logits() -> None:
    pos, neg = torch.tensor([2.0, -1.0, 0.0]), torch.tensor([0.5, -3.0, 4.0])

    def sigmoid(t: float) -> float:
        return 1.0 / (1.0 + math.exp(-t))

    ref = (
        -(
            sum(math.log(sigmoid(float(t))) for t in pos)
            + sum(math.log(1.0 - sigmoid(float(t))) for t in neg)
        )
        / 6
    )
    assert float(dgi.dgi_loss(pos, neg)) == pytest.approx(ref, rel=1e-6)


def test_dgi_corruption_shuffles_rows_with_the_generator() -> None:
    x = torch.arange(20.0).view(10, 2)
    a, b, c = (dgi.corrupt_features(x, gen(s)) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a, x)
    # the same rows, each intact, in another order
    assert torch.equal(a[a[:, 0].argsort()], x)


def test_dgi_forward_matches_a_reference(node_dataset: NodeGraphDataset) -> None:
    task = dgi.build(small_encoder(node_dataset), node_dataset)
    data = node_dataset.data
    out = task(data, gen(7))
    corrupted = copy.copy(data)
    corrupted.x = data.x[torch.randperm(data.num_nodes, generator=gen(7))]
    with torch.no_grad():
        h = task.node_states(data)
        h_bad = task.node_states(corrupted)
        s = torch.sigmoid(h.mean(0))
        w = task.weight
        ref = 0.0
        for i in range(data.num_nodes):  # Eq. 1, pair by pair
            ref -= math.log(torch.sigmoid(h[i] @ w @ s))
            ref -= math.log(1 - torch.sigmoid(h_bad[i] @ w @ s))
    assert out["loss"].item() == pytest.approx(ref / (2 * data.num_nodes), rel=1e-4)
    assert torch.allclose(out["embedding"], h)


def test_dgi_is_deterministic_and_trains_the_encoder(node_dataset: NodeGraphDataset) -> None:
    task = dgi.build(small_encoder(node_dataset), node_dataset)
    assert_deterministic(task, node_dataset.data)
    assert_encoder_gets_gradients(task, node_dataset.data)


def test_dgi_training_reduces_the_loss(node_dataset: NodeGraphDataset) -> None:
    task = dgi.build(small_encoder(node_dataset), node_dataset)
    losses = train(task, node_dataset.data, steps=30)
    assert mean(losses[-5:]) < 0.5 * mean(losses[:5])


# -- GraphMAE --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 2.0, 3.0])
def test_graphmae_sce_on_known_vectors(alpha: float) -> None:
    recon = torch.tensor([[1.0, 1.0], [0.0, -1.0], [3.0, 0.0]])
    target = torch.tensor([[1.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    # cosines 1/sqrt(2), -1 and 1
    ref = ((1 - 1 / math.sqrt(2)) ** alpha + 2.0**alpha + 0.0) / 3
    assert float(graphmae.sce_loss(recon, target, alpha)) == pytest.approx(ref, rel=1e-6)


def test_graphmae_masks_the_requested_share_with_the_generator() -> None:
    a, b, c = (graphmae.mask_nodes(10, 0.3, gen(s), torch.device("cpu")) for s in (0, 0, 1))
    assert int(a.sum()) == 3
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert int(graphmae.mask_nodes(3, 0.1, gen(0), torch.device("cpu")).sum()) == 1  # >= 1


def test_graphmae_forward_matches_a_reference(node_dataset: NodeGraphDataset) -> None:
    task = graphmae.build(small_encoder(node_dataset), node_dataset)
    with torch.no_grad():  # a non-zero token, so that replacing features shows
        task.mask_token.copy_(torch.randn(task.mask_token.shape, generator=gen(9)))
    data = node_dataset.data
    out = task(data, gen(4))
    mask = graphmae.mask_nodes(data.num_nodes, 0.5, gen(4), torch.device("cpu"))
    assert int(mask.sum()) == data.num_nodes // 2
    masked = copy.copy(data)
    masked.x = data.x.clone()
    masked.x[mask] = task.mask_token.detach()
    with torch.no_grad():
        h = task.node_states(masked)
        code = task.encoder_to_decoder(h)
        code[mask] = 0.0  # re-mask
        recon = task.decoder(code, data.edge_index)
    ref = mean([(1 - cos(recon[i], data.x[i])) ** 2 for i in mask.nonzero().view(-1).tolist()])
    assert out["loss"].item() == pytest.approx(ref, rel=1e-4)
    assert torch.allclose(out["embedding"], h)


@pytest.mark.parametrize("decoder", ["gat", "gcn"])
def test_graphmae_is_deterministic_and_trains_the_encoder(
    node_dataset: NodeGraphDataset, decoder: str
) -> None:
    task = graphmae.build(small_encoder(node_dataset), node_dataset, decoder=decoder)
    assert_deterministic(task, node_dataset.data)
    assert_encoder_gets_gradients(task, node_dataset.data)
    assert task.mask_token.grad is not None and float(task.mask_token.grad.abs().sum()) > 0


def test_graphmae_training_reduces_the_loss(node_dataset: NodeGraphDataset) -> None:
    task = graphmae.build(small_encoder(node_dataset), node_dataset)
    losses = train(task, node_dataset.data, steps=30)
    assert mean(losses[-5:]) < 0.6 * mean(losses[:5])


def test_graphmae_on_a_batch_of_graphs(graph_dataset: GraphLevelDataset) -> None:
    task = graphmae.build(small_encoder(graph_dataset, "gin"), graph_dataset)
    batch = graph_batch(graph_dataset)
    out = task(batch, gen(0))
    assert out["embedding"].shape == (16, 16)  # pooled: one row per graph
    assert_deterministic(task, batch)
    assert_encoder_gets_gradients(task, batch)
    losses = train(task, batch, steps=30)
    assert mean(losses[-5:]) < mean(losses[:5])


# -- the registered specs, options and errors -------------------------------------------


def test_registered_defaults_build_and_pass_the_conformance_check(
    node_dataset: NodeGraphDataset, graph_dataset: GraphLevelDataset
) -> None:
    reg = Registry(plugins=["graph"], strict=True).load()
    cases: list[tuple[str, SSLDataset, type[Any]]] = [
        ("graph.grace", node_dataset, grace.GRACE),
        ("graph.dgi", node_dataset, dgi.DeepGraphInfomax),
        ("graph.graphmae", node_dataset, graphmae.GraphMAE),
        ("graph.graphmae", graph_dataset, graphmae.GraphMAE),
        ("graph.graphcl", graph_dataset, graphcl.GraphCL),
    ]
    for key, dataset, cls in cases:
        spec = reg.get("pretext", key)
        assert spec.accepts(dataset.modality)
        assert isinstance(spec.build(small_encoder(dataset, "gin"), dataset), cls)
        # one forward and backward with the registered default options
        check_pretext(spec, small_encoder(dataset, "gin"), dataset)


def test_graphcl_loss_is_float32_under_bf16_autocast() -> None:
    g = gen(2)
    z1, z2 = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = graphcl.graphcl_loss(z1, z2, 0.2)
    assert loss.dtype == torch.float32
    assert float(loss) == pytest.approx(graphcl_reference(z1, z2, 0.2), rel=1e-5)


BuildFn = Callable[..., nn.Module]


@pytest.mark.parametrize(
    ("build", "options", "error", "match"),
    [
        (grace.build, {"temperature": 0.0}, ValueError, "temperature must be a number > 0"),
        (grace.build, {"proj_dim": 0}, ValueError, "proj_dim must be a positive int"),
        (grace.build, {"max_nodes": 1}, ValueError, "max_nodes must be None or an int >= 2"),
        (grace.build, {"temprature": 0.5}, TypeError, "did you mean 'temperature'"),
        (dgi.build, {"temperature": 0.5}, TypeError, "unknown option"),
        (graphmae.build, {"mask_rate": 1.0}, ValueError, r"mask_rate must be in \(0, 1\)"),
        (graphmae.build, {"alpha": 0.5}, ValueError, "alpha must be a number >= 1"),
        (graphmae.build, {"decoder": "mlp"}, ValueError, "decoder must be one of 'gat', 'gcn'"),
    ],
)
def test_bad_node_options_name_the_option(
    node_dataset: NodeGraphDataset,
    build: BuildFn,
    options: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    with pytest.raises(error, match=match):
        build(small_encoder(node_dataset), node_dataset, **options)


def test_bad_graphcl_option_names_the_option(graph_dataset: GraphLevelDataset) -> None:
    message = re.escape("graph.graphcl: option temperature must be a number > 0, got -1.0")
    with pytest.raises(ValueError, match=message):
        graphcl.build(small_encoder(graph_dataset), graph_dataset, temperature=-1.0)


@pytest.mark.parametrize("build", [grace.build, dgi.build])
def test_node_tasks_refuse_a_graph_level_dataset(
    graph_dataset: GraphLevelDataset, build: BuildFn
) -> None:
    with pytest.raises(ValueError, match=re.escape("needs a 'graph.node' dataset")):
        build(small_encoder(graph_dataset), graph_dataset)


def test_graphcl_refuses_a_node_dataset_and_a_node_level_encoder(
    node_dataset: NodeGraphDataset, graph_dataset: GraphLevelDataset
) -> None:
    with pytest.raises(ValueError, match=re.escape("needs a 'graph.graph' dataset")):
        graphcl.build(small_encoder(node_dataset), node_dataset)
    # an encoder built for nodes embeds nodes: GraphCL says so at its first batch
    node_level = GNNEncoder(graph_dataset.num_features, hidden_dim=32, embed_dim=16, level="node")
    task = graphcl.build(node_level, graph_dataset)
    with pytest.raises(ValueError, match="one row per graph"):
        task(graph_batch(graph_dataset, 4), gen(0))


class _MLPEncoder(nn.Module):
    """A node encoder with the embedding face only (an MLP on the node features)."""

    def __init__(self, dataset: SSLDataset) -> None:
        super().__init__()
        self.embed_dim = 16
        self.net = nn.Linear(dataset.num_features, 16)  # type: ignore[attr-defined]

    def embed(self, data: Any) -> torch.Tensor:
        return self.net(data.x)  # type: ignore[no-any-return]

    def forward(self, data: Any) -> torch.Tensor:
        return self.embed(data)


class _EmbeddingOnlyPlugin:
    """Registers ``test.mlp``: a graph.node encoder without the tokens face."""

    @staticmethod
    @hookimpl
    def register_encoders(register: Callable[[Any], None]) -> None:
        register(EncoderSpec("test.mlp", _MLPEncoder, (GRAPH_NODE,), "an MLP on node features"))


TOKEN_PRETEXTS = (
    "graph.grace", "graph.dgi", "graph.graphmae", "graph.pairwise_distance",
    "graph.node_clustering", "graph.scgc", "graph.paretognn",
)


@pytest.mark.parametrize("pretext", TOKEN_PRETEXTS)
def test_node_tasks_refuse_an_encoder_without_the_tokens_face(
    tmp_path: Path, pretext: str
) -> None:
    # The tasks call encoder.tokens(graph): the runner refuses an encoder that does not
    # offer that face before anything is built, and names the encoders that do.
    reg = Registry(plugins=["graph"], strict=True)
    reg.add_plugin(_EmbeddingOnlyPlugin(), "test")
    reg.load()
    assert reg.get("pretext", pretext).face == "tokens"
    exp = Experiment(
        name="refused",
        dataset=Component("graph.karate"),
        encoder=Component("test.mlp"),
        pretext=Component(pretext),
        training={"steps": 1},
        evaluators=[],
    )
    message = r"trains the 'tokens' face.*offer 'tokens': .*graph\.gcn"
    with pytest.raises(IncompatibleError, match=message):
        run_experiment(exp, tmp_path / "run", reg)
    assert not (tmp_path / "run").exists()
