"""Subject-grouped cross-validation folds and the early-stopping validation split.

Paper (Section 3.2, Appendix E.3): five-fold cross-validation grouped by subject, so that the windows
of one subject are in one fold only. With fewer subjects than folds we use as many folds as subjects
(leave-one-subject-out) and say so. Subjects are assigned to folds greedily, largest first, to the
fold with the fewest windows so far (the rule of scikit-learn's ``GroupKFold``), which is deterministic.

Validation (early stopping) is taken from the training subjects only, never the test fold:
several training subjects → hold out whole subjects; one subject with several files → hold out whole
files; one file → hold out its last part in time, and drop (count) the training windows that overlap
the held-out span, because overlapping windows share samples. ``time_split_per_file`` holds out the
last part of EVERY training file instead (the within-subject protocol: two calibration runs, of
which neither should be lost to validation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eegmamba._checks import UserInputError


@dataclass(frozen=True)
class Fold:
    """One test fold: window indices (into the window set) and the subjects held out."""

    index: int
    train_idx: np.ndarray
    test_idx: np.ndarray
    test_subjects: tuple[str, ...]


@dataclass(frozen=True)
class ValSplit:
    """Training/validation indices inside the training part of a fold.

    ``how``: ``"subjects"``, ``"files"`` or ``"time"``; ``held_out``: the subjects/files held out (or
    the time cut, seconds); ``dropped_overlap``: training windows dropped because they overlap the
    validation span (time split only).
    """

    train_idx: np.ndarray
    val_idx: np.ndarray
    how: str
    held_out: tuple[str, ...]
    dropped_overlap: int = 0

    def describe(self) -> str:
        what = {"subjects": "held-out training subject(s)", "files": "held-out file(s) of the only "
                "training subject", "time": "last part in time of the training file(s)"}[self.how]
        extra = (f"; {self.dropped_overlap} training windows overlapping it dropped"
                 if self.dropped_overlap else "")
        return (f"validation = {what} {', '.join(self.held_out)} ({len(self.val_idx)} windows, "
                f"{len(self.train_idx)} for training{extra})")


def n_folds_for(subjects: np.ndarray, requested: int) -> tuple[int, str | None]:
    """``(folds to use, note or None)``; raises ``UserInputError`` for fewer than 2 subjects."""
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 2:
        raise UserInputError(f"--folds must be an integer >= 2, got {requested!r}")
    n_subj = len(set(np.asarray(subjects).tolist()))
    if n_subj < 2:
        raise UserInputError(
            f"subject-grouped cross-validation needs at least 2 subjects, found {n_subj} "
            f"({', '.join(sorted(set(np.asarray(subjects).tolist())))}); add recordings of other subjects"
        )
    if n_subj < requested:
        return n_subj, (f"only {n_subj} subjects for {requested} folds: using {n_subj} folds "
                        f"(leave-one-subject-out)")
    return requested, None


def subject_folds(subjects: np.ndarray, n_folds: int) -> list[Fold]:
    """Subject-disjoint folds over windows whose subject is ``subjects[i]`` (see module docstring)."""
    subjects = np.asarray(subjects)
    names, counts = np.unique(subjects, return_counts=True)
    if n_folds > len(names):
        raise UserInputError(f"{n_folds} folds need at least {n_folds} subjects, found {len(names)}")
    order = sorted(range(len(names)), key=lambda i: (-counts[i], names[i]))
    load = [0] * n_folds
    members: list[list[str]] = [[] for _ in range(n_folds)]
    for i in order:
        k = min(range(n_folds), key=lambda j: (load[j], j))
        load[k] += int(counts[i])
        members[k].append(str(names[i]))
    folds = []
    for k, subj in enumerate(members):
        test = np.isin(subjects, subj)
        folds.append(Fold(k, np.flatnonzero(~test), np.flatnonzero(test), tuple(sorted(subj))))
    return folds


def validation_split(idx: np.ndarray, subjects: np.ndarray, files: np.ndarray, t_start: np.ndarray,
                     window_s: float, val_frac: float = 0.2, seed: int = 0) -> ValSplit:
    """Split training indices ``idx`` into training and validation (see module docstring).

    subjects, files : ndarray, shape (N,), of the whole window set
    t_start : ndarray, shape (N,), seconds; window_s : float, seconds (to find overlaps)
    val_frac : fraction of subjects/files/time held out (at least one unit, at most all but one)
    """
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    idx = np.asarray(idx)
    rng = np.random.default_rng(seed)
    for how, groups in (("subjects", subjects), ("files", files)):
        units = sorted(set(np.asarray(groups)[idx].tolist()))
        if len(units) >= 2:
            n_val = min(max(1, math.ceil(val_frac * len(units))), len(units) - 1)
            held = sorted(rng.choice(units, size=n_val, replace=False).tolist())
            is_val = np.isin(np.asarray(groups)[idx], held)
            return ValSplit(idx[~is_val], idx[is_val], how, tuple(held))
    if len(idx) < 2:
        raise UserInputError(f"cannot take a validation split from {len(idx)} training window(s)")
    t = np.asarray(t_start)[idx]
    cut = float(np.quantile(t, 1 - val_frac))
    is_val = t >= cut
    if is_val.all():  # all windows start at the same time: keep one for training
        is_val[np.argmin(t)] = False
    cut = float(t[is_val].min())
    overlaps = ~is_val & (t + window_s > cut)
    train = idx[~is_val & ~overlaps]
    if len(train) == 0:
        raise UserInputError(
            f"the only training file is too short for a time-based validation split "
            f"({len(idx)} windows); add recordings or use more data"
        )
    return ValSplit(train, idx[is_val], "time", (f"t >= {cut:.2f} s",), int(overlaps.sum()))


def time_split_per_file(idx: np.ndarray, files: np.ndarray, t_start: np.ndarray, window_s: float,
                        val_frac: float = 0.2) -> ValSplit:
    """Hold out the last ``val_frac`` (in time) of each file's windows in ``idx`` for validation; drop
    (count) the training windows that overlap a held-out span of the same file.

    files, t_start : ndarray, shape (N,), of the whole window set; window_s : float, seconds
    """
    if not 0 < val_frac < 1:
        raise ValueError(f"val_frac must be in (0, 1), got {val_frac}")
    idx = np.asarray(idx)
    train, val, dropped, cuts = [], [], 0, []
    for f in sorted(set(np.asarray(files)[idx].tolist())):
        part = idx[np.asarray(files)[idx] == f]
        t = np.asarray(t_start)[part]
        if len(part) < 2:
            train.append(part)
            continue
        cut = float(np.quantile(t, 1 - val_frac))
        is_val = t >= cut
        if is_val.all():
            is_val[np.argmin(t)] = False
        cut = float(t[is_val].min())
        overlaps = ~is_val & (t + window_s > cut)
        train.append(part[~is_val & ~overlaps])
        val.append(part[is_val])
        dropped += int(overlaps.sum())
        cuts.append(f"{Path(f).name}: t >= {cut:.2f} s")
    tr = np.concatenate(train) if train else np.zeros(0, int)
    va = np.concatenate(val) if val else np.zeros(0, int)
    if len(tr) == 0 or len(va) == 0:
        raise UserInputError(f"too few windows ({len(idx)}) for a time-based validation split per file")
    return ValSplit(np.sort(tr), np.sort(va), "time", tuple(cuts), dropped)
