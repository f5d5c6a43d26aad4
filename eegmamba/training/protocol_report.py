"""``report.md`` of a protocol run: summary (mean ± std over units), per-unit and per-subject tables."""

from __future__ import annotations

import math
from pathlib import Path

from eegmamba.training.arms import ARM_NAMES, ARMS
from eegmamba.training.metrics import METRIC_NAMES, METRICS


def fmt(v) -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def pm(s: dict | None) -> str:
    if not s or s.get("n", 0) == 0 or math.isnan(s["mean"]):
        return "–"
    return f"{s['mean']:.3f} ± {s['std']:.3f}"


def _order(names) -> list[str]:
    return sorted(names, key=lambda a: (ARMS.index(a) if a in ARMS else len(ARMS), a))


def summary_table(arms: dict, unit_word: str) -> list[str]:
    """Markdown rows: one per arm, mean ± std over its units of every metric."""
    lines = [f"| model | {unit_word} | " + " | ".join(METRIC_NAMES[m] for m in METRICS) +
             " | fit time (s) |", "|---|---|" + "---|" * len(METRICS) + "---|"]
    for arm in _order(arms):
        a = arms[arm]
        lines.append(f"| {ARM_NAMES.get(arm, arm)} | {len(a['units'])} | " +
                     " | ".join(pm(a["summary"].get(m)) for m in METRICS) + f" | {a['seconds']:.0f} |")
    return lines


def per_subject_table(arms: dict, metrics=("acc", "auroc")) -> list[str]:
    """Markdown rows: one per subject, ``metric`` of every arm."""
    order = _order(arms)
    subjects = sorted({s for a in arms.values() for s in a["per_subject"]})
    head = " | ".join(f"{ARM_NAMES.get(a, a)} {METRIC_NAMES[m]}" for a in order for m in metrics)
    lines = [f"| subject | windows | {head} |", "|---|---|" + "---|" * (len(order) * len(metrics))]
    for s in subjects:
        n = next((arms[a]["per_subject"][s]["n"] for a in order if s in arms[a]["per_subject"]), 0)
        cells = [fmt(arms[a]["per_subject"].get(s, {}).get(m)) for a in order for m in metrics]
        lines.append(f"| {s} | {n} | " + " | ".join(cells) + " |")
    return lines


def per_class_table(arms: dict, classes) -> list[str]:
    """Recall per class, pooled over every test window of every unit (rare classes, e.g. N1 or
    REM, have too few windows per unit for a mean over units)."""
    if not any("per_class_pooled" in a for a in arms.values()):
        return []
    lines = ["## Recall per class (pooled over all test windows)", "",
             "| model | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for arm in _order(arms):
        pc = arms[arm].get("per_class_pooled", {})
        lines.append(f"| {ARM_NAMES.get(arm, arm)} | " + " | ".join(
            f"{fmt(pc[c]['recall'])} ({pc[c]['support']})" if c in pc else "–" for c in classes) + " |")
    return lines + [""]


def write_protocol_report(out: str | Path, results: dict) -> Path:
    out = Path(out)
    cfg, prov = results["config"], results.get("provenance", {})
    arms = results["arms"]
    unit_word = {"cross-subject": "folds", "leave-one-recording-out": "recordings"}.get(
        results["protocol"], "subjects")
    lines = [f"# {results['protocol']} protocol: {results['profile']} ({', '.join(results['classes'])})",
             "", f"- first command: `{prov.get('command', '?')}`", f"- machine: {prov.get('machine', '?')}",
             f"- settings: {cfg['settings']}", f"- seed {cfg['seed']}; validation fraction {cfg['val_frac']}",
             "", "## Summary (mean ± std over " + unit_word + ")", "", *summary_table(arms, unit_word), ""]
    lines += per_class_table(arms, results["classes"])
    if results["protocol"] == "cross-subject":
        order = _order(arms)
        lines += ["## Folds (AUROC)", "", "| fold | test subjects | " +
                  " | ".join(ARM_NAMES.get(a, a) for a in order) + " |", "|---|---|" + "---|" * len(order)]
        first = arms[order[0]]["units"]
        for i, u in enumerate(first):
            cells = [fmt(arms[a]["units"][i]["metrics"]["auroc"]) if i < len(arms[a]["units"]) else "–"
                     for a in order]
            lines.append(f"| {u['unit']} | {', '.join(u['test_subjects'])} | " + " | ".join(cells) + " |")
        lines += ["", "Validation (early stopping of the networks): ", "",
                  *(f"- {u['unit']}: {u['validation']}" for u in first), ""]
    lines += ["## Per subject", "", *per_subject_table(arms), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path


CONDITION_NAMES = {"uncalibrated": "(1) cross-subject, no calibration",
                   "scratch": "(2) within-subject, from scratch",
                   "calibrated": "(3) cross-subject + calibration"}


def write_calibrated_report(out: str | Path, results: dict) -> Path:
    """``report.md`` of the calibrated protocol: per arm the three conditions on the same subjects."""
    out = Path(out)
    run, arms = results["run"], results["arms"]
    lines = [f"# calibrated protocol: {results['profile']} ({', '.join(results['classes'])})", "",
             f"- command: `{run.get('provenance', {}).get('command', '?')}`",
             f"- machine: {run.get('provenance', {}).get('machine', '?')}",
             f"- cross-subject run: `{run['cross_subject_run']}`; within-subject run: "
             f"`{run['within_subject_run']}`; calibration runs {run['train_runs']}, test runs "
             f"{run['test_runs']}", "", "## Summary (mean ± std over subjects)", "",
             "| model | condition | subjects | " + " | ".join(METRIC_NAMES[m] for m in METRICS) + " |",
             "|---|---|---|" + "---|" * len(METRICS)]
    for arm in _order(arms):
        a = arms[arm]
        for c, name in CONDITION_NAMES.items():
            lines.append(f"| {ARM_NAMES.get(arm, arm)} | {name} | {len(a['subjects'])} | " +
                         " | ".join(pm(a["summary"][c].get(m)) for m in METRICS) + " |")
    if any(a.get("layers") for a in arms.values()):
        lines += ["", "Calibration layers (neural models), chosen on training subjects only:", ""]
    else:
        lines += ["", "Calibration: neural models fine-tune every layer of the cross-subject fold model "
                  "on the calibration runs (early stopping on the last 20 % in time of each run, the "
                  "training settings of the other protocols); classical models are refitted on the "
                  "fold's training subjects pooled with the calibration runs.", ""]
    for arm in _order(arms):
        lay = arms[arm]["layers"]
        if lay:
            lines.append(f"- {ARM_NAMES.get(arm, arm)}: `{lay['chosen']}` (mean ROC-AUC on "
                         f"{len(lay['pairs'])} fold/validation-subject pairs: " +
                         ", ".join(f"{k} {v:.3f}" for k, v in lay["mean_auroc"].items()) + ")")
    order = _order(arms)
    subjects = sorted({s for a in arms.values() for s in a["per_subject"]})
    lines += ["", "## Per subject (ROC-AUC: no calibration / from scratch / calibrated)", "",
              "| subject | " + " | ".join(ARM_NAMES.get(a, a) for a in order) + " |",
              "|---|" + "---|" * len(order)]
    for s in subjects:
        cells = []
        for a in order:
            ps = arms[a]["per_subject"].get(s)
            cells.append("–" if ps is None else " / ".join(fmt(ps[c]["auroc"]) for c in CONDITION_NAMES))
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
