"""The classical baseline on the same folds as EEGMamba (``eegmamba.baselines.classical``).

Fitted on the whole training part of a fold (it needs no early stopping, so the validation subjects
are training data for it) and tested on the fold's test subjects. Its probabilities are mapped back
to the profile's class order; a class absent from the training part gets probability 0.
"""

from __future__ import annotations

import time

import numpy as np

from eegmamba.profiles import Profile
from eegmamba.training.metrics import compute_metrics, confusion, per_group_metrics


def run_baseline(profile: Profile, X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray,
                 y_test: np.ndarray, subjects: np.ndarray) -> dict:
    """``{"name", "metrics", "per_subject", "confusion", "seconds"}``, or ``{"name", "note"}`` when
    the task has no baseline or the baseline cannot be fitted (e.g. one training class)."""
    from eegmamba.baselines.classical import make_baseline

    try:
        est = make_baseline(profile.task, sfreq=profile.sfreq)
    except ValueError:
        return {"name": None, "note": f"no classical baseline for task kind {profile.task!r}"}
    t0 = time.perf_counter()
    try:
        est.fit(X_train, y_train)
        p = est.predict_proba(X_test)
    except ValueError as exc:
        return {"name": est.name, "note": f"baseline could not be fitted: {str(exc).splitlines()[0]}"}
    proba = np.zeros((len(X_test), len(profile.classes)))
    proba[:, np.asarray(est.classes_, dtype=np.int64)] = p
    return {"name": est.name, "metrics": compute_metrics(y_test, proba),
            "per_subject": per_group_metrics(y_test, proba, subjects),
            "confusion": confusion(y_test, proba, len(profile.classes)),
            "seconds": round(time.perf_counter() - t0, 2)}
