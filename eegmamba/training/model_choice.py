"""Which model won on the user's own folds: ``eegmamba-train --model A,B`` cross-validates each model
on the same subject-grouped folds (same validation splits, recipe, augmentation, alignment) and the
final checkpoint is trained with the winner.

The comparison metric is the recipe's selection metric (``Recipe.select``: balanced accuracy, AUROC
or accuracy, measured on each fold's test subjects); a recipe that selects on validation loss is
compared on balanced accuracy, and the record says so. Per fold, a model's score is the mean over
the run's tasks of that metric. The winner has the highest mean over folds (ties: the model named
first). Each other model is compared with it fold by fold (paired: the same test subjects): the mean
± std of the per-fold difference and how many folds each won. With a handful of folds this is a
description, not a significance test, and the record says how many folds it rests on.
"""

from __future__ import annotations

import math

import numpy as np

from eegmamba.training.metrics import METRIC_NAMES, mean_std


def comparison_metric(select: str) -> tuple[str, str | None]:
    """``(metric key of compute_metrics, note or None)`` for the recipe's ``select``."""
    if select == "val_loss":
        return "balanced_acc", ("the recipe selects on validation loss; models are compared on "
                                "balanced accuracy")
    return select, None


def fold_model_metrics(task_result: dict) -> dict:
    """The model's test metrics in one fold's task result (``"eegmamba"`` in runs written before
    ``--model`` existed)."""
    return task_result["model"] if "model" in task_result else task_result["eegmamba"]


def fold_scores(folds: list[dict], metric: str) -> list[float]:
    """Per fold: the mean over tasks of ``metric`` (NaN where no task has a finite value)."""
    out = []
    for f in folds:
        vals = [fold_model_metrics(t).get(metric, math.nan) for t in f["tasks"].values()]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        out.append(float(np.mean(vals)) if vals else math.nan)
    return out


def compare_models(folds_by_model: dict[str, list[dict]], select: str) -> dict:
    """The comparison record (module docstring) for ``{model name: its fold results}`` (in the
    order the models were given; every list has the same folds in the same order)."""
    metric, note = comparison_metric(select)
    scores = {m: fold_scores(fs, metric) for m, fs in folds_by_model.items()}
    summary = {m: {**mean_std(s), "per_fold": [None if not math.isfinite(v) else round(v, 6)
                                               for v in s]}
               for m, s in scores.items()}
    means = {m: (s["mean"] if math.isfinite(s["mean"]) else -math.inf) for m, s in summary.items()}
    winner = max(means, key=lambda m: (means[m], -list(means).index(m)))
    paired = {}
    for m, s in scores.items():
        if m == winner:
            continue
        pairs = [(a, b) for a, b in zip(scores[winner], s) if math.isfinite(a) and math.isfinite(b)]
        d = [a - b for a, b in pairs]
        paired[m] = {**mean_std(d), "winner_better": sum(x > 1e-12 for x in d),
                     "other_better": sum(x < -1e-12 for x in d), "tied": sum(abs(x) <= 1e-12 for x in d)}
    return {"models": list(folds_by_model), "metric": metric, "metric_note": note,
            "n_folds": len(next(iter(scores.values()))), "summary": summary, "winner": winner,
            "paired_vs_winner": paired}


def choice_lines(choice: dict, final: str | None) -> list[str]:
    """The report's "Which model won" section (markdown lines)."""
    metric, w = choice["metric"], choice["winner"]
    name = METRIC_NAMES.get(metric, metric)
    n = choice["n_folds"]
    lines = ["## Which model won on these folds", "",
             f"Each model was cross-validated on the same {n} subject-grouped folds (the same "
             "windows, with the profile's preprocessing and alignment; the same validation split, "
             f"recipe and augmentation); compared on test-fold {name} (mean over tasks per fold)." + (f" Note: {choice['metric_note']}." if choice["metric_note"] else ""),
             "", f"| model | {name} mean ± std | per fold |", "|---|---|---|"]
    for m, s in choice["summary"].items():
        pm = "nan" if not math.isfinite(s["mean"]) else f"{s['mean']:.3f} ± {s['std']:.3f}"
        per = ", ".join("nan" if v is None else f"{v:.3f}" for v in s["per_fold"])
        lines.append(f"| {'**' + m + '**' if m == w else m} | {pm} | {per} |")
    lines += ["", f"Winner: **{w}** (highest mean {name})."]
    for m, p in choice["paired_vs_winner"].items():
        diff = ("no fold with both scores" if not p["n"] else
                f"{w} − {m} = {p['mean']:+.3f} ± {p['std']:.3f} per fold")
        lines.append(f"- paired with {m}: {diff}; {w} better in {p['winner_better']}, {m} better "
                     f"in {p['other_better']}, tied in {p['tied']} of {p['n']} folds")
    lines += [f"- {n} folds: a description of these folds, not a significance test."]
    if final:
        lines.append(f"- the final checkpoint (`final/`) is **{final}**, trained on all subjects; "
                     "every model's fold checkpoints are under `models/NAME/folds/`.")
    return lines + [""]
