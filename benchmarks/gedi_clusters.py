"""The cluster head of ``core.gedi``, scored on test labels, as ``selfsup bench`` trains it.

``selfsup bench`` exports the encoder only, so the GEDI cluster head's own
assignments (``argmax_y p(y|x)``) are not in its table. This script builds the
benchmark's ``core.gedi`` experiment exactly as the bench does (same dataset,
encoder and pretext options, training settings and seed), trains it with the
same trainer, and scores the head on the test split: NMI and ARI against the
labels, cluster accuracy (the best one-to-one matching of clusters to classes,
Hungarian), and how evenly the test samples fill the clusters. With
``--bench-dir`` it checks that the encoder it trained is the one the bench
exported (bit-identical on CPU), so the head belongs to that table's row.

    python benchmarks/gedi_clusters.py --benchmark core.digits --bench-dir OUT/core.digits
    python benchmarks/gedi_clusters.py --benchmark core.digits --set ebm_weight=0 \\
        --evaluator core.linear_probe --evaluator core.knn --evaluator core.kmeans

``--set KEY=VALUE`` overrides a pretext option (an ablation; then the encoder
differs from the bench's), ``--seed`` the training seed; ``--evaluator`` also runs
those evaluators of the benchmark on the trained encoder, with ``--seeds``.
"""

from __future__ import annotations

import argparse
import ast
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from selfsup.components import EvalContext
from selfsup.config import Component, Experiment
from selfsup.evaluators.embeddings import extract_embeddings
from selfsup.objectives.gedi import ClusterHead
from selfsup.plugins import get_registry
from selfsup.runner import build, eval_context, evaluate
from selfsup.trainer import Trainer

KEY = "core.gedi"


def cluster_accuracy(y: np.ndarray, assign: np.ndarray) -> float:
    """Accuracy of the best one-to-one map from clusters to classes (Hungarian)."""
    k = int(max(y.max(), assign.max())) + 1
    counts = np.zeros((k, k), dtype=np.int64)
    np.add.at(counts, (assign, y), 1)
    rows, cols = linear_sum_assignment(-counts)
    return float(counts[rows, cols].sum() / len(y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--benchmark", default="core.digits")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a core.gedi option (repeatable)")
    ap.add_argument("--bench-dir", help="the bench's OUT/<benchmark> folder, to compare encoders")
    ap.add_argument("--evaluator", action="append", default=[],
                    help="also run this evaluator of the benchmark (repeatable)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--seed", type=int, default=0,
                    help="training seed (the bench's is 0; another one is a different run)")
    args = ap.parse_args()

    registry = get_registry()
    spec = registry.get("benchmark", args.benchmark)
    options = dict(spec.pretext_options.get(KEY, {}))
    for item in args.set:
        key, _, value = item.partition("=")
        options[key] = ast.literal_eval(value)
    training = {**spec.train, "progress": False, "checkpoint_every": 0}
    exp = Experiment(
        name=f"{spec.name}/{KEY}",
        dataset=Component(spec.dataset, dict(spec.dataset_options)),
        encoder=Component(spec.encoder, dict(spec.encoder_options)),
        pretext=Component(KEY, options),
        training=training,
        evaluators=[Component(e, dict(spec.evaluator_options.get(e, {})))
                    for e in args.evaluator],
        evaluation={"seeds": list(args.seeds)},
        seed=args.seed,
    )
    dataset = registry.get("dataset", spec.dataset).build(**spec.dataset_options)
    built = build(exp, registry, dataset)
    assert built.task is not None
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(built.task, dataset, exp.train_config(), Path(run_dir)).fit()
        lines = (Path(run_dir) / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    last = [r for r in records if "loss" in r][-1]

    ctx = EvalContext(device="cpu")
    logits, y = extract_embeddings(ClusterHead(built.task), dataset, "test", ctx)  # type: ignore[arg-type]
    assign = logits.argmax(axis=1)
    shares = np.bincount(assign, minlength=logits.shape[1]) / len(assign)
    report: dict[str, Any] = {
        "options": options,
        "head.nmi": normalized_mutual_info_score(y, assign),
        "head.ari": adjusted_rand_score(y, assign),
        "head.cluster_accuracy": cluster_accuracy(y, assign),
        "head.clusters_used": int((shares > 0).sum()),
        "head.largest_share": float(shares.max()),
        "head.smallest_share": float(shares.min()),
        "last_logged_step": {k: v for k, v in last.items() if k not in ("phase", "epoch")},
    }
    if args.bench_dir:
        from safetensors.torch import load_file

        exported = load_file(str(Path(args.bench_dir) / KEY / "encoder.safetensors"))
        mine = built.encoder.state_dict()
        report["same_encoder_as_bench"] = all(
            torch.equal(mine[k].cpu(), v) for k, v in exported.items() if k in mine
        ) and set(exported) <= set(mine)
    if args.evaluator:
        report["metrics"] = evaluate(built.encoder, built, eval_context(exp, built, "cpu"))
    print(json.dumps(report, indent=2, default=float))


if __name__ == "__main__":
    main()
