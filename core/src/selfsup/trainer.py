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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from selfsup import distributed, rundir
from selfsup.batching import move_to
from selfsup.checkpoint import (
    checkpoint_path,
    latest_valid_checkpoint,
    load_checkpoint,
    restore_training_state,
    save_checkpoint,
    training_state,
)
from selfsup.components import SSLDataset
from selfsup.metrics import step_record
from selfsup.rundir import MetricsWriter
from selfsup.sampler import EpochLoader
from selfsup.seeding import derive_seed, preserved_rng, seed_everything, step_seed

log = logging.getLogger(__name__)

OnlineEval = Callable[[nn.Module], dict[str, float]]
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
#: Settings that may change when a run is resumed without changing its result.
RESUMABLE_CHANGES = frozenset(
    ["progress", "log_every", "num_workers", "checkpoint_every", "online_eval_every", "device"]
)
_END = object()
#: The objects a checkpoint saves and restores, in the order checkpoint.py takes them.
_Live = tuple[
    nn.Module, torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler
]


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
        minimums = {"steps": 1, "batch_size": 1, "log_every": 1, "warmup_steps": 0}
        minimums.update(num_workers=0, checkpoint_every=0, online_eval_every=0)
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


@dataclass
class _Run:
    """The live state of one :meth:`Trainer.fit`."""

    rank: int
    world: int
    device: torch.device
    autocast: Callable[[], Any]
    task: nn.Module
    model: nn.Module  # the task, wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    data: EpochLoader
    step: int = 0
    epoch: int = 0
    position: int = 0  # samples of the epoch consumed by this rank
    loss: torch.Tensor = field(default_factory=lambda: torch.tensor(math.nan))
    resumed_from: int | None = None
    ckpt_dir: Path | None = None
    writer: MetricsWriter | None = None
    bar: Any = None
    window_start: float = 0.0
    window_steps: int = 0
    params: list[nn.Parameter] = field(default_factory=list)  # those the optimiser trains

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def live(self) -> _Live:
        return (self.task, self.optimizer, self.scheduler, self.scaler)

    def restart_window(self) -> None:
        """Start a new throughput window (after logging, evaluating or checkpointing)."""
        self.window_start, self.window_steps = time.perf_counter(), 0

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


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
        if online_eval is not None and not isinstance(getattr(task, "encoder", None), nn.Module):
            raise ValueError(f"online_eval needs {type(task).__name__}.encoder, which is missing")
        self.task = task
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.online_eval = online_eval

    def fit(self) -> TrainResult:
        """Train for ``config.steps`` steps, resuming from ``run_dir/checkpoints`` if any.

        Per step: move the batch to the device, call ``task(batch, generator)`` with a
        generator seeded from (seed, step, rank) under the configured autocast, then
        backward, clip, optimiser step and LR schedule step. Only rank 0 writes files.
        Under torchrun (WORLD_SIZE > 1) it joins the process group if the caller has not.
        """
        t_start = time.perf_counter()
        run = self._setup()
        if run.step >= self.config.steps:
            log.info("run already finished at step %d (steps=%d)", run.step, self.config.steps)
            run.close()
            return self._result(run, t_start)
        try:
            for batch in self._batches(run):
                out, grad_norm, lr = self._train_step(run, batch)
                self._after_step(run, out, grad_norm, lr)
        finally:
            run.close()
        if run.world > 1:
            dist.barrier()  # no rank returns before the final checkpoint is committed
        return self._result(run, t_start)

    # -- the parts of fit ---------------------------------------------------------------

    def _setup(self) -> _Run:
        """Device, model (DDP-wrapped under torchrun), optimiser, schedule, data, resume."""
        cfg = self.config
        if not distributed.is_distributed() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            init_distributed()
        rank, world = distributed.rank(), distributed.world_size()
        try:
            device = distributed.resolve_device(cfg.device)
        except ValueError as exc:
            raise ValueError(f"TrainConfig.{exc}") from None
        autocast, use_scaler = self._autocast(device)
        task = self.task.to(device).train()
        model: nn.Module = task
        if world > 1:
            ids = [device.index] if device.type == "cuda" else None
            model = DistributedDataParallel(task, device_ids=ids)
        optimizer = build_optimizer(task, cfg)
        warmup, floor = cfg.warmup_steps, cfg.min_lr_ratio
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_multiplier(s, cfg.steps, warmup, floor)
        )
        scaler = torch.amp.GradScaler(device.type, enabled=use_scaler)
        data = EpochLoader(
            self.dataset.pretrain_set(),
            self.dataset.collate,
            cfg.batch_size,
            seed=cfg.seed,
            rank=rank,
            world_size=world,
            num_workers=cfg.num_workers,
            drop_last=cfg.drop_last,
            pin_memory=device.type == "cuda",
            lengths=self.dataset.sample_lengths(),
        )
        if data.batch_size < cfg.batch_size and rank == 0:
            log.warning(
                "pretrain set has %d samples per process, fewer than batch_size=%d; "
                "training on batches of %d",
                data.shard_size, cfg.batch_size, data.batch_size,
            )  # fmt: skip
        run = _Run(rank, world, device, autocast, task, model, optimizer, scheduler, scaler, data)
        run.params = [p for p in task.parameters() if p.requires_grad]
        run.ckpt_dir = self.run_dir / rundir.CHECKPOINTS if self.run_dir is not None else None
        found = self._resume(run.ckpt_dir, run.live, rank)
        if found is None:
            seed_everything(derive_seed(cfg.seed, "global", rank))
        else:
            run.step, run.loss = int(found["step"]), torch.tensor(float(found["loss"]))
            run.epoch, run.position = int(found["epoch"]), int(found["position"])
            run.resumed_from = run.step
        if run.step < cfg.steps and run.main and self.run_dir is not None:
            run.writer = MetricsWriter(self.run_dir / rundir.METRICS, resume_step=run.step)
        run.bar = tqdm(total=cfg.steps, initial=run.step, unit="step", dynamic_ncols=True,
                       disable=not (cfg.progress and run.main))
        run.restart_window()
        return run

    def _batches(self, run: _Run) -> Iterator[Any]:
        """The batches of the remaining steps, epoch after epoch, tracking the position."""
        batches = run.data.epoch(run.epoch, run.position)
        while run.step < self.config.steps:
            batch = next(batches, _END)
            if batch is _END:
                run.epoch, run.position = run.epoch + 1, 0
                batches = run.data.epoch(run.epoch, run.position)
                continue
            run.position = min(run.position + run.data.batch_size, run.data.shard_size)
            yield batch

    def _train_step(
        self, run: _Run, batch: Any
    ) -> tuple[dict[str, Any], torch.Tensor | None, float]:
        """One optimiser step; returns the task's output, the gradient norm and the LR used."""
        cfg = self.config
        batch = move_to(batch, run.device)
        seed = step_seed(cfg.seed, run.step, run.rank)
        generator = torch.Generator(run.device).manual_seed(seed)
        with run.autocast():
            out = run.model(batch, generator)
        if not isinstance(out, dict) or "loss" not in out:
            raise TypeError(
                f"{type(run.task).__name__}.forward must return a dict with a scalar "
                f"'loss', got {type(out).__name__}"
            )
        run.loss = out["loss"]
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(run.loss).backward()  # a disabled scaler passes everything through
        grad_norm = None
        if cfg.grad_clip is not None:
            run.scaler.unscale_(run.optimizer)
            grad_norm = nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        lr = float(run.optimizer.param_groups[0]["lr"])  # the rate this step used
        run.scheduler.step()
        run.step += 1
        run.window_steps += 1
        hook = getattr(run.task, "on_train_step_end", None)
        if hook is not None:
            hook(run.step, cfg.steps)
        run.bar.update(1)
        return out, grad_norm, lr

    def _after_step(
        self, run: _Run, out: dict[str, Any], grad_norm: torch.Tensor | None, lr: float
    ) -> None:
        """Log, evaluate online and checkpoint, as the step's number says.

        Reading values back from the device waits for it, so it happens only here.
        """
        cfg, step = self.config, run.step
        record: dict[str, Any] = {}
        if run.main and (step % cfg.log_every == 0 or step == cfg.steps):
            elapsed = max(time.perf_counter() - run.window_start, 1e-9)
            record = step_record(out, step=step, epoch=run.epoch, lr=lr)
            record["samples_per_s"] = run.window_steps * run.data.batch_size * run.world / elapsed
            if grad_norm is not None:
                record["grad_norm"] = float(grad_norm)
            loss_text, speed = f"{record['loss']:.4f}", f"{record['samples_per_s']:.0f}"
            run.bar.set_postfix(loss=loss_text, samples_per_s=speed, refresh=False)
            run.restart_window()
        every = cfg.online_eval_every
        if run.main and every and step % every == 0:
            record.setdefault("step", step)
            record.update(self._run_online_eval(run.task))
            run.restart_window()  # evaluation time is not in samples/s
        if run.writer is not None and record:
            run.writer.write(record)
        every = cfg.checkpoint_every
        if run.ckpt_dir is not None and ((every and step % every == 0) or step == cfg.steps):
            progress: dict[str, float] = {"step": step, "epoch": run.epoch}
            progress.update(position=run.position, loss=float(run.loss.detach()))
            state = training_state(*run.live, progress, asdict(cfg))
            if run.main:
                save_checkpoint(checkpoint_path(run.ckpt_dir, step), state)
            run.restart_window()

    def _result(self, run: _Run, t_start: float) -> TrainResult:
        path = self.run_dir / rundir.METRICS if run.main and self.run_dir is not None else None
        return TrainResult(run.step, float(run.loss.detach()), time.perf_counter() - t_start,
                           run.resumed_from, path)

    def _autocast(self, device: torch.device) -> tuple[Callable[[], Any], bool]:
        """A context factory for the forward pass, and whether a GradScaler is needed."""
        precision = self.config.precision
        if precision == "auto":
            cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
            precision = "bf16" if cuda_bf16 else "fp32"
        if precision == "fp32":
            return contextlib.nullcontext, False  # cheaper than autocast(enabled=False)
        if precision == "fp16" and device.type != "cuda":
            raise ValueError(
                f"TrainConfig.precision='fp16' needs a CUDA device, got {device}; "
                "use 'bf16' or 'fp32' on this device"
            )
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        return functools.partial(torch.autocast, device.type, dtype=dtype), precision == "fp16"

    def _run_online_eval(self, task: nn.Module) -> dict[str, float]:
        assert self.online_eval is not None  # Trainer.__init__ checked it
        task.eval()
        try:
            # An evaluator that draws random numbers must not shift the training streams,
            # or a run with online evaluation would differ from one without.
            with preserved_rng():
                result = self.online_eval(task.encoder)  # type: ignore[arg-type]
        finally:
            task.train()
        return {f"online.{k}": float(v) for k, v in result.items()}

    def _resume(self, ckpt_dir: Path | None, live: _Live, rank: int) -> dict[str, Any] | None:
        """Load the newest good checkpoint into the live objects; its progress, or None."""
        if ckpt_dir is None:
            return None
        found = latest_valid_checkpoint(ckpt_dir) if rank == 0 else None
        name = [found[0].name if found is not None else ""]
        if distributed.world_size() > 1:  # rank 0 picks, so every rank resumes the same step
            dist.broadcast_object_list(name, src=0)
        if not name[0]:
            return None
        state = found[1] if found is not None else load_checkpoint(ckpt_dir / name[0])
        if not restore_training_state(state, *live, rank=rank):
            log.warning(
                "%s was written by %d processes, this run has %d: RNG streams are reseeded, "
                "so the result will differ from an uninterrupted run",
                name[0], len(state["rng"]), distributed.world_size(),
            )  # fmt: skip
            seed_everything(derive_seed(self.config.seed, "resume", state["step"], rank))
        saved = state.get("config", {})
        changed = [
            k for k, v in asdict(self.config).items()
            if k not in RESUMABLE_CHANGES and saved.get(k) != v
        ]  # fmt: skip
        if changed and rank == 0:
            log.warning("resuming %s with changed settings %s", name[0], changed)
        log.info("resuming from %s (step %d)", ckpt_dir / name[0], state["step"])
        return {key: state[key] for key in ("step", "loss", "epoch", "position")}
