"""What selfsup-graph registers with selfsup (entry point ``graph``).

Factories are ``"module:function"`` strings: importing this module imports
neither torch-geometric nor scanpy; each component's module is imported when it
is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from selfsup.api import (
    EMBEDDING,
    GRAPH_GRAPH,
    GRAPH_NODE,
    STAGES,
    TOKENS,
    BaselineSpec,
    BenchmarkSpec,
    DatasetSpec,
    EncoderSpec,
    EvaluatorSpec,
    Expect,
    PretextSpec,
    hookimpl,
)

Register = Callable[[Any], None]
NODE = (GRAPH_NODE,)
GRAPH = (GRAPH_GRAPH,)
BOTH = (GRAPH_NODE, GRAPH_GRAPH)
#: the default graph views of every dataset (``[dataset.views]``; selfsup_graph.views.GraphViews)
VIEWS = {
    "drop_edge": 0.2,
    "mask_feature": 0.2,
    "drop_node": 0.0,
    "subgraph": 0.0,
    "keep_marked": False,
}
#: GNN encoders: one embedding row per sample (node or graph), and each graph's node states
GNN_FACES = (EMBEDDING, TOKENS)
#: GCN, GAT and GIN also give each layer's output (the stages face; encoders.py)
LAYERED_GNN_FACES = (*GNN_FACES, STAGES)
#: the plugin's own face: graph.edge_gat's learned edge features (pretexts/edge_features.py)
LEARNED_EDGES = "graph.learned_edges"


@hookimpl
def register_datasets(register: Register) -> None:
    register(
        DatasetSpec(
            "graph.pbmc68k",
            "selfsup_graph.datasets.pbmc68k:build",
            NODE,
            "scanpy's bundled pbmc68k_reduced: 700 blood cells as nodes of a kNN graph on the "
            "expression PCA, expression as features, 10 cell types (bulk_labels) as labels",
            options={
                "features": "expression",
                "n_neighbors": 15,
                "n_pcs": 50,
                "seed": 0,
                "holdout_edges": 0.0,
            },
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.sbm",
            "selfsup_graph.datasets.sbm:build",
            NODE,
            "stochastic block model (600 nodes, 4 blocks) whose features carry little label "
            "signal and whose edges carry most of it; generated from a seed",
            options={
                "n_nodes": 600,
                "n_blocks": 4,
                "p_in": 0.04,
                "p_out": 0.01,
                "n_features": 32,
                "feature_signal": 0.25,
                "seed": 0,
                "holdout_edges": 0.0,
            },
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.two_factor",
            "selfsup_graph.datasets.two_factor:build",
            NODE,
            "generated sanity graph: label 2b + a, factor b only in the edges (two blocks), "
            "factor a only in the features; for multi-task pretraining (graph.paretognn)",
            options={
                "n_nodes": 600,
                "p_in": 0.02,
                "p_out": 0.002,
                "n_features": 64,
                "feature_signal": 3.0,
                "seed": 0,
                "holdout_edges": 0.0,
            },
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.karate",
            "selfsup_graph.datasets.karate:build",
            NODE,
            "Zachary's karate club (34 nodes, 4 communities), built into torch-geometric",
            options={"seed": 0, "holdout_edges": 0.0},
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.h5ad",
            "selfsup_graph.datasets.anndata:build",
            NODE,
            "your single-cell data from an .h5ad AnnData file: cells as nodes of a kNN graph, "
            "a label column of obs; needs path= and label_key=",
            options={
                "path": None,
                "label_key": None,
                "use_rep": "X_pca",
                "features": "expression",
                "n_neighbors": 15,
                "n_pcs": 50,
                "seed": 0,
                "holdout_edges": 0.0,
                "normalize": False,
            },
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.planetoid",
            "selfsup_graph.datasets.pyg:build_planetoid",
            NODE,
            "Planetoid citation graphs (Cora, CiteSeer, PubMed) read by torch-geometric from "
            "root= where the raw files already are; needs root= and name=",
            options={"root": None, "name": "Cora", "seed": 0, "holdout_edges": 0.0},
            offline=False,
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.tu",
            "selfsup_graph.datasets.pyg:build_tu",
            GRAPH,
            "TUDataset graph classification sets (MUTAG, PROTEINS, ...) read by "
            "torch-geometric from root= where the raw files already are; needs root= and name=",
            options={"root": None, "name": "MUTAG", "seed": 0},
            offline=False,
            views=VIEWS,
        )
    )
    register(
        DatasetSpec(
            "graph.motifs",
            "selfsup_graph.datasets.motifs:build",
            GRAPH,
            "generated graph classification set: random graphs with a planted motif (cycle, "
            "house, star, ...) as the class; structural, features uninformative",
            options={"n_graphs": 600, "seed": 0, "features": "noise", "mark_motif": False},
            views=VIEWS,
        )
    )


@hookimpl
def register_encoders(register: Register) -> None:
    common = {
        "hidden_dim": 128,
        "embed_dim": 64,
        "n_layers": 2,
        "dropout": 0.0,
        "pooling": "mean",
        "use_edge_attr": True,
    }
    register(
        EncoderSpec(
            "graph.gcn",
            "selfsup_graph.encoders:build_gcn",
            BOTH,
            "GCN (Kipf & Welling, ICLR 2017); node rows or pooled per graph; scalar edge weights",
            options=common,
            faces=LAYERED_GNN_FACES,
        )
    )
    register(
        EncoderSpec(
            "graph.gat",
            "selfsup_graph.encoders:build_gat",
            BOTH,
            "GAT (Veličković et al., ICLR 2018); edge features enter the attention",
            options={**common, "heads": 4},
            faces=LAYERED_GNN_FACES,
        )
    )
    register(
        EncoderSpec(
            "graph.gin",
            "selfsup_graph.encoders:build_gin",
            BOTH,
            "GIN (Xu et al., ICLR 2019), GINE with edge features (Hu et al., ICLR 2020)",
            options=common,
            faces=LAYERED_GNN_FACES,
        )
    )
    register(
        EncoderSpec(
            "graph.edge_gat",
            # through encoders.py, so that `selfsup show` does not mistake the pretext's
            # options (EdgeFeaturesConfig, in the same module) for the encoder's
            "selfsup_graph.encoders:build_edge_gat",
            NODE,
            "GAT reading learned edge features (auxiliary-GAT attention + Forman curvature; "
            "Ravindra et al. 2021); pretrain it with graph.edge_features",
            options={
                "hidden_dim": 128,
                "embed_dim": 64,
                "n_layers": 2,
                "heads": 4,
                "edge_dim": 9,
                "curvature": True,
                "attention_dim": 8,
                "dropout": 0.0,
            },
            faces=(*GNN_FACES, LEARNED_EDGES),
        )
    )


@hookimpl
def register_pretext_tasks(register: Register) -> None:
    register(
        PretextSpec(
            "graph.grace",
            "selfsup_graph.pretexts.grace:build",
            NODE,
            "GRACE (Zhu et al. 2020): node-level InfoNCE between two augmented views, "
            "intra- and inter-view negatives",
            options={"proj_dim": 64, "temperature": 0.5, "max_nodes": None},
            needs_views=True,
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.graphcl",
            "selfsup_graph.pretexts.graphcl:build",
            GRAPH,
            "GraphCL (You et al., NeurIPS 2020): NT-Xent between two augmented views of each graph",
            options={"proj_dim": 64, "temperature": 0.2},
            needs_views=True,
            face=EMBEDDING,
        )
    )
    register(
        PretextSpec(
            "graph.dgi",
            "selfsup_graph.pretexts.dgi:build",
            NODE,
            "Deep Graph Infomax (Veličković et al., ICLR 2019): node vs graph summary "
            "discrimination against a feature-shuffled corruption",
            options={},
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.graphmae",
            "selfsup_graph.pretexts.graphmae:build",
            BOTH,
            "GraphMAE (Hou et al., KDD 2022): mask node features, re-mask, decode with a GNN, "
            "scaled cosine error",
            options={"mask_rate": 0.5, "alpha": 2.0, "decoder": "gat"},
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.pairwise_distance",
            "selfsup_graph.pretexts.selftask:build_pairwise_distance",
            NODE,
            "SelfTask-GNN PairwiseDistance (Jin et al. 2020): classify the shortest-path "
            "distance bin between node pairs",
            options={"n_pairs": 4096, "max_distance": 4, "max_anchors": 4096, "seed": 0},
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.node_clustering",
            "selfsup_graph.pretexts.selftask:build_node_clustering",
            NODE,
            "node clustering pretext (You et al., ICML 2020; cf. SelfTask-GNN, Jin et al. 2020): "
            "predict k-means cluster ids of the node features",
            options={"n_clusters": 10, "seed": 0},
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.dsla",
            "selfsup_graph.pretexts.dsla:build",
            GRAPH,
            "D-SLA (Kim et al., NeurIPS 2022): discriminate graphs from perturbed copies and "
            "keep embedding distances proportional to the edit distance",
            options={
                "n_perturbed": 2,
                "edit_fraction": 0.1,
                "margin": 1.0,
                "lambda_edit": 0.7,
                "lambda_margin": 0.5,
                "mask_fraction": 0.0,
            },
            face=EMBEDDING,
        )
    )
    register(
        PretextSpec(
            "graph.scgc",
            "selfsup_graph.pretexts.scgc:build",
            NODE,
            "SCGC (Liu, Yang, Zhou, Liu, IEEE TNNLS 2023): cross-view structural consistency "
            "between the GNN embedding and a linear view of low-pass-smoothed features "
            "(self-looped adjacency as target); DEC soft cluster assignments",
            options={
                "n_clusters": 10,
                "temperature": 0.5,
                "smoothing_steps": 3,
                "sigma": 0.01,
                "cluster_weight": 0.1,
            },
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.paretognn",
            "selfsup_graph.pretexts.paretognn:build",
            NODE,
            "ParetoGNN (Ju et al., ICLR 2023): several graph pretexts at once, combined by "
            "multiple-gradient descent (min-norm task weights, selfsup.api.mgda_combine)",
            options={
                "tasks": ["graph.grace", "graph.dgi", "graph.graphmae"],
                "normalization": "none",
            },
            face=TOKENS,
        )
    )
    register(
        PretextSpec(
            "graph.edge_features",
            "selfsup_graph.pretexts.edge_features:build",
            NODE,
            "self-supervised edge features (Ravindra et al., PLoS Biol 2021): attention of an "
            "auxiliary GAT trained on k-means pseudo-labels of smoothed features, plus Forman "
            "curvature, as GAT edge features; trains graph.edge_gat (face graph.learned_edges)",
            options={"n_clusters": 10, "smoothing_steps": 2, "node_weight": 1.0, "seed": 0},
            face=LEARNED_EDGES,
        )
    )


@hookimpl
def register_evaluators(register: Register) -> None:
    register(
        EvaluatorSpec(
            "graph.link_prediction",
            "selfsup_graph.evaluators.link_prediction:build",
            NODE,
            "link prediction on held-out edges: ROC-AUC and AP of embedding dot products "
            "(needs a dataset built with holdout_edges > 0)",
            options={"split": "test"},
            task_kinds=("classification", "regression", "none"),
            face=EMBEDDING,
        )
    )


@hookimpl
def register_baselines(register: Register) -> None:
    register(
        BaselineSpec(
            "graph.pca",
            "selfsup_graph.baselines:build_pca",
            NODE,
            "the expression PCA stored by single-cell datasets (graph.pbmc68k, graph.h5ad) as "
            "fixed node features: a linear probe on it is the classic single-cell baseline",
            faces=(EMBEDDING,),
            task_kinds=("*",),
        )
    )


NODE_PRETEXTS = (
    "graph.grace",
    "graph.dgi",
    "graph.graphmae",
    "graph.pairwise_distance",
    "graph.node_clustering",
    "graph.scgc",
    "graph.paretognn",
    "graph.edge_features",
    "core.barlow_twins",
)
NODE_BASELINES = ("core.input", "core.random_init", "core.supervised", "core.mean")
NODE_TRAIN = {"steps": 200, "batch_size": 1, "lr": 1e-3, "weight_decay": 1e-5, "warmup_steps": 10}


@hookimpl
def register_benchmarks(register: Register) -> None:
    register(
        BenchmarkSpec(
            name="graph.pbmc68k",
            dataset="graph.pbmc68k",
            encoder="graph.gcn",
            pretexts=(*NODE_PRETEXTS, "core.lsskd", "core.g_simclr", "core.groco", "core.gedi"),
            # heads about the width of the 64-d GCN embedding
            pretext_options={
                "core.g_simclr": {"proj_hidden_dim": 256, "proj_out_dim": 64, "temperature": 0.2},
                "core.groco": {"proj_hidden_dim": 256, "proj_out_dim": 64},
                # a batch is a graph, which Langevin dynamics cannot move: GEDI's
                # discriminative terms only; 10 clusters for the 10 cell types
                "core.gedi": {"proj_hidden_dim": 256, "n_clusters": 10, "ebm_weight": 0},
            },
            evaluators=("core.linear_probe", "core.kmeans", "core.ood"),
            evaluator_options={"core.linear_probe": {"label_fractions": [0.5, 0.1, 0.05]}},
            summary="cell types of 700 PBMCs from a kNN cell graph (scanpy pbmc68k_reduced)",
            baselines=(*NODE_BASELINES, "graph.pca"),
            train=NODE_TRAIN,
            gpu_train={**NODE_TRAIN, "steps": 2000, "device": "cuda"},
            headline="linear_probe.accuracy",
            quick={
                "pretexts": ("graph.grace", "graph.dgi"),
                "baselines": ("core.random_init", "graph.pca"),
                "evaluators": ("core.linear_probe",),
                "train": {"steps": 100},
                "seconds": 25,
            },
        )
    )
    register(
        BenchmarkSpec(
            name="graph.sbm",
            dataset="graph.sbm",
            dataset_options={"holdout_edges": 0.1},
            encoder="graph.gcn",
            pretexts=NODE_PRETEXTS,
            evaluators=("core.linear_probe", "core.kmeans", "graph.link_prediction"),
            evaluator_options={"core.linear_probe": {"label_fractions": [0.5, 0.1, 0.05]}},
            summary="stochastic block model: labels in the edges, weak features; 10% of the "
            "edges held out for link prediction",
            baselines=NODE_BASELINES,
            train=NODE_TRAIN,
            gpu_train={**NODE_TRAIN, "steps": 2000, "device": "cuda"},
            headline="linear_probe.accuracy",
        )
    )
    register(
        BenchmarkSpec(
            name="graph.motifs",
            dataset="graph.motifs",
            # one-hot degree features: on the generator's noise features the 2-layer GIN
            # cannot fit its own training graphs (supervised train accuracy 0.43), so no
            # pretext could be told from another; BENCHMARKS.md, graph.motifs
            dataset_options={"features": "degree"},
            encoder="graph.gin",
            encoder_options={"pooling": "add"},
            pretexts=("graph.graphcl", "graph.dsla", "graph.graphmae", "core.barlow_twins"),
            evaluators=("core.linear_probe", "core.kmeans"),
            evaluator_options={"core.linear_probe": {"label_fractions": [1.0, 0.1]}},
            summary="graph classification: which motif is planted in each of 600 random trees "
            "(one-hot degree features)",
            baselines=NODE_BASELINES,
            headline="linear_probe.accuracy",
            train={
                "steps": 200,
                "batch_size": 64,
                "lr": 1e-3,
                "weight_decay": 1e-5,
                "warmup_steps": 10,
            },
            gpu_train={
                "steps": 2000,
                "batch_size": 128,
                "lr": 1e-3,
                "weight_decay": 1e-5,
                "warmup_steps": 100,
                "device": "cuda",
            },
        )
    )
    register_sanity_benchmarks(register)


#: the two single tasks that ParetoGNN combines in graph.sanity_paretognn
TWO_FACTOR_TASKS = ("graph.node_clustering", "graph.pairwise_distance")


def register_sanity_benchmarks(register: Register) -> None:
    """Issue 16's sanity settings (``selfsup bench --sanity``): each method where its
    paper's assumption holds by construction; BENCHMARKS.md, Graph plugin, "Sanity
    settings and the rows below their input (issue 16)"."""
    # label 2b + a, b only in the edges, a only in the features: node clustering finds
    # a, pairwise distance b, and MGDA's combination of the two must beat both
    register(
        BenchmarkSpec(
            name="graph.sanity_paretognn",
            dataset="graph.two_factor",
            encoder="graph.gcn",
            pretexts=(*TWO_FACTOR_TASKS, "graph.paretognn"),
            pretext_options={"graph.paretognn": {"tasks": list(TWO_FACTOR_TASKS)}},
            evaluators=("core.linear_probe",),
            evaluator_options={"core.linear_probe": {"label_fractions": [0.5]}},
            baselines=("core.random_init",),
            summary="sanity: ParetoGNN (MGDA over node clustering and pairwise distance) "
            "beats either task alone when each carries a factor of the label the other lacks",
            train={**NODE_TRAIN, "steps": 400},
            headline="linear_probe.accuracy",
            sanity=(
                Expect(
                    "graph.paretognn",
                    beats="graph.pairwise_distance",
                    margin=0.05,
                    metric="linear_probe.accuracy@50%",
                ),
                Expect(
                    "graph.paretognn",
                    beats="graph.node_clustering",
                    margin=0.1,
                    metric="linear_probe.accuracy@50%",
                ),
                Expect(
                    "graph.paretognn",
                    beats="baseline:core.random_init",
                    margin=0.1,
                    metric="linear_probe.accuracy@50%",
                ),
            ),
        )
    )
    # one-hot degree features, which the structure predicts (GraphMAE's assumption) and
    # which let a GIN count local structures: with 10% of the labels both pretexts must
    # beat the random-init GIN (0.77 there; 0.45 on the generator's noise features)
    register(
        BenchmarkSpec(
            name="graph.sanity_motifs",
            dataset="graph.motifs",
            dataset_options={"features": "degree"},
            encoder="graph.gin",
            encoder_options={"pooling": "add"},
            pretexts=("graph.graphmae", "graph.graphcl"),
            evaluators=("core.linear_probe",),
            evaluator_options={"core.linear_probe": {"label_fractions": [0.1]}},
            baselines=("core.random_init",),
            summary="sanity: GraphMAE and GraphCL beat a random-init GIN on motifs whose node "
            "features (one-hot degree) the structure predicts, with 10% of the labels",
            train={
                "steps": 800,
                "batch_size": 64,
                "lr": 1e-3,
                "weight_decay": 1e-5,
                "warmup_steps": 10,
            },
            headline="linear_probe.accuracy",
            sanity=tuple(
                Expect(
                    k,
                    beats="baseline:core.random_init",
                    margin=0.05,
                    metric="linear_probe.accuracy@10%",
                )
                for k in ("graph.graphmae", "graph.graphcl")
            ),
        )
    )
