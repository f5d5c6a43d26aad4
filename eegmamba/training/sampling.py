"""The paper's dynamic multi-task sampling (Appendix E.4).

Each training step draws one batch from ONE dataset (so a batch has one channel count and window
length); the dataset is chosen with probability proportional to its samples not yet seen in the
current epoch. The paper motivates this against forgetting small datasets; in effect every dataset
drains at the same relative rate, so each one's batches are spread over the whole epoch instead of
coming in one block. An epoch ends when every sample has been seen once.

Under DDP every rank builds the sampler with the same seed, so all ranks pick the same dataset at
each step (the same head runs everywhere); each rank then takes its own share of the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np


@dataclass(frozen=True)
class Step:
    """One training step: the dataset (task) name and the window indices of its batch."""

    task: str
    indices: np.ndarray


class DynamicSampler:
    """Batches from several datasets, dataset chosen ∝ unseen samples.

    Parameters
    ----------
    sizes : dict task name → number of training windows (each > 0)
    batch_size : int, windows per step (the last batch of a dataset may be smaller)
    seed : int; the epoch number is mixed in, so each epoch has its own order
    """

    def __init__(self, sizes: dict[str, int], batch_size: int, seed: int = 0) -> None:
        if not sizes:
            raise ValueError("DynamicSampler needs at least one dataset")
        for name, n in sizes.items():
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"dataset {name!r} must have >= 1 training window, got {n!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.sizes = {k: int(v) for k, v in sizes.items()}
        self.batch_size = batch_size
        self.seed = seed

    @staticmethod
    def probabilities(remaining: dict[str, int]) -> dict[str, float]:
        """P(dataset) = unseen / Σ unseen, for the counts in ``remaining`` (all zero → all zero)."""
        total = sum(remaining.values())
        return {k: (v / total if total else 0.0) for k, v in remaining.items()}

    def steps_per_epoch(self) -> int:
        return sum(-(-n // self.batch_size) for n in self.sizes.values())

    def epoch(self, epoch: int) -> Iterator[Step]:
        """The steps of epoch ``epoch`` (deterministic for a given seed and epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        names = list(self.sizes)
        perms = {k: rng.permutation(self.sizes[k]) for k in names}
        pos = dict.fromkeys(names, 0)
        while True:
            remaining = {k: self.sizes[k] - pos[k] for k in names}
            p = self.probabilities(remaining)
            if not any(p.values()):
                return
            task = names[rng.choice(len(names), p=[p[k] for k in names])]
            start = pos[task]
            pos[task] = min(start + self.batch_size, self.sizes[task])
            yield Step(task, perms[task][start:pos[task]])
