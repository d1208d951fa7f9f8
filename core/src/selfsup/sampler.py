"""A sampler that a checkpoint can stop and restart mid-epoch.

Each epoch is one permutation of the dataset drawn from ``(seed, epoch)`` alone,
so a resumed run recreates it without replaying earlier epochs. Under DDP every
rank draws the same permutation and takes the strided slice ``perm[rank::world]``
(as ``torch.utils.data.DistributedSampler`` does): the ranks' first batches of
``B / world`` samples together are exactly the first ``B`` samples one process
would draw, so a DDP run sees the same global batches as a single-process run.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from selfsup.seeding import derive_seed


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The order of the ``n`` samples in ``epoch`` (int64 tensor), the same on every rank."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "epoch", epoch))
    return torch.randperm(n, generator=generator)


class ResumableSampler(Sampler[int]):
    """Yields this rank's share of the epoch permutation, from ``position`` onwards.

    ``position`` counts samples of the shard already consumed in ``epoch``. The
    trainer, not the sampler, tracks it, because DataLoader workers prefetch ahead
    of what the training loop has used.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if n < 1:
            raise ValueError(f"ResumableSampler needs a non-empty dataset, got n={n}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} is outside world_size={world_size}")
        self.n = n
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.position = 0

    @property
    def shard_size(self) -> int:
        """Samples per rank per epoch; ranks are padded to equal size (ceil(n / world))."""
        return -(-self.n // self.world_size)

    def set_state(self, epoch: int, position: int = 0) -> None:
        if epoch < 0 or not 0 <= position <= self.shard_size:
            raise ValueError(
                f"sampler state epoch={epoch}, position={position} is outside "
                f"[0, {self.shard_size}] samples per epoch; was the checkpoint "
                "written for a different dataset or world size?"
            )
        self.epoch = epoch
        self.position = position

    def shard(self, epoch: int) -> torch.Tensor:
        """All indices of this rank in ``epoch``."""
        perm = epoch_permutation(self.n, self.seed, epoch)
        total = self.shard_size * self.world_size
        if total > self.n:
            # Pad by wrapping so every rank runs the same number of steps per epoch.
            perm = perm.repeat(-(-total // self.n))[:total]
        return perm[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard(self.epoch)[self.position :].tolist())

    def __len__(self) -> int:
        return self.shard_size - self.position


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker's torch RNG with base_seed + worker_id, where base_seed
    # comes from the loader's generator; numpy and random follow from it.
    seed = torch.initial_seed()
    np.random.seed(seed % (1 << 32))
    random.seed(seed)


class EpochLoader:
    """A DataLoader over a :class:`ResumableSampler` that can start at any (epoch, position).

    Batches hold ``min(batch_size, shard_size)`` samples, so a pretrain set smaller
    than the batch (one graph) still yields one batch per epoch instead of none.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        collate_fn: Callable[[list[Any]], Any],
        batch_size: int,
        *,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
        drop_last: bool = True,
        pin_memory: bool = False,
    ) -> None:
        self.sampler = ResumableSampler(len(dataset), seed, rank, world_size)  # type: ignore[arg-type]
        self.batch_size = min(batch_size, self.sampler.shard_size)
        self._generator = torch.Generator()
        self.loader = DataLoader(
            dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            collate_fn=collate_fn,
            num_workers=num_workers,
            drop_last=drop_last,
            generator=self._generator,
            worker_init_fn=_seed_worker if num_workers else None,
            pin_memory=pin_memory,
        )

    @property
    def shard_size(self) -> int:
        return self.sampler.shard_size

    def epoch(self, epoch: int, position: int = 0) -> Iterator[Any]:
        """Batches of ``epoch`` from sample ``position`` (a multiple of the batch size) on."""
        self.sampler.set_state(epoch, position)
        # Seeding per epoch makes worker seeds independent of when the iterator is made
        # (a resume), and keeps the loader from drawing its base seed from the global RNG.
        s = self.sampler
        self._generator.manual_seed(derive_seed(s.seed, "loader", epoch, s.rank))
        return iter(self.loader)
