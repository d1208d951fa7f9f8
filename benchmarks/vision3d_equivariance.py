"""How much pose the vision3d.shapes encoders keep: rotation-prediction R^2 and probe.

Trains ``vision3d.equivariant`` (or ``--pretext``) on ``vision3d.shapes`` with the
benchmark's encoder, training settings and views (150 steps, batch 32, AdamW lr 1e-3 with 15 warm-up
steps, through selfsup's Trainer), then scores it, a random-init encoder and, when
a ``selfsup bench --benchmark vision3d.shapes`` folder is given, that run's exported
pretexts, with ``core.linear_probe`` (100%/10% labels) and ``vision3d.rotation_r2``.

    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=vision3d python benchmarks/vision3d_equivariance.py \
        --bench BENCH_OUT --out OUT
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from selfsup.api import EvalContext, TrainConfig, Trainer, get_registry, load_exported


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, help="a vision3d.shapes bench output folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--pretext", default="vision3d.equivariant",
                        help="the plugin pretext to train (default vision3d.equivariant)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    reg = get_registry()
    spec = reg.get("benchmark", "vision3d.shapes")
    dataset = reg.get("dataset", spec.dataset).build(**spec.dataset_options)
    encoder_spec = reg.get("encoder", spec.encoder)
    ctx = EvalContext(seeds=(0,))
    evaluators = {
        "probe": reg.get("evaluator", "core.linear_probe").build(label_fractions=[1.0, 0.1]),
        "r2": reg.get("evaluator", "vision3d.rotation_r2").build(),
    }
    models: dict[str, torch.nn.Module] = {}
    torch.manual_seed(0)
    models["random_init"] = encoder_spec.build(dataset, **spec.encoder_options)
    torch.manual_seed(0)
    encoder = encoder_spec.build(dataset, **spec.encoder_options)
    task = reg.get("pretext", args.pretext).build(encoder, dataset)
    config = TrainConfig(**{**spec.train, "steps": args.steps})
    start = time.perf_counter()
    Trainer(task, dataset, config, run_dir=args.out / args.pretext).fit()
    train_seconds = time.perf_counter() - start
    models[args.pretext] = task.encoder
    if args.bench:
        for key in spec.pretexts:
            folder = args.bench / spec.name / key
            if (folder / "encoder.json").is_file():
                models[key] = load_exported(folder)[1].encoder
    rows = {}
    for name, model in models.items():
        metrics: dict[str, float] = {}
        for fn in evaluators.values():
            metrics.update(fn(model, dataset, ctx))
        rows[name] = metrics
        print(name, {k: round(v, 3) for k, v in metrics.items() if "n_train" not in k},
              flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "equivariance.json").write_text(json.dumps(
        {"train_seconds": train_seconds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
