"""Molecular plugin at scale: the MOSES token cache, MLM pretraining on it at a
documented budget, and the downstream learning curve on FreeSolv and solubility.

Subcommands (run them in this order; each prints what BENCHMARKS.md quotes):

``cache``
    Builds (or opens) the MOSES token cache of ``selfsup_molecular.moses`` and
    reports its counts and build rate (molecules/s canonicalised + tokenised), then
    reads ``--read`` molecules through the streaming dataset and its collate
    (molecules/s read from the memory-mapped cache).
``speed``
    Training molecules/s of a few encoder widths (``--steps`` MLM steps each), to
    size a budget.
``pretrain``
    ``selfsup_molecular.pretrained.pretrain`` at ``--budget`` (``cpu`` or
    ``gpu_train``; ``--molecules`` overrides the total), logging JSONL to ``--log``;
    saves the encoder (safetensors + card) at every snapshot. A finished run of the
    same setting is reused (``--no-reuse`` retrains).
``evaluate``
    Frozen-feature evaluation of every saved snapshot of ``--budget`` beside the
    baselines, on FreeSolv (scaffold split, and the random split over ``--seeds``)
    and solubility (the shipped split): ``core.linear_probe`` (ridge, alpha chosen
    on val) and ``molecular.random_forest`` (100 trees, 3 seeds), RMSE and MAE.
    Baselines, built through the registry exactly as ``selfsup bench`` builds them:
    ``core.mean``, ``core.random_init``, ``core.supervised`` (60 epochs, its encoder
    fine-tuned end to end and probed), ``molecular.morgan``,
    ``molecular.rdkit_descriptors``, and for FreeSolv ``molecular.freesolv_calc``
    (plus its raw RMSE/MAE, no fit). Writes ``--out`` (JSON) and prints Markdown.
``finetune``
    ``core.finetune`` (encoder and linear head trained end to end, ``--epochs``,
    all labels, seeds 0-2) from a random-init encoder and from the ``--snapshots``
    of ``--budget``, on FreeSolv's random splits and solubility: does pretraining
    help as an initialisation where its frozen features do not?

    OMP_NUM_THREADS=1 python benchmarks/molecular_scale.py cache
    OMP_NUM_THREADS=1 python benchmarks/molecular_scale.py pretrain --budget cpu \
        --log /tmp/mol/pretrain.jsonl
    OMP_NUM_THREADS=1 python benchmarks/molecular_scale.py evaluate --budget cpu \
        --out /tmp/mol/eval.json

Every step uses one thread (``torch.set_num_threads(1)``) unless ``--threads``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def _cache() -> Any:
    from selfsup_molecular.moses import corpus_cache

    return corpus_cache()


def cmd_cache(args: argparse.Namespace) -> None:
    from torch.utils.data import DataLoader

    from selfsup_molecular.moses import collate_ids
    from selfsup_molecular.streaming import TokenStream

    t0 = time.perf_counter()
    cache = _cache()
    print(f"{cache}\n{cache.report.summary()}\nopened/built in {time.perf_counter() - t0:.1f} s")
    print(f"vocabulary ({cache.tokenizer.vocab_size}): {' '.join(cache.tokenizer.tokens)}")
    lengths = cache.lengths()
    print(f"tokens per molecule with <bos>/<eos>: mean {lengths.mean():.1f}, "
          f"max {lengths.max()}, total {int(lengths.sum())}")
    stream = TokenStream(cache, seed=0)
    loader = DataLoader(stream, batch_size=256, num_workers=args.workers,
                        collate_fn=lambda b: collate_ids(b, cache.tokenizer))
    t0, n = time.perf_counter(), 0
    for batch in loader:
        n += int(batch["input_ids"].shape[0])
        if n >= args.read:
            break
    dt = time.perf_counter() - t0
    print(f"streamed {n} molecules (read + pad + decode) in {dt:.1f} s: {n / dt:.0f} "
          f"molecules/s ({args.workers} worker(s))")


def cmd_speed(args: argparse.Namespace) -> None:
    from selfsup_molecular.molformer import build as build_encoder
    from selfsup_molecular.moses import CachedSmilesDataset, collate_ids
    from selfsup_molecular.pretexts.mlm import build as build_mlm

    cache = _cache()
    ds = CachedSmilesDataset(cache, name="molecular.moses")
    rng = np.random.default_rng(0)
    widths = [(64, 2, 128), (96, 3, 192), (128, 4, 256)]
    for dim, layers, ffn in widths:
        torch.manual_seed(0)
        enc = build_encoder(ds, embed_dim=dim, n_layers=layers, n_heads=4, ffn_dim=ffn)
        task = build_mlm(enc, ds)
        opt = torch.optim.AdamW(task.parameters(), lr=1e-3)
        gen = torch.Generator().manual_seed(0)
        times = []
        for step in range(args.steps):
            idx = rng.choice(len(cache), args.batch_size, replace=False)
            batch = collate_ids([cache.ids(int(i)) for i in idx], cache.tokenizer)
            t = time.perf_counter()
            loss = task(batch, gen)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step >= 3:
                times.append(time.perf_counter() - t)
        n_params = sum(p.numel() for p in enc.parameters())
        med = float(np.median(times))
        print(f"width {dim}, {layers} layers, FFN {ffn} ({n_params} params): "
              f"{args.batch_size / med:.0f} molecules/s ({med * 1000:.0f} ms a step of "
              f"{args.batch_size})")


def cmd_pretrain(args: argparse.Namespace) -> None:
    import dataclasses

    from selfsup_molecular.pretrained import BUDGETS, pretrain, snapshots

    config = BUDGETS[args.budget]
    if args.molecules:
        config = dataclasses.replace(config, molecules=args.molecules)
    cache = _cache()
    log_file = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115

    def on_log(record: dict[str, Any]) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if log_file is not None:
            log_file.write(line + "\n")
            log_file.flush()

    t0 = time.perf_counter()
    out = pretrain(config, cache, device=args.device, num_workers=args.workers,
                   reuse=not args.no_reuse, log_every=args.log_every, on_log=on_log)
    print(f"pretrained in {time.perf_counter() - t0:.0f} s -> {out}")
    for molecules, path in snapshots(out):
        card = json.loads(path.with_suffix(".json").read_text())
        print(f"  {molecules:>9} molecules: step {card['steps']}, {card['seconds']:.0f} s, "
              f"loss {card['last_loss']:.3f}")


# -- evaluation ---------------------------------------------------------------------------------
def _evaluate(model: torch.nn.Module, dataset: Any, registry: Any, ctx: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    probe = registry.get("evaluator", "core.linear_probe").build()
    forest = registry.get("evaluator", "molecular.random_forest").build(n_estimators=100)
    for evaluator in (probe, forest):
        metrics = evaluator(model, dataset, ctx)
        out.update({k: float(v) for k, v in metrics.items()
                    if any(m in k for m in ("rmse", "mae"))})
    return out


def _rows(dataset: Any, registry: Any, budget: str, seeds: tuple[int, ...],
          encoder_options: dict[str, Any]) -> list[tuple[str, dict[str, float], float]]:
    from selfsup.api import BaselineContext, EvalContext, NotApplicable
    from selfsup_molecular.pretrained import BUDGETS, load, pretrained_folder, snapshots

    def fresh() -> torch.nn.Module:
        torch.manual_seed(1)
        return registry.get("encoder", "molecular.molformer").build(dataset, **encoder_options)

    ctx = EvalContext(device="cpu", seeds=seeds, batch_size=256, encoder_factory=fresh)
    bctx = BaselineContext(encoder_factory=fresh, eval=ctx, seed=0)
    rows = []
    for key in ("core.mean", "molecular.freesolv_calc", "molecular.morgan",
                "molecular.rdkit_descriptors", "core.random_init", "core.supervised"):
        t = time.perf_counter()
        try:
            model = registry.get("baseline", key).build(dataset, bctx)
        except NotApplicable:
            continue
        rows.append((f"baseline:{key}", _evaluate(model, dataset, registry, ctx),
                     time.perf_counter() - t))
    folder = pretrained_folder() / BUDGETS[budget].key(dataset.cache.fingerprint)
    for molecules, weights in snapshots(folder):
        t = time.perf_counter()
        encoder, _card = load(weights)
        rows.append((f"pretrained@{molecules}", _evaluate(encoder, dataset, registry, ctx),
                     time.perf_counter() - t))
    return rows


def _raw_calc(dataset: Any) -> dict[str, float]:
    from selfsup_molecular.freesolv import calc_for

    smiles = dataset.labelled_smiles("test")
    err = calc_for(smiles) - dataset.labels("test")
    return {"rmse": float(np.sqrt(np.mean(err**2))), "mae": float(np.mean(np.abs(err)))}


def cmd_evaluate(args: argparse.Namespace) -> None:
    from selfsup.api import get_registry
    from selfsup_molecular.pretrained import BUDGETS

    registry = get_registry()
    encoder_options = BUDGETS[args.budget].encoder
    seeds = tuple(range(3))
    results: dict[str, Any] = {"budget": args.budget, "tasks": {}}
    tasks: list[tuple[str, str, dict[str, Any]]] = [
        ("freesolv/scaffold", "molecular.freesolv", {"split": "scaffold"}),
        *[(f"freesolv/random{s}", "molecular.freesolv", {"split": "random", "seed": s})
          for s in range(args.random_seeds)],
        ("solubility/shipped", "molecular.solubility", {}),
    ]
    for name, key, options in tasks:
        if args.only and not any(name.startswith(o) for o in args.only):
            continue
        t0 = time.perf_counter()
        # corpus_size 1: the evaluation never pretrains; the cache and vocabulary are MOSES's
        dataset = registry.get("dataset", key).build(corpus_size=1, **options)
        rows = _rows(dataset, registry, args.budget, seeds, encoder_options)
        entry = {"rows": {r: m for r, m, _ in rows}, "seconds": {r: s for r, _, s in rows},
                 "sizes": {s: len(dataset.labels(s)) for s in ("train", "val", "test")}}
        if key == "molecular.freesolv":
            entry["calc_raw"] = _raw_calc(dataset)
        results["tasks"][name] = entry
        print(f"{name}: {time.perf_counter() - t0:.0f} s, sizes {entry['sizes']}", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown(results))


def cmd_finetune(args: argparse.Namespace) -> None:
    """Fine-tuned (not frozen): ``core.finetune`` from random init and from snapshots."""
    from selfsup.api import EvalContext, get_registry
    from selfsup_molecular.pretrained import BUDGETS, load, pretrained_folder, snapshots

    registry = get_registry()
    config = BUDGETS[args.budget]
    finetune = registry.get("evaluator", "core.finetune").build(
        label_fractions=[1.0], epochs=args.epochs, min_steps=0)
    tasks = [*[(f"freesolv/random{s}", "molecular.freesolv", {"split": "random", "seed": s})
               for s in range(args.random_seeds)],
             ("solubility/shipped", "molecular.solubility", {})]
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, key, options in tasks:
        dataset = registry.get("dataset", key).build(corpus_size=1, **options)
        ctx = EvalContext(device="cpu", seeds=(0, 1, 2), batch_size=256)
        folder = pretrained_folder() / config.key(dataset.cache.fingerprint)
        models: dict[str, Any] = {}
        torch.manual_seed(1)
        models["random_init"] = registry.get("encoder", "molecular.molformer").build(
            dataset, **config.encoder)
        for molecules, weights in snapshots(folder):
            if molecules in args.snapshots:
                models[f"pretrained@{molecules}"] = load(weights)[0]
        out[name] = {}
        for row, model in models.items():
            t = time.perf_counter()
            metrics = finetune(model, dataset, ctx)
            out[name][row] = {k: float(v) for k, v in metrics.items() if "rmse" in k or "mae" in k}
            print(f"{name} {row}: {out[name][row]} ({time.perf_counter() - t:.0f} s)", flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(out, indent=1))


def markdown(results: dict[str, Any]) -> str:
    """Tables: one per task group (random seeds averaged), rows x (ridge, forest) RMSE/MAE."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for name, entry in results["tasks"].items():
        groups.setdefault(name.split("/")[0] + ("/random" if "random" in name else
                                                "/" + name.split("/")[1]), []).append(entry)
    cols = ["linear_probe.rmse", "linear_probe.mae", "random_forest.rmse", "random_forest.mae"]
    lines = []
    for group, entries in groups.items():
        lines += [f"\n{group} ({len(entries)} split(s); test sizes "
                  f"{sorted({e['sizes']['test'] for e in entries})})\n",
                  "| row | ridge RMSE | ridge MAE | forest RMSE | forest MAE |",
                  "| --- | --- | --- | --- | --- |"]
        for row in entries[0]["rows"]:
            cells = []
            for c in cols:
                vals = [e["rows"][row][c] for e in entries if row in e["rows"]]
                if len(vals) > 1:
                    cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f}")
                else:
                    cells.append(f"{vals[0]:.3f}" if vals and not math.isnan(vals[0]) else "")
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        if "calc_raw" in entries[0]:
            r = [e["calc_raw"]["rmse"] for e in entries]
            m = [e["calc_raw"]["mae"] for e in entries]
            lines.append(f"| FreeSolv calc, raw (no fit) | {np.mean(r):.3f} | {np.mean(m):.3f} "
                         "| | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("cache")
    p.add_argument("--read", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=0)
    p = sub.add_parser("speed")
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--batch-size", type=int, default=128)
    p = sub.add_parser("pretrain")
    p.add_argument("--budget", default="cpu")
    p.add_argument("--molecules", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--log", default="")
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--no-reuse", action="store_true")
    p = sub.add_parser("evaluate")
    p.add_argument("--budget", default="cpu")
    p.add_argument("--random-seeds", type=int, default=5)
    p.add_argument("--only", action="append", default=[])
    p.add_argument("--out", default="")
    p = sub.add_parser("finetune")
    p.add_argument("--budget", default="cpu")
    p.add_argument("--random-seeds", type=int, default=5)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--snapshots", type=int, nargs="*", default=[600_000])
    p.add_argument("--out", default="")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    {"cache": cmd_cache, "speed": cmd_speed, "pretrain": cmd_pretrain,
     "evaluate": cmd_evaluate, "finetune": cmd_finetune}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
