"""``results.json`` summaries and ``report.md`` with PNG plots (confusion matrix, per-subject accuracy,
learning curves) for a cross-validation run. The tables are the served model's (``--model``; the
winner when several were compared, with the comparison in its own section)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from eegmamba.data.dataset import WindowSet
from eegmamba.profiles import Profile
from eegmamba.training.metrics import METRIC_NAMES as _NAMES
from eegmamba.training.metrics import METRICS, summarize_folds
from eegmamba.training.model_choice import choice_lines, fold_model_metrics


def summarize_task(profile: Profile, ws: WindowSet, folds: list[dict], model: str = "") -> dict:
    """Per-fold metrics, mean ± std over folds, per-subject metrics and the pooled confusion matrix
    of one task, for the model (registry name ``model``) and the baseline."""
    per_fold, per_subject = [], {}
    n = len(profile.classes)
    conf = {"model": np.zeros((n, n), int), "baseline": np.zeros((n, n), int)}
    baseline_name, baseline_notes = None, []
    for f in folds:
        t = f["tasks"][profile.name]
        b = t.get("baseline", {})
        baseline_name = baseline_name or b.get("name")
        row = {"fold": f["fold"], "test_subjects": t["test_subjects"], "n_test": t["n_test"],
               "n_train": t["n_train"], "n_val": t["n_val"], "validation": t["validation"],
               "best_epoch": f["best_epoch"], "model": fold_model_metrics(t), "baseline": b.get("metrics")}
        if "note" in b:
            row["baseline_note"] = b["note"]
            baseline_notes.append(f"fold {f['fold']}: {b['note']}")
        per_fold.append(row)
        conf["model"] += np.asarray(t["confusion"])
        if "confusion" in b:
            conf["baseline"] += np.asarray(b["confusion"])
        for s, m in t.get("per_subject", t.get("eegmamba_per_subject", {})).items():
            per_subject.setdefault(s, {"fold": f["fold"]})["model"] = m
        for s, m in b.get("per_subject", {}).items():
            per_subject.setdefault(s, {"fold": f["fold"]})["baseline"] = m
    windows = {s: {c: int(np.sum((ws.subjects == s) & (ws.y == i))) for i, c in enumerate(ws.classes)}
               for s in sorted(set(ws.subjects.tolist()))}
    summary = {"model": summarize_folds([r["model"] for r in per_fold])}
    complete = [r["baseline"] for r in per_fold if r["baseline"] is not None]
    if complete:
        summary["baseline"] = summarize_folds(complete)
    return {"profile": profile.name, "model": model, "classes": list(profile.classes), "windows": windows,
            "dropped": dict(ws.drops), "baseline_name": baseline_name, "baseline_notes": baseline_notes,
            "folds": per_fold, "summary": summary, "per_subject": per_subject,
            "confusion": {k: v.tolist() for k, v in conf.items()}}


def _fmt(m: dict | None, key: str) -> str:
    if m is None:
        return "–"
    v = m.get(key)
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def _pm(s: dict) -> str:
    return "nan" if math.isnan(s["mean"]) else f"{s['mean']:.3f} ± {s['std']:.3f}"


def _plots(out: Path, name: str, task: dict, folds: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    classes = task["classes"]
    panels = [(task["model"], task["confusion"]["model"])]
    if task["baseline_name"]:
        panels.append((task["baseline_name"], task["confusion"]["baseline"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (title, cm) in zip(axes[0], panels):
        cm = np.asarray(cm)
        ax.imshow(cm, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
        ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{title} (test folds pooled)")
    fig.tight_layout()
    files.append(f"confusion_{name}.png")
    fig.savefig(out / files[-1], dpi=100)
    plt.close(fig)

    subjects = sorted(task["per_subject"])
    fig, ax = plt.subplots(figsize=(max(4, 1.0 * len(subjects) + 2), 3.5))
    x = np.arange(len(subjects))
    for off, key, label in ((-0.2, "model", task["model"]), (0.2, "baseline", task["baseline_name"])):
        vals = [task["per_subject"][s].get(key, {}).get("acc", np.nan) for s in subjects]
        if label:
            ax.bar(x + off, vals, width=0.4, label=label)
    ax.set_xticks(x, subjects, rotation=45, ha="right")
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (as test subject)")
    ax.legend()
    fig.tight_layout()
    files.append(f"per_subject_{name}.png")
    fig.savefig(out / files[-1], dpi=100)
    plt.close(fig)
    return files


def _learning_curves(out: Path, folds: list[dict]) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for f in folds:
        h = f["history"]
        ep = [r["epoch"] for r in h]
        # train_ce and val_loss are both cross-entropy; the MoE aux term is drawn on its own
        line, = ax.plot(ep, [r.get("train_ce", r["train_loss"]) for r in h],
                        label=f"fold {f['fold']} train CE")
        ax.plot(ep, [r.get("val_loss", np.nan) for r in h], "--", color=line.get_color(),
                label=f"fold {f['fold']} val CE")
        if any(r.get("train_aux") for r in h):
            ax.plot(ep, [r.get("train_aux", np.nan) for r in h], ":", color=line.get_color(),
                    label=f"fold {f['fold']} train aux (weighted)")
        ax.axvline(f["best_epoch"], color=line.get_color(), alpha=0.3)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "learning_curves.png", dpi=100)
    plt.close(fig)
    return "learning_curves.png"


def _recipe_line(r: dict) -> str:
    """The training recipe in one line (keys of ``Recipe.to_dict``; older runs lack some)."""
    if "schedule" not in r:
        return f"lr {r.get('lr')}, weight decay {r.get('weight_decay')} (pre-engine run)"
    return (f"AdamW lr {r['lr']:g} (weight decay {r['weight_decay']:g} "
            f"{'on every parameter' if r['decay_all'] else 'on weights only'}), {r['schedule']} with "
            f"{r['warmup_frac']:.0%} warmup, clip {r['clip']:g}, label smoothing {r['label_smoothing']:g}, "
            f"EMA {r['ema']:g}, batch {r['batch_size']}, selection on {r['select']} "
            f"({r['eval_every'] or r['evals_per_epoch']} {'steps' if r['eval_every'] else 'per epoch'}), "
            f"balance {r['balance']}")


def write_report(out: str | Path, results: dict) -> Path:
    """Write ``report.md`` and its PNGs into ``out``; returns the report path."""
    out = Path(out)
    run = results["run"]
    served = results.get("model") or run["config"]["variant"]
    lines = [f"# Cross-validation report: {served}", "",
             f"- command: `{run['command']}`", f"- machine: {run['machine']} (device {run['device']}, "
             f"{run['world_size']} process(es))", f"- wall time: {run['wall_seconds']:.0f} s",
             f"- folds: {results['n_folds']} subject-grouped" +
             (f" ({'; '.join(results['folds_note'])})" if results["folds_note"] else ""),
             f"- seed: {run['seed']}; model: {served}; epochs (max): "
             f"{run['config']['train']['epochs']}, patience {run['config']['train']['patience']}",
             f"- recipe: {_recipe_line(run['config']['train'])}", ""]
    if results.get("model_choice"):
        final = (results.get("final") or {}).get("model")
        lines += choice_lines(results["model_choice"], final)
    for name, task in results["tasks"].items():
        bname = task["baseline_name"] or "baseline"
        lines += [f"## {name}", "", f"Classes: {', '.join(task['classes'])}. Dropped windows: "
                  f"{', '.join(f'{k}={v}' for k, v in sorted(task['dropped'].items())) or 'none'}.", "",
                  "| fold | test subjects | n test | best epoch | " +
                  " | ".join(f"{served} {_NAMES[m]}" for m in METRICS) + " | " +
                  " | ".join(f"{bname} {_NAMES[m]}" for m in METRICS) + " |",
                  "|" + "---|" * (4 + 2 * len(METRICS))]
        for r in task["folds"]:
            lines.append(f"| {r['fold']} | {', '.join(r['test_subjects'])} | {r['n_test']} | "
                         f"{r['best_epoch']} | " + " | ".join(_fmt(r["model"], m) for m in METRICS)
                         + " | " + " | ".join(_fmt(r["baseline"], m) for m in METRICS) + " |")
        s = task["summary"]
        base = s.get("baseline")
        lines.append("| mean ± std | | | | " + " | ".join(_pm(s["model"][m]) for m in METRICS) +
                     " | " + " | ".join(_pm(base[m]) if base else "–" for m in METRICS) + " |")
        lines += ["", *(f"- {n}" for n in task["baseline_notes"])]
        lines += ["", "Validation (early stopping) per fold:", "",
                  *(f"- fold {r['fold']}: {r['validation']}" for r in task["folds"]), "",
                  f"| subject | windows per class | {served} ACC | {bname} ACC |", "|---|---|---|---|"]
        for subj, m in sorted(task["per_subject"].items()):
            counts = ", ".join(f"{c} {n}" for c, n in task["windows"].get(subj, {}).items() if n)
            lines.append(f"| {subj} | {counts} | {_fmt(m.get('model'), 'acc')} | "
                         f"{_fmt(m.get('baseline'), 'acc')} |")
        for png in _plots(out, name, task, results["folds"]):
            lines += ["", f"![{png}]({png})"]
        lines.append("")
    lines += ["## Learning curves", "", f"![learning curves]({_learning_curves(out, results['folds'])})", ""]
    if results.get("final"):
        f = results["final"]
        length = (f"{f['epochs_selected']:g} epoch(s), {f['steps']} steps" if "steps" in f
                  else f"{f['epochs']} epoch(s)")
        folds = f"models/{served}/folds" if results.get("model_choice") else "folds"
        lines += ["## Final model", "", f"`final/`: {served}, trained on all subjects for {length} "
                  "(median over folds of the selected validation's position). Its numbers are not in "
                  "the table: it has no held-out subject; the fold checkpoints in "
                  f"`{folds}/fold_K/checkpoint` are the ones the table evaluates.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
