"""A streaming view of a token cache, sharded across DDP ranks and DataLoader workers.

:class:`TokenStream` is an :class:`~torch.utils.data.IterableDataset`: each epoch
it draws one seeded permutation of the molecules (the same on every process),
trims it to a multiple of ``world_size * num_workers`` and hands consumer
``rank * num_workers + worker_id`` every ``world_size * num_workers``-th molecule
of it, so each molecule goes to exactly one (rank, worker) and every rank gets
the same number (DDP needs equal step counts; at most ``world_size * num_workers
- 1`` molecules an epoch are left out, different ones each epoch). Ranks come from
``torch.distributed`` when it is initialised, else from the ``rank`` and
``world_size`` arguments (which is how the tests simulate ranks in one process).

Items are int64 id arrays with ``<bos>``/``<eos>``; batch them with
:func:`selfsup_molecular.moses.collate_ids` (``DataLoader(stream, batch_size,
collate_fn=...)``). Nothing is re-parsed: a molecule costs one memory-mapped slice.
``start``: skip the first ``start`` molecules of this consumer's share (resume
within an epoch).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from .token_cache import TokenCache


class TokenStream(IterableDataset[np.ndarray]):
    """Molecules of ``cache`` (or of its subset ``indices``) in a seeded order per
    epoch, sharded across ranks and workers without duplicates."""

    def __init__(
        self,
        cache: TokenCache,
        *,
        indices: np.ndarray | None = None,
        seed: int = 0,
        epoch: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        start: int = 0,
    ) -> None:
        self.cache = cache
        self.indices = (np.arange(len(cache), dtype=np.int64) if indices is None
                        else np.asarray(indices, dtype=np.int64))
        self.seed, self.epoch, self.start = int(seed), int(epoch), int(start)
        self._rank, self._world = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose order the next iteration yields (set it before each epoch)."""
        self.epoch = int(epoch)

    def ranks(self) -> tuple[int, int]:
        """``(rank, world_size)``: the given ones, else torch.distributed's, else (0, 1)."""
        if self._rank is not None or self._world is not None:
            rank, world = self._rank or 0, self._world or 1
        elif torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
        else:
            rank, world = 0, 1
        if not 0 <= rank < world:
            raise ValueError(f"rank={rank} must be in [0, world_size={world})")
        return rank, world

    def shard(self, worker_id: int = 0, num_workers: int = 1) -> np.ndarray:
        """The cache indices this (rank, worker) reads this epoch, in order."""
        rank, world = self.ranks()
        consumers = world * num_workers
        order = self.indices[np.random.default_rng([self.seed, self.epoch]).permutation(
            len(self.indices))]
        usable = len(order) - len(order) % consumers
        mine = order[rank * num_workers + worker_id : usable : consumers]
        return mine[self.start :]

    def per_consumer(self, num_workers: int = 1) -> int:
        """Molecules each (rank, worker) reads per epoch (before ``start``)."""
        return len(self.indices) // (self.ranks()[1] * num_workers)

    def __iter__(self) -> Iterator[np.ndarray]:
        info = get_worker_info()
        worker_id, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        for i in self.shard(worker_id, num_workers):
            yield self.cache.ids(int(i))
