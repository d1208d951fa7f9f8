"""A sampler that a checkpoint can stop and restart mid-epoch.

Each epoch is one permutation of the dataset drawn from ``(seed, epoch)`` alone,
so a resumed run recreates it without replaying earlier epochs. Under DDP every
rank draws the same permutation and takes the strided slice ``perm[rank::world]``
(as ``torch.utils.data.DistributedSampler`` does): the ranks' first batches of
``B / world`` samples together are exactly the first ``B`` samples one process
would draw, so a DDP run sees the same global batches as a single-process run.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

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
