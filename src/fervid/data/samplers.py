"""Samplers: class-uniform draws of labelled frames (the paper's uniform sampling)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class ClassBalancedSampler(Sampler[int]):
    """Draws ``num_samples`` indices per epoch, each from a uniformly chosen class, uniformly
    within that class, with replacement. Classes with no sample are left out.

    Deterministic given (seed, epoch). Sharded over processes: every process computes the same
    global sequence of ``num_samples * world_size`` draws and keeps positions ``rank::world_size``,
    so shards never overlap and the union is the one-process sequence.
    """

    def __init__(
        self,
        labels: np.ndarray,
        num_samples: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        balanced: bool = True,
    ):
        labels = np.asarray(labels)
        if len(labels) == 0:
            raise ValueError("ClassBalancedSampler needs at least one labelled sample")
        self.num_samples = num_samples
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.balanced = balanced
        self.epoch = 0
        self.num_items = len(labels)
        order = np.argsort(labels, kind="stable")
        classes, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
        self.classes = classes
        self._members = [order[s : s + c] for s, c in zip(starts, counts, strict=True)]

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_indices(self) -> np.ndarray:
        """The draws of this epoch across all processes."""
        rng = np.random.default_rng([self.seed, self.epoch])
        total = self.num_samples * self.world_size
        if not self.balanced:
            return rng.integers(0, self.num_items, size=total)
        chosen = rng.integers(0, len(self._members), size=total)
        draws = np.empty(total, dtype=np.int64)
        for k, members in enumerate(self._members):
            where = np.flatnonzero(chosen == k)
            draws[where] = members[rng.integers(0, len(members), size=len(where))]
        return draws

    def __iter__(self) -> Iterator[int]:
        return iter(self.global_indices()[self.rank :: self.world_size].tolist())

    def __len__(self) -> int:
        return self.num_samples


class UnlabelledSampler(Sampler[tuple[int, int]]):
    """Draws ``num_samples`` unlabelled items per epoch from shuffled passes over the pool,
    each with its own augmentation seed, so the strong views are reproducible whatever the
    number of workers. Sharded like :class:`ClassBalancedSampler`."""

    def __init__(
        self, num_items: int, num_samples: int, seed: int = 0, rank: int = 0, world_size: int = 1
    ):
        if num_items == 0:
            raise ValueError("UnlabelledSampler needs at least one item")
        self.num_items = num_items
        self.num_samples = num_samples
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_draws(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.epoch, 1])
        total = self.num_samples * self.world_size
        passes = -(-total // self.num_items)
        indices = np.concatenate([rng.permutation(self.num_items) for _ in range(passes)])[:total]
        seeds = rng.integers(0, 2**62, size=total)
        return indices, seeds

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices, seeds = self.global_draws()
        mine = slice(self.rank, None, self.world_size)
        return iter(zip(indices[mine].tolist(), seeds[mine].tolist(), strict=True))

    def __len__(self) -> int:
        return self.num_samples
