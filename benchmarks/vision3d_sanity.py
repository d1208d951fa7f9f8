"""Issue 16's sanity settings for the vision3d plugin: Point-MAE where its paper holds.

Point-MAE (Pang et al., ECCV 2022) pretrains on aligned, complete shapes and is judged
by fine-tuning (and a linear SVM on max + mean pooled tokens). ``pretrain`` trains it
in that setting (``vision3d.shapes`` with ``rotation="none"``, ``partial=0``; the
``vision3d.shapes`` benchmark's encoder and recipe, 300 steps) and exports it. Then,
against a random-init transformer of the same architecture:

- ``pooling``: ``core.linear_probe`` (100% and 10% labels) on each token pooling of
  the ``tokens`` face: ``mean+max`` (the ``embedding`` face, summed), ``concat``
  (``[mean, max]``, Point-MAE's SVM features), ``mean``, ``max``;
- ``finetune``: ``core.finetune`` with 10% of the labels at each ``--lr``
  (``--standardise``: a BatchNorm on the embedding before the linear head, as
  Point-MAE's classifier head has).

    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=vision3d python benchmarks/vision3d_sanity.py \
        pretrain --run-dir RUN
    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=vision3d python benchmarks/vision3d_sanity.py \
        pooling --encoder RUN
    OMP_NUM_THREADS=1 SELFSUP_PLUGINS=vision3d python benchmarks/vision3d_sanity.py \
        finetune --encoder RUN --lr 1e-3 1e-4

``pretrain --setting equivariant_clean`` (and ``equivariant_clean_views``,
``equivariant_no_scale``) trains ``vision3d.equivariant`` instead, scored by
``vision3d.rotation_r2`` (``--random-init``: beside a random-init transformer), to
find what stops its equivariant term in the ``vision3d.shapes`` benchmark.

One thread; the random-init row is built with ``torch.manual_seed(--init-seed)``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from selfsup.api import EvalContext, get_registry, load_exported

POOLINGS = ("mean+max", "concat", "mean", "max")
#: Point-MAE where its paper's setting holds (aligned, complete clouds, as ModelNet):
#: the vision3d.shapes benchmark's encoder and recipe, 300 steps
ALIGNED_POINT_MAE: dict[str, Any] = {
    "name": "vision3d.point_mae_aligned",
    "seed": 0,
    "dataset": {
        "name": "vision3d.shapes",
        "n_per_class": 100,
        "n_points": 512,
        "rotation": "none",
        "partial": 0.0,
    },
    "encoder": {
        "name": "vision3d.point_transformer",
        "n_patches": 32,
        "group_size": 16,
        "embed_dim": 96,
        "depth": 3,
        "n_heads": 4,
    },
    "pretext": {"name": "vision3d.point_mae", "mask_ratio": 0.6},
    "training": {"steps": 300, "batch_size": 32, "lr": 1e-3, "warmup_steps": 30, "seed": 0},
    "evaluators": [{"name": "core.linear_probe", "label_fractions": [0.1]}],
    "evaluation": {"seeds": [0]},
}


class Pooled(nn.Module):
    """A point transformer whose ``embed`` pools its token states one way."""

    def __init__(self, encoder: nn.Module, pooling: str) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling {pooling!r} is not one of {POOLINGS}")
        self.encoder = encoder
        self.pooling = pooling

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        s = self.encoder.tokens(batch).states  # type: ignore[operator]
        mean, top = s.mean(dim=1), s.max(dim=1).values
        if self.pooling == "mean+max":
            return mean + top
        if self.pooling == "concat":
            return torch.cat([mean, top], -1)
        return mean if self.pooling == "mean" else top

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


class Standardised(nn.Module):
    """An encoder whose embedding passes a BatchNorm without affine parameters, as the
    batch-normed MLP head of Point-MAE's classifier does: a linear head then sees
    standardised features, whatever the embedding's common offset and scale."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.embed_dim = int(encoder.embed_dim)  # type: ignore[arg-type]
        self.norm = nn.BatchNorm1d(self.embed_dim, affine=False)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return self.norm(self.encoder.embed(batch))  # type: ignore[operator]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.embed(batch)


def _setting(args: argparse.Namespace) -> tuple[Any, Any, dict[str, nn.Module]]:
    """The registry, the aligned dataset, a random-init transformer (seeded by
    ``--init-seed``) and the exported Point-MAE of ``--encoder``."""
    reg = get_registry()
    data = dict(ALIGNED_POINT_MAE["dataset"])
    dataset = reg.get("dataset", data.pop("name")).build(**data)
    arch = dict(ALIGNED_POINT_MAE["encoder"])
    torch.manual_seed(args.init_seed)
    models = {"random init": reg.get("encoder", arch.pop("name")).build(dataset, **arch)}
    models["vision3d.point_mae"] = load_exported(args.encoder)[1].encoder
    return reg, dataset, models


