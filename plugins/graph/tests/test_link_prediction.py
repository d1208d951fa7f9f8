"""graph.link_prediction: GAE dot-product scoring of held-out edges (Kipf & Welling 2016)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from selfsup.api import EvalContext
from selfsup_graph.data import NodeGraphDataset
from selfsup_graph.datasets import sbm
from selfsup_graph.encoders import build_gcn
from selfsup_graph.evaluators import link_prediction
from selfsup_graph.evaluators.link_prediction import build

AUC, AP = "link_prediction.auc", "link_prediction.ap"


@pytest.fixture(scope="module")
def held_out() -> NodeGraphDataset:
    """A 300-node SBM with 20% of its edges held out (half val, half test)."""
    return sbm.build(
        n_nodes=300, n_blocks=3, p_in=0.1, p_out=0.01, n_features=8, seed=0, holdout_edges=0.2
    )


class FixedEmbedding(nn.Module):
    """An 'encoder' whose embedding face returns a given matrix, whatever the graph."""

    def __init__(self, z: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("z", z)
        self.embed_dim = int(z.shape[1])
        self.calls: list[bool] = []

    def embed(self, data: object) -> torch.Tensor:  # the embedding face, which the evaluator reads
        self.calls.append(self.training)
        return self.z  # type: ignore[return-value]

    def forward(self, data: object) -> torch.Tensor:
        return self.embed(data)


def all_edges(ds: NodeGraphDataset) -> torch.Tensor:
    """Every undirected edge (u < v) of the original graph: kept plus held out."""
    kept = ds.data.edge_index[:, ds.data.edge_index[0] < ds.data.edge_index[1]]
    held = [ds.link_split(split)[0] for split in ("val", "test")]
    return torch.cat([kept, *held], dim=1)


def incidence(ds: NodeGraphDataset, *, signed: bool) -> torch.Tensor:
    """One column per original edge, 1 at both ends (``signed``: +1 at u, -1 at v).

    Then ``z_u · z_v`` is 1 (-1 when signed) for an edge and 0 for any other pair,
    held-out edges included: the perfect (perfectly wrong) link predictor.
    """
    edges = all_edges(ds)
    z = torch.zeros(ds.num_nodes, edges.shape[1])
    cols = torch.arange(edges.shape[1])
    z[edges[0], cols] = 1.0
    z[edges[1], cols] = -1.0 if signed else 1.0
    return z


def test_an_embedding_that_encodes_the_adjacency_scores_one(held_out: NodeGraphDataset) -> None:
    result = build()(FixedEmbedding(incidence(held_out, signed=False)), held_out, EvalContext())
    assert result == {AUC: 1.0, AP: 1.0}


def test_positives_are_the_positive_class(held_out: NodeGraphDataset) -> None:
    # Edges score -1, non-edges 0: every negative outranks every positive.
    result = build()(FixedEmbedding(incidence(held_out, signed=True)), held_out, EvalContext())
    assert result[AUC] == 0.0
    assert result[AP] < 0.6


def test_orthogonal_embeddings_tie_every_pair_at_chance(held_out: NodeGraphDataset) -> None:
    # One-hot rows: every distinct pair scores 0, a full tie: AUC 0.5, AP = positive share.
    result = build()(FixedEmbedding(torch.eye(held_out.num_nodes)), held_out, EvalContext())
    assert result[AUC] == pytest.approx(0.5)
    assert result[AP] == pytest.approx(0.5)


def test_random_embeddings_are_near_chance(held_out: NodeGraphDataset) -> None:
    z = torch.randn(held_out.num_nodes, 32, generator=torch.Generator().manual_seed(0))
    result = build()(FixedEmbedding(z), held_out, EvalContext())
    assert abs(result[AUC] - 0.5) < 0.1


def test_keys_and_values_do_not_depend_on_seeds(held_out: NodeGraphDataset) -> None:
    torch.manual_seed(0)
    encoder = build_gcn(held_out, hidden_dim=16, embed_dim=8)
    one = build()(encoder, held_out, EvalContext(seeds=(0,)))
    three = build()(encoder, held_out, EvalContext(seeds=(0, 1, 2)))
    assert set(one) == {AUC, AP}
    assert one == three
    assert all(0.0 <= v <= 1.0 for v in one.values())


def test_val_split_scores_other_pairs(held_out: NodeGraphDataset) -> None:
    encoder = FixedEmbedding(incidence(held_out, signed=False))
    assert build(split="val")(encoder, held_out, EvalContext()) == {AUC: 1.0, AP: 1.0}
    z = torch.randn(held_out.num_nodes, 32, generator=torch.Generator().manual_seed(1))
    test = build(split="test")(FixedEmbedding(z), held_out, EvalContext())
    val = build(split="val")(FixedEmbedding(z), held_out, EvalContext())
    assert test != val


def test_encoder_runs_in_eval_mode_and_its_mode_is_restored(held_out: NodeGraphDataset) -> None:
    encoder = FixedEmbedding(torch.eye(held_out.num_nodes))
    encoder.train()
    build()(encoder, held_out, EvalContext())
    assert encoder.calls == [False]
    assert encoder.training


def test_without_held_out_edges_the_dataset_error_passes_through(node_dataset) -> None:
    encoder = FixedEmbedding(torch.eye(node_dataset.num_nodes))
    with pytest.raises(ValueError, match=r"holds out no edges.*holdout_edges"):
        build()(encoder, node_dataset, EvalContext())


def test_another_modality_is_refused_by_name(graph_dataset) -> None:
    with pytest.raises(ValueError, match=r"graph\.graph"):
        build()(FixedEmbedding(torch.eye(3)), graph_dataset, EvalContext())


def test_wrong_number_of_rows_is_refused(held_out: NodeGraphDataset) -> None:
    with pytest.raises(ValueError, match="one embedding row per node"):
        build()(FixedEmbedding(torch.eye(5)), held_out, EvalContext())


def test_non_finite_embeddings_are_refused(held_out: NodeGraphDataset) -> None:
    z = torch.full((held_out.num_nodes, 4), float("nan"))
    with pytest.raises(ValueError, match="not finite"):
        build()(FixedEmbedding(z), held_out, EvalContext())


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="split"):
        build(split="train")
    with pytest.raises(TypeError, match="did you mean 'split'"):
        build(splits="test")


def test_link_scores_directly() -> None:
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    pos = torch.tensor([[0, 2], [1, 3]])  # same-direction pairs: score 1
    neg = torch.tensor([[0, 1], [2, 3]])  # orthogonal pairs: score 0
    assert link_prediction.link_scores(z, pos, neg) == {AUC: 1.0, AP: 1.0}
