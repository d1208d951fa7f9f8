"""The plugin as users meet it: conformance kit, registry, `selfsup run` and bench settings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfsup.api import IncompatibleError, Registry, check_plugin
from selfsup.api import cli_main as main

SMALL_SBM = {
    "n_nodes": 90,
    "n_blocks": 3,
    "n_features": 8,
    "feature_signal": 1.0,
    "p_in": 0.2,
    "p_out": 0.02,
}
SMALL_PRETEXTS = {
    "graph.pairwise_distance": {"n_pairs": 256},
    "graph.node_clustering": {"n_clusters": 3},
    "graph.scgc": {"n_clusters": 3},
}


def test_conformance() -> None:
    # Datasets that read user files (graph.h5ad, graph.planetoid, graph.tu) need a
    # path; test_datasets.py builds them from files it writes, and graph.pbmc68k
    # (scanpy, seconds) there too.
    reg = check_plugin(
        "graph",
        dataset_options={"graph.sbm": SMALL_SBM, "graph.motifs": {"n_graphs": 40}},
        encoder_options={
            k: {"hidden_dim": 16, "embed_dim": 8}
            for k in ("graph.gcn", "graph.gat", "graph.gin", "graph.edge_gat")
        },
        pretext_options=SMALL_PRETEXTS,
        skip=("graph.h5ad", "graph.planetoid", "graph.tu", "graph.pbmc68k"),
    )
    assert {"graph.pbmc68k", "graph.sbm"} <= set(reg.keys("benchmark"))
    assert "graph.pca" in reg.keys("baseline")


def test_gnn_faces_give_node_rows_pooled_rows_and_tokens(node_dataset, graph_dataset) -> None:
    from torch_geometric.nn import global_add_pool

    from selfsup_graph.encoders import build_gcn, build_gin

    torch.manual_seed(0)
    node_encoder = build_gcn(node_dataset, hidden_dim=16, embed_dim=8)
    data = node_dataset.data
    with torch.no_grad():
        tokens, rows = node_encoder.tokens(data), node_encoder.embed(data)
    assert tokens.states.shape == (1, node_dataset.num_nodes, 8) and bool(tokens.mask.all())
    assert torch.equal(tokens.flat(), rows) and torch.equal(node_encoder(data), rows)

    graph_encoder = build_gin(graph_dataset, hidden_dim=16, embed_dim=8, pooling="add")
    batch = graph_dataset.collate(graph_dataset.pretrain_set()[:5])
    with torch.no_grad():
        tokens, pooled = graph_encoder.tokens(batch), graph_encoder.embed(batch)
    sizes = torch.bincount(batch.batch).tolist()
    assert tokens.states.shape == (5, max(sizes), 8)
    assert tokens.mask.sum(1).tolist() == sizes
    nodes = tokens.flat()  # every node of the batch, in the batch's node order
    assert nodes.shape == (batch.num_nodes, 8)
    assert torch.equal(pooled, global_add_pool(nodes, batch.batch))
    assert torch.equal(graph_encoder(batch), pooled)


def test_gnn_stages_are_each_layer_and_core_lsskd_trains_on_them(graph_dataset) -> None:
    from selfsup_graph.encoders import build_gcn, build_gin

    reg = Registry(plugins=["graph"], strict=True).load()
    nodes = reg.get("dataset", "graph.sbm").build(**SMALL_SBM)
    torch.manual_seed(0)
    encoder = build_gcn(nodes, hidden_dim=16, embed_dim=8, n_layers=3)
    with torch.no_grad():
        stages = encoder.stages(nodes.data)
    assert [tuple(s.shape) for s in stages] == [(90, 16), (90, 16), (90, 8)]
    assert torch.equal(stages[-1], encoder.embed(nodes.data))
    pooled = build_gin(graph_dataset, hidden_dim=16, embed_dim=8)
    batch = graph_dataset.collate(graph_dataset.pretrain_set()[:5])
    with torch.no_grad():
        assert [tuple(s.shape) for s in pooled.stages(batch)] == [(5, 16), (5, 8)]

    # the feature-block jigsaw of core.lsskd on node features: one label per node row
    task = reg.get("pretext", "core.lsskd").build(encoder, nodes, head_hidden_dim=16)
    optimiser = torch.optim.Adam(task.parameters(), lr=1e-2)
    for step in range(30):
        out = task(nodes.pretrain_set()[0], torch.Generator().manual_seed(step))
        optimiser.zero_grad()
        out["loss"].backward()
        optimiser.step()
    assert out["embedding"].shape == (90, 8)
    assert float(out["accuracy_stage1"]) > 0.5  # chance 0.25
    assert nodes.pretrain_set()[0].x.shape == (90, 8)  # the graph itself is untouched


def test_views_are_declared_once_and_reach_the_dataset() -> None:
    import dataclasses

    from selfsup_graph.plugin import VIEWS
    from selfsup_graph.views import GraphViews

    reg = Registry(plugins=["graph"], strict=True).load()
    defaults = {f.name: f.default for f in dataclasses.fields(GraphViews)}
    for spec in reg.specs("dataset"):
        if reg.owner("dataset", spec.name).name == "graph":
            assert dict(spec.views) == VIEWS == defaults, spec.name
    spec = reg.get("dataset", "graph.sbm")
    ds = spec.build(**SMALL_SBM, views={"drop_edge": 0.5, "subgraph": 0.8})
    assert ds.views == GraphViews(drop_edge=0.5, mask_feature=0.2, subgraph=0.8)
    with pytest.raises(TypeError, match="unknown view option"):
        spec.build(**SMALL_SBM, views={"drop_edges": 0.5})
    with pytest.raises(ValueError, match=r"graph views: option drop_edge must be in \[0, 1\)"):
        spec.build(**SMALL_SBM, views={"drop_edge": 1.0})
    with pytest.raises(TypeError, match="drop_edge"):  # no longer a dataset option
        spec.build(**SMALL_SBM, drop_edge=0.5)


def test_registering_imports_no_domain_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from selfsup.api import Registry; "
        "r = Registry(plugins=['graph'], strict=True); r.load(); "
        "print(sorted(m for m in ('torch_geometric', 'scanpy', 'anndata', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_paretognn_weights_tasks_and_trains(node_dataset) -> None:
    reg = Registry(plugins=["graph"], strict=True)
    reg.load()
    encoder = reg.get("encoder", "graph.gcn").build(node_dataset, hidden_dim=16, embed_dim=8)
    from selfsup_graph.pretexts import paretognn

    task = paretognn.build(encoder, node_dataset, tasks=["graph.grace", "graph.dgi"])
    opt = torch.optim.Adam(task.parameters(), lr=1e-2)
    batch = node_dataset.collate(node_dataset.pretrain_set())

    def task_losses() -> torch.Tensor:  # each task's loss over the same 4 view draws
        with torch.no_grad():
            outs = [task(batch, torch.Generator().manual_seed(1000 + s)) for s in range(4)]
        return torch.tensor([[o["loss/graph.grace"], o["loss/graph.dgi"]] for o in outs]).mean(0)

    before = task_losses()
    for step in range(40):
        out = task(batch, torch.Generator().manual_seed(step))
        w = torch.stack([out["weight/graph.grace"], out["weight/graph.dgi"]])
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-5) and bool((w >= 0).all())
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    # MGDA's direction descends every task: both losses fall
    assert bool((task_losses() < before).all())
    with pytest.raises(ValueError, match="tasks must name at least two different pretexts"):
        paretognn.build(encoder, node_dataset, tasks=["graph.grace"])
    # ParetoGNN trains the tokens face; a task of another face has no such guarantee
    with pytest.raises(IncompatibleError, match=r"'core.barlow_twins' trains 'embedding'"):
        paretognn.build(encoder, node_dataset, tasks=["graph.grace", "core.barlow_twins"])


def test_edge_features_pretext_refuses_a_plain_encoder_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "pretrain",
            "--dataset",
            "graph.sbm",
            "--encoder",
            "graph.gcn",
            "--pretext",
            "graph.edge_features",
            "--run-dir",
            str(tmp_path / "run"),
        ]
    )
    assert code != 0
    assert not (tmp_path / "run" / "checkpoints").exists()
    err = capsys.readouterr().err
    assert "trains the 'graph.learned_edges' face" in err
    assert "offer 'graph.learned_edges': graph.edge_gat" in err


def test_selfsup_run_pretrains_and_probes(tmp_path: Path) -> None:
    toml = tmp_path / "grace.toml"
    toml.write_text(
        'name = "grace-sbm"\n'
        '[dataset]\nname = "graph.sbm"\n'
        "n_nodes = 90\nn_blocks = 3\nn_features = 8\nfeature_signal = 1.0\n"
        '[encoder]\nname = "graph.gcn"\nhidden_dim = 16\nembed_dim = 8\n'
        '[pretext]\nname = "graph.grace"\n'
        "[training]\nsteps = 20\nbatch_size = 1\nprogress = false\n"
        '[[evaluators]]\nname = "core.linear_probe"\n'
        '[[evaluators]]\nname = "core.kmeans"\n'
        "[evaluation]\nseeds = [0]\n",
        encoding="utf-8",
    )
    assert main(["run", str(toml), "--run-dir", str(tmp_path / "run")]) == 0
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "linear_probe.accuracy" in summary and "kmeans.nmi" in summary
