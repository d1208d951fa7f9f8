"""Length bucketing in the resumable sampler."""

from __future__ import annotations

import torch

from selfsup.sampler import ResumableSampler


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def test_bucketing_groups_similar_lengths_and_keeps_every_sample() -> None:
    lengths = torch.randint(5, 120, (1000,), generator=torch.Generator().manual_seed(0))
    plain = ResumableSampler(1000, seed=1)
    bucketed = ResumableSampler(1000, seed=1, lengths=lengths, batch_size=16)
    order = list(bucketed)
    assert sorted(order) == list(range(1000))

    def padding(o: list[int]) -> int:  # tokens of padding a batch pads to its longest
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in _batches(o, 16))

    assert padding(order) < 0.2 * padding(list(plain))


def test_bucketing_is_a_function_of_seed_and_epoch_so_resume_works() -> None:
    lengths = torch.arange(300) % 37
    a = ResumableSampler(300, seed=4, lengths=lengths, batch_size=10)
    b = ResumableSampler(300, seed=4, lengths=lengths, batch_size=10)
    assert list(a) == list(b)
    a.set_state(epoch=1)
    first_epoch1 = list(a)
    b.set_state(epoch=1, position=120)  # resumed after 12 batches
    assert list(b) == first_epoch1[120:]
    a.set_state(epoch=2)
    assert list(a) != first_epoch1
    # batch order is shuffled: the first batch is not always the shortest samples
    firsts = {ResumableSampler(300, seed=s, lengths=lengths, batch_size=10).shard(0)[0].item()
              for s in range(5)}
    assert len(firsts) > 1
