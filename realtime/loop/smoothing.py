"""Decision smoothing over the last ``k`` windows (profile ``smoothing``: none | mean | majority)."""

from __future__ import annotations

from collections import deque

import numpy as np

from eegmamba._checks import check_option
from eegmamba.profiles import SmoothingSpec


class Smoother:
    """Smooth per-window class probabilities into decisions.

    ``mean``: average the last ``k`` probability vectors; ``majority``: vote of the last ``k`` argmaxes
    (ties go to the most recent of the tied classes), the probabilities reported are the mean ones;
    ``none``: the window's own probabilities. ``reset()`` after a stream loss, so a decision never
    mixes windows from before and after an outage.
    """

    def __init__(self, spec: SmoothingSpec) -> None:
        self.method = check_option(spec.method, ("none", "mean", "majority"), "smoothing.method")
        self.k = 1 if self.method == "none" else int(spec.k)
        self._history: deque[np.ndarray] = deque(maxlen=self.k)

    def reset(self) -> None:
        self._history.clear()

    def __call__(self, probs: np.ndarray) -> tuple[int, np.ndarray]:
        """``probs (n_classes,)`` of the newest window → ``(decided class index, smoothed probs)``."""
        self._history.append(np.asarray(probs, dtype=np.float64))
        mean = np.mean(self._history, axis=0)
        if self.method != "majority":
            return int(np.argmax(mean)), mean
        votes = [int(np.argmax(p)) for p in self._history]
        counts = np.bincount(votes, minlength=mean.size)
        tied = set(np.flatnonzero(counts == counts.max()).tolist())
        winner = next(v for v in reversed(votes) if v in tied)
        return winner, mean
