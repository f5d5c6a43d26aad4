"""Classification metrics: the paper's (Appendix E.6: accuracy, AUROC, weighted F1) plus balanced
accuracy and Cohen's κ, which stay honest on imbalanced data (seizure, sleep): a model that always
predicts the majority class gets balanced accuracy 1/K and κ 0 whatever its accuracy (scikit-learn).

AUROC: binary tasks use the positive class's probability; multi-class tasks use one-vs-rest AUROC
averaged over the classes that occur in ``y_true`` (macro), because a test fold often lacks some
classes (e.g. no REM). Where fewer than two classes occur, AUROC is undefined and reported as NaN
(never silently 0.5).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, cohen_kappa_score,
                             confusion_matrix, f1_score, roc_auc_score)

METRICS = ("acc", "balanced_acc", "auroc", "f1_weighted", "kappa")
METRIC_NAMES = {"acc": "ACC", "balanced_acc": "BACC", "auroc": "AUROC", "f1_weighted": "F1w",
                "kappa": "κ"}


def _check(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true, dtype=np.int64)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or y_true.ndim != 1 or proba.shape[0] != y_true.shape[0]:
        raise ValueError(f"need y_true (N,) and proba (N, K); got {y_true.shape} and {proba.shape}")
    if len(y_true) == 0:
        raise ValueError("cannot compute metrics on 0 windows")
    if y_true.min() < 0 or y_true.max() >= proba.shape[1]:
        raise ValueError(f"labels must be in [0, {proba.shape[1]}), got range "
                         f"[{y_true.min()}, {y_true.max()}]")
    return y_true, proba


def auroc(y_true: np.ndarray, proba: np.ndarray) -> float:
    """AUROC as described in the module docstring; NaN when fewer than 2 classes are present."""
    y_true, proba = _check(y_true, proba)
    present = np.unique(y_true)
    if len(present) < 2:
        return math.nan
    if proba.shape[1] == 2:
        return float(roc_auc_score(y_true, proba[:, 1]))
    scores = [roc_auc_score(y_true == k, proba[:, k]) for k in present]
    return float(np.mean(scores))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """``{"acc", "balanced_acc", "auroc", "f1_weighted", "kappa", "n"}`` for labels ``y_true (N,)``
    and probabilities ``(N, K)``.

    Balanced accuracy is the mean recall over the classes present in ``y_true``; κ is NaN when
    it is undefined (one class in ``y_true`` and the same single class predicted).
    """
    y_true, proba = _check(y_true, proba)
    pred = proba.argmax(axis=1)
    with warnings.catch_warnings():  # one class in a subject's windows: expected, reported as NaN
        warnings.simplefilter("ignore")
        kappa = float(cohen_kappa_score(y_true, pred))
        bacc = float(balanced_accuracy_score(y_true, pred))
    return {
        "acc": float(accuracy_score(y_true, pred)),
        "balanced_acc": bacc,
        "auroc": auroc(y_true, proba),
        "f1_weighted": float(f1_score(y_true, pred, average="weighted", zero_division=0)),
        "kappa": kappa,
        "n": int(len(y_true)),
    }


def per_class_metrics(y_true: np.ndarray, proba: np.ndarray, classes) -> dict[str, dict]:
    """Per class: ``recall`` (e.g. per sleep stage), ``precision``, ``f1`` and ``support`` (windows
    of that class in ``y_true``); recall is NaN for a class without windows."""
    y_true, proba = _check(y_true, proba)
    pred = proba.argmax(axis=1)
    out = {}
    for k, c in enumerate(classes):
        tp = int(np.sum((pred == k) & (y_true == k)))
        support, predicted = int(np.sum(y_true == k)), int(np.sum(pred == k))
        rec = tp / support if support else math.nan
        prec = tp / predicted if predicted else math.nan
        f1 = 2 * tp / (support + predicted) if support + predicted else math.nan
        out[str(c)] = {"recall": rec, "precision": prec, "f1": f1, "support": support}
    return out


def per_group_metrics(y_true: np.ndarray, proba: np.ndarray, groups: np.ndarray) -> dict[str, dict]:
    """``compute_metrics`` per value of ``groups`` (e.g. per subject), sorted by group."""
    groups = np.asarray(groups)
    return {str(g): compute_metrics(y_true[groups == g], proba[groups == g])
            for g in sorted(set(groups.tolist()))}


def confusion(y_true: np.ndarray, proba: np.ndarray, n_classes: int) -> list[list[int]]:
    """Confusion matrix (rows true, columns predicted) as nested lists of ints."""
    return confusion_matrix(y_true, np.asarray(proba).argmax(axis=1),
                            labels=list(range(n_classes))).tolist()


def mean_std(values: list[float]) -> dict[str, float]:
    """Mean and (population) std over folds, ignoring NaN; both NaN when no finite value."""
    arr = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(arr.mean()), "std": float(arr.std()), "n": int(arr.size)}


def summarize_folds(fold_metrics: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean ± std of each metric over folds: ``{"acc": {"mean", "std", "n"}, ...}`` (the metrics of
    ``METRICS`` the fold dicts hold; results written before a metric existed lack it)."""
    return {m: mean_std([f.get(m) for f in fold_metrics]) for m in METRICS
            if any(m in f for f in fold_metrics)}
