"""Per-sample class labels from a recording's annotations and the profile's label rules.

A sample at time t (seconds from the first sample, t = i / sfreq) gets the class of an annotation when
``onset <= t < onset + duration`` and a rule maps the annotation's description (in this file's run)
to that class. Samples covered by no mapped annotation, by an ``ignore`` rule, or by annotations that
map to different classes (conflict) are unlabelled (-1). Zero-duration annotations label nothing.
"""

from __future__ import annotations

import numpy as np

from eegmamba.data.recording import Recording
from eegmamba.profiles import IGNORE, Profile

UNLABELLED = -1


def class_of(description: str, run: int | None, profile: Profile) -> str | None:
    """The class name (or ``"ignore"``) the first matching rule gives, or None if no rule applies."""
    for rule in profile.labels:
        if rule.applies(description, run):
            return rule.cls
    return None


def sample_labels(recording: Recording, profile: Profile) -> np.ndarray:
    """Class index per sample.

    Returns
    -------
    labels : ndarray, shape (n_samples,), int64; index into ``profile.classes``, -1 = unlabelled
    """
    n = recording.n_samples
    labels = np.full(n, UNLABELLED, dtype=np.int64)
    conflict = np.zeros(n, dtype=bool)
    ignored = np.zeros(n, dtype=bool)
    t = np.arange(n) / recording.sfreq if recording.timestamps is None else recording.timestamps
    for onset, duration, desc in recording.annotations:
        cls = class_of(desc, recording.run, profile)
        if cls is None or duration <= 0:
            continue
        a = int(np.searchsorted(t, onset, side="left"))
        b = int(np.searchsorted(t, onset + duration, side="left"))
        if b <= a:
            continue
        if cls == IGNORE:
            ignored[a:b] = True
            continue
        k = profile.classes.index(cls)
        seg = labels[a:b]
        conflict[a:b] |= (seg != UNLABELLED) & (seg != k)
        seg[:] = k
    labels[conflict | ignored] = UNLABELLED
    return labels


def label_counts(labels: np.ndarray, profile: Profile) -> dict[str, int]:
    """Samples per class name (plus ``"unlabelled"``), for summaries and warnings."""
    out = {c: int(np.sum(labels == i)) for i, c in enumerate(profile.classes)}
    out["unlabelled"] = int(np.sum(labels == UNLABELLED))
    return out
