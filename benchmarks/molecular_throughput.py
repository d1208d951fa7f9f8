"""Molecular throughput: SMILES tokenisation, and MLM pretraining with and without
length bucketing, in molecules per second.

Tokenisation: the RDKit corpus of selfsup-molecular (about 14,900 canonical
SMILES) through the regex tokenizer (``tokenizer.encode``: split, look up ids, add
``<bos>``/``<eos>``) and through the dataset's ``collate`` (encode and pad batches
of ``--batch-size`` into tensors), best of ``--repeats`` passes.

Training: selfsup's ``Trainer`` running ``molecular.mlm`` on ``molecular.molformer``
(default width 128, 4 layers, 4 heads, FFN 256; ``--embed-dim 64 --n-layers 2
--ffn-dim 128`` is the size the CPU bench uses) over the same
corpus, ``--steps`` optimiser steps at ``--batch-size``, fp32 on CPU. Two variants,
alternated ``--repeats`` times, each variant's best run reported:

- ``bucketed``: the dataset gives ``sample_lengths()``, so the trainer's sampler
  sorts pools of 50 batches by length (what every run does);
- ``unbucketed``: the same dataset with ``sample_lengths()`` hidden, so batches
  are random and each is padded to its longest molecule.

"padding" is the share of token positions in the training batches that are
padding (over the first 100 batches of the sampler's first epoch). Training
molecules/s is the batch size over the median time between optimiser steps
(the first 3 steps, allocator and kernel warm-up, left out): data loading,
forward, backward and AdamW update included.

    python benchmarks/molecular_throughput.py --steps 40 --repeats 2
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from selfsup.sampler import EpochLoader
from selfsup.trainer import TrainConfig, Trainer
from selfsup_molecular.corpus import build_corpus
from selfsup_molecular.molformer import build as build_molformer
from selfsup_molecular.pretexts.mlm import build as build_mlm
from selfsup_molecular.smiles import SmilesDataset

WARMUP = 3  # steps left out of the timing


class Unbucketed(SmilesDataset):
    """The same corpus with its lengths hidden from the trainer's sampler."""

    def sample_lengths(self) -> None:  # type: ignore[override]
        return None


def tokenisation(dataset: SmilesDataset, batch_size: int, repeats: int) -> dict[str, float]:
    smiles = dataset.pretrain_smiles
    encode_s, collate_s = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for s in smiles:
            dataset.tokenizer.encode(s, dataset.max_length)
        encode_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for start in range(0, len(smiles), batch_size):
            dataset.collate(smiles[start : start + batch_size])
        collate_s.append(time.perf_counter() - t0)
    return {"encode": len(smiles) / min(encode_s), "collate": len(smiles) / min(collate_s)}


def padding_share(dataset: SmilesDataset, batch_size: int, batches: int = 100) -> float:
    loader = EpochLoader(dataset.pretrain_set(), dataset.collate, batch_size, seed=0,
                         lengths=dataset.sample_lengths())
    pad = total = 0
    for i, batch in enumerate(loader.epoch(0)):
        if i >= batches:
            break
        mask = batch["attention_mask"]
        pad += int((~mask).sum())
        total += mask.numel()
    return pad / total


def train_once(dataset: SmilesDataset, args: argparse.Namespace) -> float:
    """Molecules per second of one MLM run: batch size over the median step time."""
    torch.manual_seed(0)
    encoder = build_molformer(dataset, embed_dim=args.embed_dim, n_layers=args.n_layers,
                              ffn_dim=args.ffn_dim)
    task = build_mlm(encoder, dataset)
    ends: list[float] = []

    def clock(step: int, total_steps: int) -> None:
        ends.append(time.perf_counter())

    task.on_train_step_end = clock  # type: ignore[method-assign]
    cfg = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=5e-4, warmup_steps=5,
                      progress=False, checkpoint_every=0, log_every=10_000, device="cpu",
                      precision="fp32")
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(task, dataset, cfg, Path(run_dir)).fit()
    # intervals between step ends: data, forward, backward and optimiser of one step;
    # the first WARMUP steps (allocator and kernel warm-up) are left out
    intervals = [b - a for a, b in zip(ends[WARMUP:], ends[WARMUP + 1 :])]
    return args.batch_size / statistics.median(intervals)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=40, help="optimiser steps per training run")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="alternating runs of each variant")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--embed-dim", type=int, default=128, help="encoder width (default 128)")
    ap.add_argument("--n-layers", type=int, default=4, help="encoder blocks (default 4)")
    ap.add_argument("--ffn-dim", type=int, default=256, help="feed-forward width (default 256)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    bucketed = build_corpus()
    build_s = time.perf_counter() - t0
    plain = Unbucketed(bucketed.pretrain_smiles, tokenizer=bucketed.tokenizer,
                       max_length=bucketed.max_length, name="corpus-unbucketed")
    tok = tokenisation(bucketed, args.batch_size, args.repeats)
    rates: dict[str, list[float]] = {"bucketed": [], "unbucketed": []}
    for _ in range(args.repeats):
        rates["bucketed"].append(train_once(bucketed, args))
        rates["unbucketed"].append(train_once(plain, args))
    pads = {"bucketed": padding_share(bucketed, args.batch_size),
            "unbucketed": padding_share(plain, args.batch_size)}

    cmd = "python benchmarks/molecular_throughput.py " + " ".join(sys.argv[1:])
    rows: list[tuple[Any, ...]] = [
        ("tokenize + ids (`tokenizer.encode`)", f"{tok['encode']:,.0f}", "", ""),
        (f"tokenize + pad batches of {args.batch_size} (`collate`)", f"{tok['collate']:,.0f}",
         "", ""),
    ]
    for name in ("bucketed", "unbucketed"):
        best = max(rates[name])
        rows.append((f"MLM training, {name} (best of {args.repeats})", f"{best:,.0f}",
                     f"{pads[name]:.0%}", ", ".join(f"{r:,.0f}" for r in rates[name])))
    print(f"```bash\n{cmd}\n```\n")
    print(f"{len(bucketed.pretrain_smiles):,} corpus molecules (dataset built in {build_s:.1f} s); "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{platform.processor() or platform.machine()}; MLM {args.steps} steps at batch "
          f"{args.batch_size}, molecular.molformer {args.embed_dim} wide, {args.n_layers} layers, "
          f"FFN {args.ffn_dim}, 4 heads\n")
    print("| what | molecules/s | padding | all runs (molecules/s) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")
    speedup = max(rates["bucketed"]) / max(rates["unbucketed"])
    print(f"\nbucketing speed-up: {speedup:.2f}x")


if __name__ == "__main__":
    main()
