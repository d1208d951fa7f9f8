"""The step-based pretraining loop: one process or DDP, checkpointed and resumable.

A run is a fixed number of optimiser steps over epochs of a resumable sampler.
Every random stream is either derived from ``(seed, step)`` / ``(seed, epoch)``
or saved in the checkpoint, so on CPU a run resumed from any checkpoint ends
with bit-identical weights to an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from selfsup import distributed
from selfsup.batching import move_to
from selfsup.checkpoint import (
    checkpoint_path,
    latest_valid_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from selfsup.components import SSLDataset
from selfsup.diagnostics import embedding_stats
from selfsup.metrics import MetricsWriter
from selfsup.sampler import ResumableSampler
from selfsup.seeding import (
    capture_rng_state,
    derive_seed,
    preserved_rng,
    restore_rng_state,
    seed_everything,
    step_seed,
)

log = logging.getLogger(__name__)

OnlineEval = Callable[[nn.Module], dict[str, float]]
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: Config keys that may change between a run and its resumption without a warning.
_RESUMABLE_CHANGES = {
    "progress",
    "log_every",
    "num_workers",
    "checkpoint_every",
    "online_eval_every",
    "device",
}


@dataclass
class TrainConfig:
    """Settings of one pretraining run (``[training]`` in an experiment file)."""

    steps: int = 200  # optimiser steps
    batch_size: int = 128  # per process
    lr: float = 1e-3
    weight_decay: float = 1e-4  # on weights of rank >= 2 only, not biases or norm scales
    optimizer: str = "adamw"  # "adamw" | "sgd" (momentum 0.9)
    warmup_steps: int = 10  # linear warm-up, then cosine decay to min_lr_ratio * lr
    min_lr_ratio: float = 0.0
    grad_clip: float | None = 1.0  # max global gradient norm; None turns clipping off
    precision: str = "auto"  # "auto" | "fp32" | "bf16" | "fp16" (CUDA, GradScaler)
    seed: int = 0
    num_workers: int = 0
    checkpoint_every: int = 50  # steps; 0 = only at the end
    log_every: int = 10
    online_eval_every: int = 0  # 0 = off
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    progress: bool = True  # tqdm bar with loss and samples/s
    drop_last: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field, its value and the fix."""
        minimums = {
            "steps": 1,
            "batch_size": 1,
            "warmup_steps": 0,
            "num_workers": 0,
            "checkpoint_every": 0,
            "log_every": 1,
            "online_eval_every": 0,
        }
        for name, minimum in minimums.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                _bad(name, value, f"use an integer >= {minimum}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            _bad("seed", self.seed, "use a non-negative integer")
        if not _is_number(self.lr) or self.lr <= 0:
            _bad("lr", self.lr, "use a positive learning rate such as 1e-3")
        if not _is_number(self.weight_decay) or self.weight_decay < 0:
            _bad("weight_decay", self.weight_decay, "use a number >= 0")
        if not _is_number(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            _bad("min_lr_ratio", self.min_lr_ratio, "use a fraction of lr between 0 and 1")
        if self.grad_clip is not None and (not _is_number(self.grad_clip) or self.grad_clip <= 0):
            _bad("grad_clip", self.grad_clip, "use a positive max norm, or None for no clipping")
        if self.optimizer not in ("adamw", "sgd"):
            _bad("optimizer", self.optimizer, "use 'adamw' or 'sgd'")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            _bad("precision", self.precision, "use 'auto', 'fp32', 'bf16' or 'fp16'")
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            _bad("device", self.device, "use 'auto', 'cpu', 'cuda' or 'cuda:N'")
        for name in ("progress", "drop_last"):
            if not isinstance(getattr(self, name), bool):
                _bad(name, getattr(self, name), "use true or false")


def _bad(name: str, value: object, fix: str) -> None:
    raise ValueError(f"TrainConfig.{name}={value!r} is invalid; {fix}")


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    seconds: float
    resumed_from: int | None
    metrics_path: Path | None


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """Factor on the base LR for the optimiser step with 0-based index ``step``.

    Linear warm-up over ``warmup_steps`` (the first step already gets
    ``1/warmup_steps``, never 0), then a half cosine that would reach
    ``min_lr_ratio`` one step after the last, so no step is spent at the minimum.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(module: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD; weight decay skips biases and norm scales (tensors of rank < 2)."""
    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(module).__name__} has no trainable parameters to optimise")
    groups = [
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=0.9)
    return torch.optim.AdamW(groups, lr=config.lr)


def unwrap(model: nn.Module) -> nn.Module:
    """The task module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


def init_distributed(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in RANK/WORLD_SIZE/LOCAL_RANK.

    Uses NCCL when CUDA is available, gloo otherwise. Returns True when running
    distributed (already initialised or initialised now), False without torchrun.
    """
    if distributed.is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend)
    return True


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker with base_seed + worker_id, and base_seed comes from
    # the loader's generator, which the trainer seeds from (seed, epoch, rank).
    import random

    import numpy as np

    seed = torch.initial_seed()
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


