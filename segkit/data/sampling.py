"""Samplers and a loader that make training data order and augmentation resumable.

A run resumed from a mid-epoch checkpoint must see the batches the uninterrupted run would
have seen, augmented the same way. So every random choice on the data side is a pure function
of ``(seed, epoch, sample)``: the shuffle comes from ``seed + epoch``, and each sample carries its
own augmentation seed to the dataset (``dataset[(index, seed)]``). The loader reports how many
batches of the epoch it has served (Lightning saves that in checkpoints through the
``state_dict``/``load_state_dict`` protocol) and the sampler skips them on resume.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Sampler

__all__ = ["EpochSampler", "ResumableDataLoader", "ShardSampler"]


class EpochSampler(Sampler[tuple[int, int]]):
    """Yields ``(index, augmentation_seed)``: a permutation drawn from ``seed + epoch``, this
    process's shard of it (``rank``-th of every ``world_size``), minus ``start`` skipped items.

    Each process gets ``length // world_size`` items (the remainder is dropped, so processes
    step in lock-step).
    """

    def __init__(
        self, length: int, seed: int = 0, shuffle: bool = True, world_size: int = 1, rank: int = 0
    ) -> None:
        self.length = length
        self.seed = seed
        self.shuffle = shuffle
        self.world_size = world_size
        self.rank = rank
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length // self.world_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = (
            torch.randperm(self.length, generator=g) if self.shuffle else torch.arange(self.length)
        )
        seeds = torch.randint(0, 2**31 - 1, (self.length,), generator=g)
        mine = order[self.rank : len(self) * self.world_size : self.world_size]
        start, self.start = self.start, 0
        for i in mine[start:].tolist():
            yield i, int(seeds[i])


class ShardSampler(Sampler[int]):
    """Evaluation sampler: rank ``r`` of ``w`` takes indices ``r, r + w, ...``, with no padding,
    so no sample is counted twice (``DistributedSampler`` repeats samples to even the shards)."""

    def __init__(self, length: int, world_size: int = 1, rank: int = 0) -> None:
        self.indices = list(range(rank, length, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class ResumableDataLoader(DataLoader):
    """A ``DataLoader`` over an :class:`EpochSampler` that can resume in the middle of an epoch."""

    sampler: EpochSampler

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError("ResumableDataLoader needs an EpochSampler")
        self._served = 0

    def __iter__(self) -> Iterator[Any]:  # type: ignore[override]
        self._served = self.sampler.start // self.batch_size
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": self._served}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["batches"] * self.batch_size
