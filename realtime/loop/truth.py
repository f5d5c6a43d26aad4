"""Scoring live decisions against the truth: a replayed file's annotations or a cue marker stream.

A :data:`GroundTruth` gives the class of a window (or None: not scored) from its first and last
sample's source time; :class:`TruthScore` tallies one output's decisions against it, overall, per
(true, decided) class and per round (``LiveLoop.round``: a calibration advances it when its data
end and when it swaps a model, so accuracy before and after shows apart).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

GroundTruth = Callable[[float, float], "str | None"]
"""``truth(t_start, t_end) -> class name | None``: source LSL seconds of a window's first and last
sample → its true class, or None when the window is not to be scored."""


@dataclass
class TruthScore:
    """One output's decisions scored against ``truth`` (None: nothing to score)."""

    truth: GroundTruth | None = None
    n_scored: int = 0
    n_correct: int = 0
    history: deque = field(default_factory=lambda: deque(maxlen=40))  # per decision, None: unscored
    confusion: Counter = field(default_factory=Counter)  # (truth, label) -> decisions
    scored_by_round: Counter = field(default_factory=Counter)  # LiveLoop.round -> scored
    correct_by_round: Counter = field(default_factory=Counter)

    def score(self, t_start: float, t_end: float, label: str, round_: int) -> str | None:
        """Tally the decision ``label`` on the window ``[t_start, t_end]``; return its true class."""
        truth = None
        if self.truth is not None:
            truth = self.truth(t_start, t_end)
            if truth is not None:
                hit = int(truth == label)
                self.n_scored += 1
                self.n_correct += hit
                self.confusion[(truth, label)] += 1
                self.scored_by_round[round_] += 1
                self.correct_by_round[round_] += hit
        self.history.append(truth)
        return truth

    @property
    def accuracy(self) -> float | None:
        return self.n_correct / self.n_scored if self.n_scored else None

    def by_round(self) -> dict[int, tuple[float, int]]:
        """round → (accuracy, scored decisions)."""
        return {r: (self.correct_by_round[r] / n, n) for r, n in sorted(self.scored_by_round.items())}