class Trainer:
    """Pretrains ``task`` on ``dataset.pretrain_set()``; see :meth:`fit`.

    After each optimiser step it calls ``task.on_train_step_end(step, total_steps)``
    with ``step`` the number of steps completed so far (1 to ``total_steps``).
    """

    def __init__(
        self,
        task: nn.Module,
        dataset: SSLDataset,
        config: TrainConfig,
        run_dir: Path | None = None,
        online_eval: OnlineEval | None = None,
    ) -> None:
        if not isinstance(task, nn.Module):
            raise TypeError(f"task must be an nn.Module (a PretextTask), got {type(task).__name__}")
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        config.validate()  # fields may have been assigned after construction
        if config.online_eval_every and online_eval is None:
            raise ValueError(
                f"TrainConfig.online_eval_every={config.online_eval_every} but no online_eval "
                "callable was given; pass online_eval=... or set online_eval_every=0"
            )
        if online_eval is not None and not hasattr(task, "encoder"):
            raise ValueError(f"online_eval needs {type(task).__name__}.encoder, which is missing")
        self.task = task
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.online_eval = online_eval

    # -- set-up ------------------------------------------------------------------------
    def _device(self) -> torch.device:
        want = self.config.device
        local_rank = int(os.environ.get("LOCAL_RANK", "0")) if distributed.is_distributed() else 0
        if want == "auto":
            want = "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"TrainConfig.device={want!r} but CUDA is not available; use 'cpu'")
        if want == "cuda":
            want = f"cuda:{local_rank}"
        return torch.device(want)

    def _autocast(self, device: torch.device) -> tuple[Callable[[], Any], bool]:
        """A context factory for the forward pass, and whether a GradScaler is needed."""
        precision = self.config.precision
        if precision == "auto":
            cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            precision = "bf16" if cuda_bf16 else "fp32"
        if precision == "fp32":
            return contextlib.nullcontext, False
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(
                f"TrainConfig.precision='fp16' needs a CUDA device, got {device}; "
                "use 'bf16' or 'fp32' on this device"
            )
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return functools.partial(torch.autocast, device.type, dtype=dtype), precision == "fp16"

    # -- the loop ----------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train for ``config.steps`` steps, resuming from ``run_dir/checkpoints`` if any."""
        t_start = time.perf_counter()
        cfg = self.config
        if not distributed.is_distributed() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            init_distributed()
        rank, world = distributed.rank(), distributed.world_size()
        main = rank == 0
        device = self._device()
        autocast, use_scaler = self._autocast(device)
        task = self.task.to(device)
        task.train()
        model: nn.Module = task
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            model = DistributedDataParallel(task, device_ids=ids)
        params = [p for p in task.parameters() if p.requires_grad]
        optimizer = build_optimizer(task, cfg)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            functools.partial(
                lr_multiplier,
                total_steps=cfg.steps,
                warmup_steps=cfg.warmup_steps,
                min_lr_ratio=cfg.min_lr_ratio,
            ),
        )
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)

        pretrain = self.dataset.pretrain_set()
        sampler = ResumableSampler(len(pretrain), cfg.seed, rank, world)  # type: ignore[arg-type]
        batch_size = min(cfg.batch_size, sampler.shard_size)
        if batch_size < cfg.batch_size:
            log.warning(
                "pretrain set has %d samples per process, fewer than batch_size=%d; "
                "training on batches of %d",
                sampler.shard_size,
                cfg.batch_size,
                batch_size,
            )
        loader_rng = torch.Generator()
        loader = DataLoader(
            pretrain,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=self.dataset.collate,
            num_workers=cfg.num_workers,
            drop_last=cfg.drop_last,
            generator=loader_rng,
            worker_init_fn=_seed_worker if cfg.num_workers else None,
            pin_memory=device.type == "cuda",
        )

        def epoch_batches(epoch: int, position: int) -> Iterator[Any]:
            sampler.set_state(epoch, position)
            # Seeding per epoch makes worker seeds independent of when the iterator is
            # made (resume) and keeps the loader from drawing on the global torch RNG.
            loader_rng.manual_seed(derive_seed(cfg.seed, "loader", epoch, rank))
            return iter(loader)

        ckpt_dir = self.run_dir / "checkpoints" if self.run_dir is not None else None
        step, epoch, position, last_loss = 0, 0, 0, math.nan
        resumed = self._resume(ckpt_dir, task, optimizer, scheduler, scaler, rank, world)
        if resumed is None:
            seed_everything(derive_seed(cfg.seed, "global", rank))
        else:
            step, epoch, position, last_loss = resumed
            if step >= cfg.steps:
                log.info("run already finished at step %d (steps=%d)", step, cfg.steps)
                return TrainResult(
                    step, last_loss, time.perf_counter() - t_start, step, self._metrics_path(main)
                )

        writer = None
        if main and self.run_dir is not None:
            writer = MetricsWriter(self.run_dir / "metrics.jsonl", resume_step=step)
        hook = getattr(task, "on_train_step_end", None)
        bar = tqdm(
            total=cfg.steps,
            initial=step,
            unit="step",
            dynamic_ncols=True,
            disable=not (cfg.progress and main),
        )
        batches = epoch_batches(epoch, position)
        window_start, window_steps = time.perf_counter(), 0
        loss = torch.tensor(last_loss)
        try:
            while step < cfg.steps:
                try:
                    batch = next(batches)
                except StopIteration:
                    epoch, position = epoch + 1, 0
                    batches = epoch_batches(epoch, position)
                    continue
                position = min(position + batch_size, sampler.shard_size)

                batch = move_to(batch, device)
                generator = torch.Generator(device).manual_seed(step_seed(cfg.seed, step, rank))
                with autocast():
                    out = model(batch, generator)
                if not isinstance(out, dict) or "loss" not in out:
                    raise TypeError(
                        f"{type(task).__name__}.forward must return a dict with a "
                        f"scalar 'loss', got {type(out).__name__}"
                    )
                loss = out["loss"]
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                grad_norm = None
                if cfg.grad_clip is not None:
                    scaler.unscale_(optimizer)
                    grad_norm = nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                lr = optimizer.param_groups[0]["lr"]
                scheduler.step()
                step += 1
                window_steps += 1
                if hook is not None:
                    hook(step, cfg.steps)
                bar.update(1)

                record: dict[str, Any] = {}
                if main and (step % cfg.log_every == 0 or step == cfg.steps):
                    # The only host-device syncs of the loop happen here, every log_every steps.
                    elapsed = time.perf_counter() - window_start
                    record = _step_record(out, step, epoch, lr, grad_norm)
                    record["samples_per_s"] = window_steps * batch_size * world / max(elapsed, 1e-9)
                    bar.set_postfix(
                        loss=f"{record['loss']:.4f}",
                        samples_per_s=f"{record['samples_per_s']:.0f}",
                        refresh=False,
                    )
                    window_start, window_steps = time.perf_counter(), 0
                paused = False
                every = cfg.online_eval_every
                if main and every and step % every == 0 and self.online_eval is not None:
                    record.setdefault("step", step)
                    record.update(self._run_online_eval(task))
                    paused = True
                if writer is not None and record:
                    writer.write(record)
                if ckpt_dir is not None and (
                    (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps
                ):
                    state = self._state(
                        task,
                        optimizer,
                        scheduler,
                        scaler,
                        step,
                        epoch,
                        position,
                        float(loss),
                        world,
                    )
                    if main:
                        save_checkpoint(checkpoint_path(ckpt_dir, step), state)
                    paused = True
                if paused:  # keep evaluation and saving out of samples/s
                    window_start, window_steps = time.perf_counter(), 0
        finally:
            bar.close()
            if writer is not None:
                writer.close()
        if world > 1:
            dist.barrier()  # every rank returns after the final checkpoint is committed
        return TrainResult(
            step,
            float(loss),
            time.perf_counter() - t_start,
            None if resumed is None else resumed[0],
            self._metrics_path(main),
        )

    def _metrics_path(self, main: bool) -> Path | None:
        return self.run_dir / "metrics.jsonl" if main and self.run_dir is not None else None

    def _run_online_eval(self, task: nn.Module) -> dict[str, float]:
        assert self.online_eval is not None
        task.eval()
        try:
            # An evaluator that draws random numbers must not shift the training streams,
            # or a run with online eval would differ from one without.
            with preserved_rng():
                result = self.online_eval(task.encoder)  # type: ignore[arg-type]
        finally:
            task.train()
        return {f"online.{k}": float(v) for k, v in result.items()}

    # -- checkpoints ------------------------------------------------------------------
    def _state(
        self,
        task: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        step: int,
        epoch: int,
        position: int,
        loss: float,
        world: int,
    ) -> dict[str, Any]:
        rng = capture_rng_state()
        rngs: list[Any] = [rng]
        if world > 1:  # each rank has its own streams (dropout); rank 0 saves all of them
            rngs = [None] * world
            dist.all_gather_object(rngs, rng)
        return {
            "format": 1,
            "step": step,
            "loss": loss,
            "task": task.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "rng": rngs,
            "sampler": {"epoch": epoch, "position": position},
            "world_size": world,
            "config": asdict(self.config),
        }

    def _resume(
        self,
        ckpt_dir: Path | None,
        task: nn.Module,
        optimizer: torch.optim.Optimizer,
        scheduler: Any,
        scaler: torch.amp.GradScaler,
        rank: int,
        world: int,
    ) -> tuple[int, int, int, float] | None:
        """Load the newest good checkpoint; returns (step, epoch, position, loss) or None."""
        if ckpt_dir is None:
            return None
        found = latest_valid_checkpoint(ckpt_dir) if rank == 0 else None
        name = [found[0].name if found is not None else ""]
        if world > 1:  # rank 0 picks the file so every rank resumes from the same step
            dist.broadcast_object_list(name, src=0)
        if not name[0]:
            return None
        state = found[1] if found is not None else load_checkpoint(ckpt_dir / name[0])
        task.load_state_dict(state["task"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"]:
            scaler.load_state_dict(state["scaler"])
        step = int(state["step"])
        rngs = state["rng"]
        if len(rngs) == world:
            restore_rng_state(rngs[rank])
        else:
            log.warning(
                "checkpoint was written by %d processes, now %d: RNG streams are "
                "reseeded, so this run will not match an uninterrupted one",
                len(rngs),
                world,
            )
            seed_everything(derive_seed(self.config.seed, "resume", step, rank))
        changed = sorted(
            k
            for k, v in asdict(self.config).items()
            if k not in _RESUMABLE_CHANGES and state["config"].get(k) != v
        )
        if changed and rank == 0:
            log.warning(
                "resuming with changed settings %s; the run will differ from one "
                "trained with either setting throughout",
                changed,
            )
        log.info("resuming from %s (step %d)", ckpt_dir / name[0], step)
        return (
            step,
            int(state["sampler"]["epoch"]),
            int(state["sampler"]["position"]),
            float(state["loss"]),
        )


def _step_record(
    out: dict[str, Any], step: int, epoch: int, lr: float, grad_norm: torch.Tensor | None
) -> dict[str, Any]:
    loss = float(out["loss"])
    if not math.isfinite(loss):
        raise FloatingPointError(
            f"loss is {loss} at step {step} (lr {lr:.3g}); lower TrainConfig.lr, keep "
            "grad_clip on, or use precision='fp32' to find the overflowing operation"
        )
    record: dict[str, Any] = {"step": step, "epoch": epoch, "loss": loss, "lr": lr}
    for key, value in out.items():
        if key in ("loss", "embedding"):
            continue
        if (isinstance(value, torch.Tensor) and value.numel() == 1) or (
            isinstance(value, (int, float)) and not isinstance(value, bool)
        ):
            record[key] = float(value)
    if grad_norm is not None:
        record["grad_norm"] = float(grad_norm)
    emb = out.get("embedding")
    if isinstance(emb, torch.Tensor) and emb.ndim == 2 and emb.shape[0] >= 2:
        record.update(embedding_stats(emb))
    return record
