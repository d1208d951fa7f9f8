"""Issue 16's sanity settings for the graph plugin: ParetoGNN/MGDA, GraphCL, GraphMAE.

``mgda``: ``graph.two_factor`` (label ``2b + a``; ``b`` only in the edges, ``a`` only
in the features), GCN encoder. Trains a random-init row, the two single tasks
(``graph.node_clustering``: features; ``graph.pairwise_distance``: structure),
GRACE, and ParetoGNN on both tasks under each MGDA normalisation, plus
``l2/direction``: a local variant (this script only) whose update is the min-norm
element of the *normalised* gradients (LibMTL's MGDA) instead of the weights
applied to the raw losses (Sener and Koltun's and the ParetoGNN authors' code, and
core's ``mgda_combine``). Prints the MGDA weights along training (from
``metrics.jsonl``) and a probe of ``a``, ``b`` and the label with 5 labels a class
(mean of 5 draws) and core's ``linear_probe`` at 5% and 50% of the training nodes.

``motifs``: GraphCL and GraphMAE on ``graph.motifs`` (GIN, sum pooling) against the
random-init GIN, at several step counts, in the benchmark's setting and in the
sanity variants: ``--features degree`` (node features one-hot degree: predictable
from structure, GraphMAE's assumption) and ``--views`` (GraphCL's augmentation).

    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=graph python benchmarks/graph_sanity.py mgda --out OUT
    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=graph python benchmarks/graph_sanity.py motifs --out OUT

One thread; every row trains from the same seeded initialisation.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from selfsup.api import EvalContext, TrainConfig, Trainer, get_registry, mgda_combine

NODE_TRAIN = {"batch_size": 1, "lr": 1e-3, "weight_decay": 1e-5, "warmup_steps": 10}
TWO_FACTOR = {"n_features": 64, "feature_signal": 3.0, "p_in": 0.02, "p_out": 0.002}
TASKS = ["graph.node_clustering", "graph.pairwise_distance"]


def mgda_direction(
    losses: Sequence[torch.Tensor], shared: Sequence[torch.nn.Parameter], *,
    normalization: str = "l2",
) -> tuple[torch.Tensor, torch.Tensor]:
    """MGDA whose update is the min-norm point of the unit-norm task gradients.

    Each loss is divided by its own (detached) gradient norm before core's solver,
    so ``sum_t w_t L_t / |g_t|`` has the gradient ``sum_t w_t g_t / |g_t|`` (LibMTL's
    ``_backward_new_grads`` on the normalised gradients). ``normalization`` is
    ignored: the division is the l2 normalisation.
    """
    params = [p for p in shared if p.requires_grad]
    scaled = []
    for loss in losses:
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        norm = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads if g is not None))
        scaled.append(loss / norm.clamp_min(1e-12))
    return mgda_combine(scaled, params, normalization="none")


def _train(task: Any, dataset: Any, steps: int, train: dict[str, Any]) -> tuple[float, Path]:
    run_dir = Path(tempfile.mkdtemp(prefix="graph_sanity_"))  # fresh: never resume
    config = TrainConfig(**{**train, "steps": steps, "progress": False, "checkpoint_every": 0})
    start = time.perf_counter()
    Trainer(task, dataset, config, run_dir=run_dir).fit()
    return time.perf_counter() - start, run_dir


def _weights_along(run_dir: Path) -> list[dict[str, float]]:
    rows = []
    for path in run_dir.rglob("metrics.jsonl"):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            picked = {k.split("/")[-1]: round(v, 3) for k, v in row.items()
                      if k.startswith("weight/")}
            if picked:
                rows.append({"step": row.get("step"), **picked})
    return rows


def _few_label_probe(z: np.ndarray, targets: dict[str, np.ndarray], train: np.ndarray,
                     test: np.ndarray, label: np.ndarray, per_class: int = 5) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit(z[train]).transform(z)
    out = {}
    for name, t in targets.items():
        accs = []
        for seed in range(5):
            rng = np.random.default_rng(seed)
            sub = np.concatenate([rng.choice(train[label[train] == c], per_class, replace=False)
                                  for c in np.unique(label)])
            clf = LogisticRegression(max_iter=2000).fit(z[sub], t[sub])
            accs.append(clf.score(z[test], t[test]))
        out[f"probe5.{name}"] = round(float(np.mean(accs)), 3)
    return out


def run_mgda(args: argparse.Namespace) -> dict[str, Any]:
    reg = get_registry()
    dataset = reg.get("dataset", "graph.two_factor").build(**TWO_FACTOR)
    data = dataset.data
    y = data.y.numpy()
    targets = {"a": y % 2, "b": y // 2, "label": y}
    train = data.train_mask.nonzero().view(-1).numpy()
    test = data.test_mask.nonzero().view(-1).numpy()
    encoder_spec = reg.get("encoder", "graph.gcn")
    probe = reg.get("evaluator", "core.linear_probe").build(label_fractions=[0.5, 0.05])
    ctx = EvalContext(seeds=(0, 1, 2))
    from selfsup_graph.pretexts import paretognn

    rows: dict[str, Any] = {}
    plans: list[tuple[str, str | None, dict[str, Any], Callable[..., Any] | None]] = [
        ("random-init GCN", None, {}, None),
        ("graph.node_clustering", "graph.node_clustering", {}, None),
        ("graph.pairwise_distance", "graph.pairwise_distance", {}, None),
        ("graph.grace", "graph.grace", {}, None),
    ]
    for norm in args.normalizations:
        plans.append((f"paretognn {norm}", "graph.paretognn",
                      {"tasks": TASKS, "normalization": norm}, None))
    plans.append(("paretognn l2/direction", "graph.paretognn", {"tasks": TASKS}, mgda_direction))
    plans = [p for p in plans if not args.rows or p[0] in args.rows]
    for name, key, options, combine in plans:
        torch.manual_seed(0)
        encoder = encoder_spec.build(dataset)
        seconds, weights = 0.0, []
        if key is not None:
            task = reg.get("pretext", key).build(encoder, dataset, **options)
            original = paretognn.mgda_combine
            if combine is not None:
                paretognn.mgda_combine = combine  # type: ignore[assignment]
            try:
                seconds, run_dir = _train(task, dataset, args.steps, NODE_TRAIN)
            finally:
                paretognn.mgda_combine = original  # type: ignore[assignment]
            weights = _weights_along(run_dir)
            encoder = task.encoder
        encoder.eval()
        with torch.no_grad():
            z = encoder.embed(data).numpy()
        metrics = _few_label_probe(z, targets, train, test, y)
        metrics.update({k: round(v, 3) for k, v in probe(encoder, dataset, ctx).items()
                        if "accuracy" in k and not k.endswith("_std")})
        rows[name] = {"metrics": metrics, "seconds": round(seconds, 1),
                      "weights": weights[:: max(1, len(weights) // 8)] + weights[-1:]}
        print(name, metrics, f"{seconds:.1f} s", flush=True)
        if weights:
            print("   weights", rows[name]["weights"], flush=True)
    return rows


MOTIF_TRAIN = {"batch_size": 64, "lr": 1e-3, "weight_decay": 1e-5, "warmup_steps": 10}
#: name -> (dataset options, views, pretexts)
MOTIF_SETTINGS: dict[str, tuple[dict[str, Any], dict[str, Any], tuple[str, ...]]] = {
    # the benchmark: noise features, default views (drop 20% of directed edges, mask 20%
    # of the feature columns)
    "bench": ({}, {}, ("graph.graphcl", "graph.graphmae")),
    # GraphCL with node and edge dropping that may hit the motif ...
    "drop-any": ({"mark_motif": True},
                 {"drop_node": 0.2, "drop_edge": 0.2, "mask_feature": 0.0}, ("graph.graphcl",)),
    # ... and the same strengths on the random tree only: every view keeps the label
    "drop-tree": ({"mark_motif": True}, {"drop_node": 0.2, "drop_edge": 0.2,
                                         "mask_feature": 0.0, "keep_marked": True},
                  ("graph.graphcl",)),
    # one-hot degree features: predictable from the structure (GraphMAE's assumption)
    "degree": ({"features": "degree"}, {}, ("graph.graphmae", "graph.graphcl")),
    # GraphCL's two views again, on degree features
    "degree-drop-any": ({"features": "degree", "mark_motif": True},
                        {"drop_node": 0.2, "drop_edge": 0.2, "mask_feature": 0.0},
                        ("graph.graphcl",)),
    "degree-drop-tree": ({"features": "degree", "mark_motif": True},
                         {"drop_node": 0.2, "drop_edge": 0.2, "mask_feature": 0.0,
                          "keep_marked": True}, ("graph.graphcl",)),
}


def run_motifs(args: argparse.Namespace) -> dict[str, Any]:
    reg = get_registry()
    encoder_spec = reg.get("encoder", "graph.gin")
    probe = reg.get("evaluator", "core.linear_probe").build(label_fractions=[1.0, 0.1])
    ctx = EvalContext(seeds=(0, 1, 2))
    rows: dict[str, Any] = {}
    for setting in args.settings:
        options, views, pretexts = MOTIF_SETTINGS[setting]
        dataset = reg.get("dataset", "graph.motifs").build(
            n_graphs=args.n_graphs, **options, views={**views})
        plans: list[tuple[str, int]] = [("random-init GIN", 0)]
        plans += [(key, steps) for key in pretexts for steps in args.steps]
        for key, steps in plans:
            for init in range(args.inits if not steps else 1):
                torch.manual_seed(init)
                encoder = encoder_spec.build(dataset, pooling="add")
                seconds = 0.0
                if steps:
                    task = reg.get("pretext", key).build(encoder, dataset)
                    seconds, _ = _train(task, dataset, steps, MOTIF_TRAIN)
                    encoder = task.encoder
                metrics = {k: round(v, 3) for k, v in probe(encoder, dataset, ctx).items()
                           if "accuracy" in k}
                name = f"{setting} | {key}" + (f" | {steps} steps" if steps else f" | init {init}")
                rows[name] = {"metrics": metrics, "seconds": round(seconds, 1)}
                print(name, metrics, f"{seconds:.1f} s", flush=True)
    return rows


def run_ceiling(args: argparse.Namespace) -> dict[str, Any]:
    """Supervised GIN (sum pooling) + linear head on all training graphs: train and test
    accuracy by depth and features: what the architecture can express on graph.motifs."""
    from torch_geometric.data import Batch

    reg = get_registry()
    rows: dict[str, Any] = {}
    for features in ("noise", "degree"):
        dataset = reg.get("dataset", "graph.motifs").build(
            n_graphs=args.n_graphs, features=features)
        split = {s: Batch.from_data_list([dataset.graphs[i] for i in dataset.split_index[s]])
                 for s in ("train", "test")}
        for n_layers in args.layers:
            torch.manual_seed(0)
            encoder = reg.get("encoder", "graph.gin").build(
                dataset, pooling="add", n_layers=n_layers)
            head = torch.nn.Linear(64, 4)
            params = [*encoder.parameters(), *head.parameters()]
            opt = torch.optim.Adam(params, lr=1e-3)
            start = time.perf_counter()
            for _ in range(args.epochs):
                for idx in torch.randperm(split["train"].num_graphs).split(64):
                    sub = Batch.from_data_list([split["train"][int(i)] for i in idx])
                    loss = torch.nn.functional.cross_entropy(
                        head(encoder.embed(sub)), sub.y.view(-1))
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                acc = {s: float((head(encoder.embed(b)).argmax(1) == b.y.view(-1))
                                .float().mean()) for s, b in split.items()}
            name = f"{features} features, {n_layers}-layer GIN"
            rows[name] = {"train": round(acc["train"], 3), "test": round(acc["test"], 3),
                          "seconds": round(time.perf_counter() - start, 1)}
            print(name, rows[name], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    mgda = sub.add_parser("mgda")
    mgda.add_argument("--steps", type=int, default=400)
    mgda.add_argument("--normalizations", nargs="+", default=["l2", "loss+", "loss", "none"])
    mgda.add_argument("--rows", nargs="*", default=[],
                      help="only these rows, e.g. 'graph.pairwise_distance' 'paretognn none'")
    motifs = sub.add_parser("motifs")
    motifs.add_argument("--settings", nargs="+", default=list(MOTIF_SETTINGS),
                        choices=list(MOTIF_SETTINGS))
    motifs.add_argument("--steps", type=int, nargs="+", default=[50, 200, 800])
    motifs.add_argument("--n-graphs", type=int, default=600)
    motifs.add_argument("--inits", type=int, default=3, help="random-init GIN seeds")
    ceiling = sub.add_parser("ceiling")
    ceiling.add_argument("--layers", type=int, nargs="+", default=[2, 4])
    ceiling.add_argument("--epochs", type=int, default=150)
    ceiling.add_argument("--n-graphs", type=int, default=600)
    for p in (mgda, motifs, ceiling):
        p.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs = {"mgda": run_mgda, "motifs": run_motifs, "ceiling": run_ceiling}
    rows = runs[args.what](args)
    wall = time.perf_counter() - start
    print(f"wall {wall:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.what}.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "wall_s": wall,
                    "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
