"""A sampler that a checkpoint can stop and restart mid-epoch.

Each epoch is one permutation of the dataset drawn from ``(seed, epoch)`` alone,
so a resumed run recreates it without replaying earlier epochs. Under DDP every
rank draws the same permutation and takes the strided slice ``perm[rank::world]``
(as ``torch.utils.data.DistributedSampler`` does): the ranks' first batches of
``B / world`` samples together are exactly the first ``B`` samples one process
would draw, so a DDP run sees the same global batches as a single-process run.

Length bucketing (when the dataset gives ``sample_lengths()``): the shard is cut
into pools of ``BUCKET_POOL`` batches, each pool is sorted by length and cut into
batches, and the batches of a pool are shuffled, all from ``(seed, epoch, rank)``.
Short sequences then share batches with short ones and pay less padding, while
the order stays a pure function of the epoch, so resuming mid-epoch still works.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from selfsup.seeding import derive_seed

BUCKET_POOL = 50  # batches per sorting pool, as in fairseq / AllenNLP bucketing


def bucket_by_length(
    indices: torch.Tensor, lengths: torch.Tensor, batch_size: int, generator: torch.Generator
) -> torch.Tensor:
    """Reorder ``indices`` so each run of ``batch_size`` holds samples of similar length."""
    out = []
    pool = BUCKET_POOL * batch_size
    for start in range(0, len(indices), pool):
        chunk = indices[start : start + pool]
        chunk = chunk[torch.argsort(lengths[chunk], stable=True)]
        batches = list(torch.split(chunk, batch_size))
        full = [b for b in batches if len(b) == batch_size]
        order = torch.randperm(len(full), generator=generator).tolist()
        out += [full[i] for i in order] + [b for b in batches if len(b) < batch_size]
    return torch.cat(out) if out else indices


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

    def __init__(
        self,
        n: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        *,
        lengths: torch.Tensor | None = None,
        batch_size: int = 1,
    ) -> None:
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
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"sample_lengths() gave {len(lengths)} lengths for {n} samples")
        self.lengths = lengths
        self.batch_size = batch_size

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
        shard = perm[self.rank :: self.world_size]
        if self.lengths is not None and self.batch_size > 1:
            g = torch.Generator().manual_seed(derive_seed(self.seed, "bucket", epoch, self.rank))
            shard = bucket_by_length(shard, self.lengths, self.batch_size, g)
        return shard

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
        lengths: Sequence[int] | None = None,
    ) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        self.batch_size = min(batch_size, -(-n // world_size))
        self.sampler = ResumableSampler(
            n, seed, rank, world_size,
            lengths=None if lengths is None else torch.as_tensor(lengths),
            batch_size=self.batch_size,
        )  # fmt: skip
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
