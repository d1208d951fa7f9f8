"""Step-time overhead of selfsup's Trainer over a hand-written PyTorch loop.

Both train the same MLP (64 -> 512 -> 512 -> 128, 362k parameters) on the same
random 64-d vectors with the same two-view objective (invariance + variance),
the same batches, views, optimiser (AdamW, decay on weights only), warm-up +
cosine schedule and gradient clipping; the script checks that their losses agree
to 5 decimals at every step. The Trainer runs with progress off, checkpoints only
at the end (after the timed steps) and logs every 10 steps (JSONL + collapse
statistics); the hand loop reads its loss back every 10 steps, as a print would.

Step times are the intervals between consecutive ``on_train_step_end`` calls
(with a CUDA synchronise there on GPU). The variants alternate ``--repeats``
times after a warm-up round; each run gives a median step time and each
variant's best run is compared, because on a shared machine other processes only
ever add time (the ratio of the medians over all steps is printed too).
Target on CPU: ratio <= 1.05.

    python benchmarks/trainer_overhead.py --steps 200 --device cpu --precision fp32
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from selfsup.components import SSLDataset
from selfsup.sampler import epoch_permutation
from selfsup.seeding import step_seed
from selfsup.trainer import TrainConfig, Trainer

N_SAMPLES, DIM = 4096, 64
LR, WEIGHT_DECAY, WARMUP, CLIP, LOG_EVERY = 1e-3, 1e-4, 10, 1.0, 10


class Vectors(SSLDataset):
    name = "bench.vectors"

    def __init__(self) -> None:
        self.x = torch.randn(N_SAMPLES, DIM, generator=torch.Generator().manual_seed(0))

    def pretrain_set(self) -> TensorDataset:
        return TensorDataset(self.x)

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        return torch.stack([s[0] for s in samples])

    def augment(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        noise = torch.randn(batch.shape, generator=generator, device=batch.device)
        return batch + 0.1 * noise


class TwoViewMLP(nn.Module):
    """Invariance between two noisy views plus a variance hinge against collapse."""

    def __init__(self, dataset: Vectors, sync_cuda: bool, width: int = 512) -> None:
        super().__init__()
        self.dataset = dataset
        self.encoder = nn.Sequential(
            nn.Linear(DIM, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
            nn.Linear(width, 128),
        )  # fmt: skip
        self.sync_cuda = sync_cuda
        self.losses: list[torch.Tensor] = []  # kept on the device: no sync per step
        self.wall_times: list[float] = []
        self.cpu_times: list[float] = []

    def forward(self, batch: torch.Tensor, generator: torch.Generator) -> dict[str, Any]:
        z1 = self.encoder(self.dataset.augment(batch, generator))
        z2 = self.encoder(self.dataset.augment(batch, generator))
        z1, z2 = z1.float(), z2.float()
        variance = sum(F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() for z in (z1, z2))
        loss = F.mse_loss(z1, z2) + variance
        self.losses.append(loss.detach())
        return {"loss": loss, "embedding": z1}

    def on_train_step_end(self, step: int, total_steps: int) -> None:
        if self.sync_cuda:
            torch.cuda.synchronize()
        self.wall_times.append(time.perf_counter())
        self.cpu_times.append(time.process_time())


def run_trainer(task: TwoViewMLP, ds: Vectors, args: argparse.Namespace) -> None:
    cfg = TrainConfig(
        steps=args.steps, batch_size=args.batch_size, lr=LR, weight_decay=WEIGHT_DECAY,
        warmup_steps=WARMUP, grad_clip=CLIP, precision=args.precision, seed=args.seed,
        checkpoint_every=0, log_every=LOG_EVERY, device=args.device, progress=False,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as run_dir:
        Trainer(task, ds, cfg, Path(run_dir)).fit()


def run_hand_loop(task: TwoViewMLP, ds: Vectors, args: argparse.Namespace) -> None:
    device = torch.device(args.device)
    task.to(device).train()
    params = [p for p in task.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        [
            {"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
        ],
        lr=LR,
    )

    def schedule(i: int) -> float:
        if i < WARMUP:
            return (i + 1) / WARMUP
        return 0.5 * (1 + math.cos(math.pi * (i - WARMUP) / (args.steps - WARMUP)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.precision)
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    step, epoch = 0, 0
    while step < args.steps:
        # The same order of samples as the Trainer's sampler, so the losses can be compared.
        order = epoch_permutation(N_SAMPLES, args.seed, epoch).tolist()
        loader = DataLoader(ds.pretrain_set(), batch_size=args.batch_size, sampler=order,
                            collate_fn=ds.collate, drop_last=True)  # fmt: skip
        for batch in loader:
            batch = batch.to(device)
            generator = torch.Generator(device).manual_seed(step_seed(args.seed, step))
            with torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext():
                out = task(batch, generator)
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            if scaler is None:
                loss.backward()
                nn.utils.clip_grad_norm_(params, CLIP)
                optimizer.step()
            else:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(params, CLIP)
                scaler.step(optimizer)
                scaler.update()
            scheduler.step()
            step += 1
            task.on_train_step_end(step, args.steps)
            if step % LOG_EVERY == 0:
                loss.item()  # what a print of the loss costs
            if step == args.steps:
                break
        epoch += 1


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Alternate the Trainer and the hand-written loop; their step times and ratio."""
    ds = Vectors()
    torch.manual_seed(args.seed)
    sync = args.device.startswith("cuda")
    initial = TwoViewMLP(ds, sync, args.width).state_dict()
    n_params = sum(v.numel() for v in initial.values())
    run_medians: dict[str, list[float]] = {"trainer": [], "hand": []}  # ms, one per run
    all_steps: dict[str, list[float]] = {"trainer": [], "hand": []}
    losses: dict[str, list[float]] = {}
    variants = [("trainer", run_trainer), ("hand", run_hand_loop)]
    if args.noise_floor:  # what this machine reports for two identical loops
        variants[0] = ("trainer", run_hand_loop)
        print("A/A run: the 'trainer' rows below are the hand-written loop too")
    for rep in range(args.repeats + 1):  # round 0 warms both up (imports, allocator, caches)
        for name, run in variants if rep % 2 else variants[::-1]:  # alternate who goes first
            task = TwoViewMLP(ds, sync, args.width)
            task.load_state_dict(copy.deepcopy(initial))
            run(task, ds, args)
            losses[name] = [float(x) for x in task.losses]
            if rep:
                steps_ms = list(np.diff(task.wall_times) * 1e3)
                run_medians[name].append(statistics.median(steps_ms))
                all_steps[name] += steps_ms
    np.testing.assert_array_almost_equal(losses["trainer"], losses["hand"], decimal=5)

    best = {name: min(medians) for name, medians in run_medians.items()}
    pooled = {name: statistics.median(steps) for name, steps in all_steps.items()}
    ratio, pooled_ratio = best["trainer"] / best["hand"], pooled["trainer"] / pooled["hand"]
    return {"parameters": n_params, "run_medians_ms": run_medians, "best_ms": best,
            "all_steps_ms": pooled, "ratio": ratio, "ratio_all_steps": pooled_ratio,
            "first_loss": losses["hand"][0], "last_loss": losses["hand"][-1]}


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="alternating runs of each variant")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--width", type=int, default=512, help="hidden width (small: overhead only)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise-floor", action="store_true",
                    help="time the hand-written loop against itself (an A/A run)")  # fmt: skip
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = parser()
    args = ap.parse_args(argv)
    if args.steps <= WARMUP:
        ap.error(f"--steps must exceed the {WARMUP} warm-up steps")
    if args.threads:
        torch.set_num_threads(args.threads)

    m = measure(args)
    best, pooled = m["best_ms"], m["all_steps_ms"]
    ratio, pooled_ratio = m["ratio"], m["ratio_all_steps"]
    print(f"{m['parameters']} parameters, batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}; losses agree to 5 decimals at all {args.steps} steps "
          f"(first {m['first_loss']:.5f}, last {m['last_loss']:.5f})")  # fmt: skip
    for name in ("trainer", "hand"):
        runs = ", ".join(f"{v:.3f}" for v in m["run_medians_ms"][name])
        print(f"{name:>7} median ms/step per run: {runs}; best {best[name]:.3f}, "
              f"all steps {pooled[name]:.3f}")  # fmt: skip
    print(f"ratio trainer/hand-written: {ratio:.3f} (best runs), {pooled_ratio:.3f} (all steps)")
    command = "python benchmarks/trainer_overhead.py " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    print("\n| benchmark | device | precision | steps x runs | hand-written ms/step "
          "| Trainer ms/step | ratio | ratio, all steps | command |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| trainer overhead | {args.device} | {args.precision} | {args.steps} x "
          f"{args.repeats} | {best['hand']:.3f} | {best['trainer']:.3f} | {ratio:.3f} "
          f"| {pooled_ratio:.3f} | `{command}` |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
