"""What the engine trains on and returns: ``TaskData``, ``FitResult``, and the batch plan (batch
clipped to the training set, steps per epoch, class-balanced loss weights)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from eegmamba.training.engine.recipe import Recipe
from eegmamba.training.sampling import DynamicSampler


@dataclass
class TaskData:
    """Windows of one task: ``X (N, C, T)`` float32 (ndarray, or a tensor of cached features),
    ``y (N,)`` int64 (None for self-supervised training)."""

    X: np.ndarray
    y: np.ndarray | None


@dataclass
class FitResult:
    """history: one record per epoch (train means, lr, seconds, the epoch's last validation);
    evals: one record per validation; best_*: the selected validation (1-based epoch, global
    step); best_state: its weights (EMA weights when the recipe has an EMA), on the CPU."""

    history: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    best_step: int = 0
    best_score: float | None = None
    best_loss: float = math.inf  # validation loss of the selected evaluation (tie-break)
    best_state: dict | None = None
    stopped_early: bool = False
    interrupted: bool = False
    notes: list[str] = field(default_factory=list)
    batch_size: int = 0
    steps_per_epoch: int = 0
    total_steps: int = 0

    def summary(self) -> dict:
        """JSON-able facts for a result file (no weights, no per-epoch history)."""
        return {"best_epoch": self.best_epoch, "best_step": self.best_step,
                "best_score": self.best_score, "stopped_early": self.stopped_early,
                "interrupted": self.interrupted, "epochs_run": len(self.history),
                "batch_size": self.batch_size, "steps_per_epoch": self.steps_per_epoch,
                "total_steps": self.total_steps, "notes": list(self.notes)}


def effective_batch(recipe: Recipe, sizes: dict) -> tuple[int, str | None]:
    """The batch actually used: at most the largest training set, and small enough for
    ``min_steps_per_epoch`` steps per epoch on it; with the note saying so (None if unchanged)."""
    n = max(sizes.values())
    bs = min(recipe.batch_size, n, max(1, math.ceil(n / recipe.min_steps_per_epoch)))
    if bs == recipe.batch_size:
        return bs, None
    return bs, (f"batch_size {recipe.batch_size} on {n} training windows: using {bs} "
                f"({math.ceil(n / bs)} steps per epoch; at least {recipe.min_steps_per_epoch} wanted)")


def steps_per_epoch(recipe: Recipe, sizes: dict) -> int:
    """Optimiser steps in one epoch over training sets of ``sizes`` (task → windows)."""
    return DynamicSampler(sizes, effective_batch(recipe, sizes)[0], recipe.seed).steps_per_epoch()


def class_weights(y: np.ndarray, n_classes: int) -> torch.Tensor:
    """Cross-entropy weights ``n / (K * count_k)`` over the classes present (absent: 1)."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    w = np.ones(n_classes)
    w[present] = counts[present].sum() / (present.sum() * counts[present])
    return torch.tensor(w, dtype=torch.float32)
