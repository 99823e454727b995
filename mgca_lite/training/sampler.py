"""A distributed sampler that can start in the middle of an epoch, for exact resume."""
from __future__ import annotations

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled indices for `epoch`, sharded over ranks, skipping the first `start` of this rank.

    The order depends only on (seed, epoch), never on global RNG state, so a resumed run sees
    exactly the batches the uninterrupted run would have seen. Like DistributedSampler, the last
    incomplete round is padded by wrapping around so every rank gets the same number of samples.
    """

    def __init__(self, size: int, rank: int = 0, world_size: int = 1, shuffle: bool = True, seed: int = 0):
        self.size, self.rank, self.world_size = size, rank, world_size
        self.shuffle, self.seed = shuffle, seed
        self.per_rank = -(-size // world_size)  # ceil
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch's permutation and how many of this rank's samples were already used."""
        self.epoch, self.start = epoch, start

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.size, generator=g).tolist()
        else:
            order = list(range(self.size))
        total = self.per_rank * self.world_size
        order += order[: total - len(order)]  # pad by wrapping
        return order[self.rank:total:self.world_size]

    def __iter__(self):
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return self.per_rank - self.start