def pooling(args: argparse.Namespace) -> None:
    reg, dataset, models = _setting(args)
    probe = reg.get("evaluator", "core.linear_probe").build(label_fractions=[1.0, 0.1])
    ctx = EvalContext(seeds=(0,))
    keys = ("linear_probe.accuracy", "linear_probe.accuracy@10%")
    print(f"| encoder | pooling | {' | '.join(keys)} | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for name, model in models.items():
        for how in POOLINGS:
            start = time.perf_counter()
            metrics = probe(Pooled(model, how), dataset, ctx)
            values = " | ".join(f"{metrics[k]:.3f}" for k in keys)
            print(f"| {name} | {how} | {values} | {time.perf_counter() - start:.1f} |", flush=True)


def finetune(args: argparse.Namespace) -> None:
    reg, dataset, models = _setting(args)
    ctx = EvalContext(seeds=(0,))
    fraction = args.fraction
    key = f"finetune.accuracy@{fraction:.0%}" if fraction < 1 else "finetune.accuracy"
    print(f"| encoder | lr | epochs | min steps | {key} | seconds |")
    print("| --- | --- | --- | --- | --- | --- |")
    for lr in args.lr:
        for min_steps in args.min_steps:
            evaluate = reg.get("evaluator", "core.finetune").build(
                label_fractions=[fraction], lr=lr, epochs=args.epochs, min_steps=min_steps
            )
            for name, model in models.items():
                start = time.perf_counter()
                metrics = evaluate(Standardised(model) if args.standardise else model, dataset, ctx)
                seconds = time.perf_counter() - start
                if args.standardise:
                    name = f"{name} + BatchNorm"
                print(
                    f"| {name} | {lr:g} | {args.epochs} | {min_steps} | {metrics[key]:.3f} "
                    f"| {seconds:.1f} |",
                    flush=True,
                )


#: vision3d.equivariant where its group action is exact: aligned complete clouds and
#: views that only rotate (no scale, jitter, dropout or crop), so view 2 is R view 1
CLEAN_EQUIVARIANT: dict[str, Any] = {
    **ALIGNED_POINT_MAE,
    "name": "vision3d.equivariant_clean",
    "dataset": {
        **ALIGNED_POINT_MAE["dataset"],
        "views": {
            "rotation": "so3",
            "scale_min": 1.0,
            "scale_max": 1.0,
            "jitter": 0.0,
            "dropout_max": 0.0,
            "crop_prob": 0.0,
        },
    },
    "pretext": {"name": "vision3d.equivariant"},
    "training": {**ALIGNED_POINT_MAE["training"], "steps": 150, "warmup_steps": 15},
    "evaluators": [{"name": "vision3d.rotation_r2"}],
}
#: the same clean views on the vision3d.shapes benchmark's clouds (random SO(3) poses,
#: half partial scans): do the clouds or the views' distortions stop the term?
CLEAN_VIEWS_BENCH_CLOUDS: dict[str, Any] = {
    **CLEAN_EQUIVARIANT,
    "name": "vision3d.equivariant_clean_views",
    "dataset": {**CLEAN_EQUIVARIANT["dataset"], "rotation": "so3", "partial": 0.5},
}
#: the benchmark's clouds and views but for the per-axis scale (a view's only
#: transformation besides the rotation that the group action does not model)
NO_SCALE_VIEWS: dict[str, Any] = {
    **CLEAN_VIEWS_BENCH_CLOUDS,
    "name": "vision3d.equivariant_no_scale",
    "dataset": {
        **CLEAN_VIEWS_BENCH_CLOUDS["dataset"],
        "views": {"scale_min": 1.0, "scale_max": 1.0},
    },
}
SETTINGS = {
    "point_mae_aligned": ALIGNED_POINT_MAE,
    "equivariant_clean": CLEAN_EQUIVARIANT,
    "equivariant_clean_views": CLEAN_VIEWS_BENCH_CLOUDS,
    "equivariant_no_scale": NO_SCALE_VIEWS,
}


def pretrain(args: argparse.Namespace) -> None:
    from selfsup.config import parse_experiment
    from selfsup.runner import run_experiment

    setting = SETTINGS[args.setting]
    start = time.perf_counter()
    result = run_experiment(parse_experiment(setting), args.run_dir)
    print(f"pretrained and exported to {args.run_dir} in {time.perf_counter() - start:.0f} s")
    print({k: v for k, v in result.get("metrics", {}).items() if "n_train" not in k})
    if args.random_init:
        reg = get_registry()
        data = dict(setting["dataset"])
        dataset = reg.get("dataset", data.pop("name")).build(**data)
        arch = dict(setting["encoder"])
        torch.manual_seed(args.init_seed)
        model = reg.get("encoder", arch.pop("name")).build(dataset, **arch)
        ctx = EvalContext(seeds=(0,))
        metrics: dict[str, float] = {}
        for ev in setting["evaluators"]:
            options = {k: v for k, v in ev.items() if k != "name"}
            metrics.update(reg.get("evaluator", ev["name"]).build(**options)(model, dataset, ctx))
        print("random init", {k: v for k, v in metrics.items() if "n_train" not in k})


def positions(args: argparse.Namespace) -> None:
    """Point-MAE's Chamfer loss with the encoder's states, and with the decoder given
    only the centres' positions (states zeroed): if the two end alike, the hidden
    patches are predictable from where the centres are, and the target gives the
    encoder nothing to learn."""
    from selfsup_vision3d.pretexts.point_mae import PointMAE, PointMAEConfig

    reg = get_registry()
    setting = SETTINGS[args.setting]
    data = dict(setting["dataset"])
    dataset = reg.get("dataset", data.pop("name")).build(**data)
    clouds = torch.stack([dataset.pretrain_set()[i] for i in range(len(dataset.pretrain_set()))])
    rows = []
    for variant in ("encoder states + positions", "positions only"):
        torch.manual_seed(args.init_seed)
        arch = dict(setting["encoder"])
        encoder = reg.get("encoder", arch.pop("name")).build(dataset, **arch)
        task = PointMAE(encoder, PointMAEConfig(mask_ratio=setting["pretext"]["mask_ratio"]))
        if variant == "positions only":
            states_of = encoder.masked_tokens

            def zeroed(batch: torch.Tensor, hide: torch.Tensor, f: Any = states_of) -> Any:
                tokens = f(batch, hide)
                return type(tokens)(torch.zeros_like(tokens.states), tokens.mask)

            encoder.masked_tokens = zeroed  # type: ignore[method-assign]
        opt = torch.optim.AdamW(task.parameters(), lr=1e-3, weight_decay=0.05)
        gen = torch.Generator().manual_seed(0)
        losses = []
        start = time.perf_counter()
        for step in range(args.steps):
            for group in opt.param_groups:
                group["lr"] = 1e-3 * min(1.0, (step + 1) / 30)
            idx = torch.randint(len(clouds), (32,), generator=gen)
            loss = task(clouds[idx], gen)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        tail = sum(losses[-50:]) / 50
        rows.append((variant, losses[0], tail, time.perf_counter() - start))
    print("| decoder input | Chamfer, step 1 | Chamfer, mean of the last 50 steps | s |")
    print("| --- | --- | --- | --- |")
    for variant, first, tail, secs in rows:
        print(f"| {variant} | {first:.4f} | {tail:.4f} | {secs:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pooling", help="probe each token pooling of Point-MAE and random init")
    p.add_argument(
        "--encoder", type=Path, required=True, help="the run folder `pretrain` exported to"
    )
    t = sub.add_parser("pretrain", help="Point-MAE on aligned complete shapes, exported")
    t.add_argument("--run-dir", type=Path, required=True)
    t.add_argument("--setting", choices=sorted(SETTINGS), default="point_mae_aligned")
    t.add_argument("--random-init", action="store_true", help="also score a random init")
    t.add_argument("--init-seed", type=int, default=0)
    q2 = sub.add_parser("positions", help="Point-MAE's loss with and without encoder states")
    q2.add_argument("--setting", choices=sorted(SETTINGS), default="point_mae_aligned")
    q2.add_argument("--steps", type=int, default=300)
    q2.add_argument("--init-seed", type=int, default=0)
    f = sub.add_parser("finetune", help="core.finetune of Point-MAE and random init, by lr")
    f.add_argument("--lr", type=float, nargs="+", default=[1e-3])
    f.add_argument("--min-steps", type=int, nargs="+", default=[100])
    f.add_argument("--epochs", type=int, default=10)
    f.add_argument("--fraction", type=float, default=0.1)
    f.add_argument(
        "--standardise", action="store_true", help="BatchNorm the embedding before the head"
    )
    for q in (p, f):
        if q is f:
            q.add_argument("--encoder", type=Path, required=True, help="as for pooling")
        q.add_argument("--init-seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    {"pooling": pooling, "finetune": finetune, "pretrain": pretrain,
     "positions": positions}[args.command](args)


if __name__ == "__main__":
    main()
