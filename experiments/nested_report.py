"""``results.json`` and ``report.md`` of a nested run (``experiments/nested.py``) from the unit JSONs
on disk, so a partial run reports what it has: validation AUROC per configuration and fold, the
choice per fold, test figures per arm (mean ± std over folds of the seed mean, per window and per
trial) and the paired per-subject Wilcoxon signed-rank test of the chosen EEGMamba against EEGNet
with the same alignment setting (per-subject AUROC averaged over seeds; scipy.stats.wilcoxon,
two-sided)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from eegmamba.training.metrics import mean_std
from eegmamba.training.protocol_report import fmt, pm

LEVELS = ("per_window", "per_trial")
METRICS = ("auroc", "balanced_acc")


def _read(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def collect(out: str | Path) -> dict:
    """Every finished unit of ``out`` summarised (module docstring)."""
    out = Path(out)
    units = out / "units"
    inner = {d.name: {u["fold"]: u for u in _read(d)} for d in sorted((units / "inner").glob("*"))
             if d.is_dir() and _read(d)}  # a folder holding only an unfinished fit's state: none yet
    choices = {c["fold"]: c for c in _read(units / "choice")}
    test = {d.name: _read(d) for d in sorted((units / "test").glob("*")) if d.is_dir()}
    for arm in list(test):  # EA networks also scored with the causal live reference
        causal = [{**u, **u["causal_alignment"]} for u in test[arm] if u.get("causal_alignment")]
        if causal:
            test[f"{arm}[causal EA]"] = causal
    arms = {}
    for arm, us in test.items():
        by_fold = defaultdict(list)
        for u in us:
            by_fold[u["fold"]].append(u)
        fold_means = {lv: {m: [float(np.mean([u[lv][m] for u in v])) for v in by_fold.values()]
                           for m in METRICS} for lv in LEVELS}
        subj = defaultdict(lambda: defaultdict(list))  # level -> subject -> [auroc per seed]
        for u in us:
            for lv in LEVELS:
                for s, m in u[f"per_subject_{lv.split('_')[1]}"].items():
                    subj[lv][s].append(m["auroc"])
        arms[arm] = {"folds": sorted(by_fold), "seeds": sorted({u["seed"] for u in us if u["seed"] is not None}),
                     "units": len(us),
                     "summary": {lv: {m: mean_std(fold_means[lv][m]) for m in METRICS} for lv in LEVELS},
                     "per_subject_auroc": {lv: {s: float(np.mean(v)) for s, v in sorted(subj[lv].items())}
                                           for lv in LEVELS},
                     "alignment_by_fold": {u["fold"]: u.get("alignment") for u in us},
                     "config_by_fold": {u["fold"]: u["config"] for u in us},
                     "fold_of_subject": {s: u["fold"] for u in us for s in u["test_subjects"]}}
    results = {"inner": {k: {f: {"best_val_auroc": u["best_val_auroc"], "best_step": u["best_step"],
                                 "steps_run": u.get("total_steps_run"), "seconds": u["seconds"]}
                             for f, u in v.items()} for k, v in inner.items()},
               "choices": choices, "arms": arms, "paired": paired_tests(arms)}
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    if run.get("choices_from"):
        results["vs_choices_from"] = against(test, Path(run["choices_from"]))
    (out / "results.json").write_text(json.dumps(results, indent=1, allow_nan=True) + "\n")
    return results


def wilcoxon(a: dict, b: dict) -> dict:
    """Paired two-sided Wilcoxon signed-rank over the subjects both dicts hold (subject → value)."""
    common = sorted(set(a) & set(b))
    x = np.array([a[s] for s in common])
    y = np.array([b[s] for s in common])
    res = {"n": len(common), "mean_diff": float(np.mean(x - y)) if common else math.nan,
           "wins": int(np.sum(x > y)), "losses": int(np.sum(x < y)), "statistic": math.nan,
           "p": math.nan}
    if len(common) >= 2 and np.any(x != y):
        from scipy.stats import wilcoxon as _w

        r = _w(x, y, alternative="two-sided")
        res.update(statistic=float(r.statistic), p=float(r.pvalue))
    return res


def _subject_auroc(units: list[dict], keys: set, level: str) -> dict:
    """Per-subject AUROC at ``level`` averaged over the units whose (fold, seed) is in ``keys``."""
    subj = defaultdict(list)
    for u in units:
        if (u["fold"], u["seed"]) in keys:
            for s, m in u[f"per_subject_{level.split('_')[1]}"].items():
                subj[s].append(m["auroc"])
    return {s: float(np.mean(v)) for s, v in subj.items()}


def against(test: dict, src: Path) -> dict:
    """Each arm of this run against the same arm of ``src`` (the run its choices came from), on
    the (fold, seed) units both hold: per-subject AUROC, paired Wilcoxon (this − src)."""
    out = {}
    for arm, us in test.items():
        if "[" in arm:
            continue
        theirs = _read(src / "units" / "test" / arm)
        keys = {(u["fold"], u["seed"]) for u in us} & {(u["fold"], u["seed"]) for u in theirs}
        if keys:
            mine = {lv: _subject_auroc(us, keys, lv) for lv in LEVELS}
            src_ = {lv: _subject_auroc(theirs, keys, lv) for lv in LEVELS}
            out[arm] = {"units": len(keys), **{lv: wilcoxon(mine[lv], src_[lv]) for lv in LEVELS},
                        "mean_this": {lv: float(np.mean(list(mine[lv].values()))) for lv in LEVELS},
                        "mean_src": {lv: float(np.mean(list(src_[lv].values()))) for lv in LEVELS}}
    return out


def paired_tests(arms: dict) -> dict:
    """Chosen EEGMamba vs EEGNet: against each EEGNet arm, and against the EEGNet arm with the same
    alignment as the configuration chosen in each subject's fold."""
    if "eegmamba_chosen" not in arms:
        return {}
    chosen = arms["eegmamba_chosen"]
    out = {}
    for peer in ("eegnet_ea", "eegnet_noea"):
        if peer in arms:
            out[f"vs_{peer}"] = {lv: wilcoxon(chosen["per_subject_auroc"][lv], arms[peer]["per_subject_auroc"][lv])
                                 for lv in LEVELS}
    if "eegnet_ea" in arms and "eegnet_noea" in arms:
        peer_of = {f: ("eegnet_noea" if a == "none" else "eegnet_ea")
                   for f, a in chosen["alignment_by_fold"].items()}
        same = {}
        for lv in LEVELS:
            ref = {s: arms[peer_of[f]]["per_subject_auroc"][lv].get(s, math.nan)
                   for s, f in chosen["fold_of_subject"].items()}
            same[lv] = wilcoxon(chosen["per_subject_auroc"][lv],
                                {s: v for s, v in ref.items() if not math.isnan(v)})
        out["vs_eegnet_same_alignment"] = same
    return out


def write_report(out: str | Path) -> Path:
    """``report.md`` (and ``results.json``) of what is on disk now."""
    out = Path(out)
    r = collect(out)
    run = json.loads((out / "run.json").read_text()) if (out / "run.json").is_file() else {}
    lines = ["# Issue 17 nested selection and comparison (partial until every fold is done)", "",
             f"- command: `{run.get('provenance', {}).get('command', '?')}`",
             f"- machine: {run.get('provenance', {}).get('machine', '?')}",
             f"- grid: {run.get('grid', '?')} (sha256 {str(run.get('grid_sha256', '?'))[:12]}); executed "
             f"runs in training: {run.get('with_executed', False)}; refit seeds {run.get('seeds', '?')}", "",
             "## Selection: best validation AUROC per window (step) on the held-out training subjects", ""]
    folds = sorted({f for v in r["inner"].values() for f in v})
    lines += ["Cell: best validation AUROC (optimiser step at which it peaked); the EEGNet rows give "
              "EEGNet's own step count for its refit.", "",
              "| configuration | " + " | ".join(f"fold {f}" for f in folds) + " | mean |",
              "|---|" + "---|" * (len(folds) + 1)]
    for k, v in r["inner"].items():
        cells = [f"{fmt(v[f]['best_val_auroc'])} ({v[f]['best_step']})" if f in v else "–" for f in folds]
        vals = [v[f]["best_val_auroc"] for f in folds if f in v and v[f]["best_val_auroc"] is not None]
        lines.append(f"| {k} | " + " | ".join(cells) + f" | {fmt(float(np.mean(vals))) if vals else '–'} |")
    lines += ["", "## Chosen per outer fold (written before the fold's test windows were indexed)", "",
              "| fold | chosen | val AUROC | steps | EEGNet+EA steps | EEGNet steps | written |",
              "|---|---|---|---|---|---|---|"]
    for f, c in sorted(r["choices"].items()):
        pe = c.get("peers", {})
        lines.append(f"| {f} | {c['chosen']} | {fmt(c['chosen_val_auroc'])} | {c['chosen_step']} | "
                     f"{pe.get('eegnet_ea', {}).get('best_step', '–')} | "
                     f"{pe.get('eegnet_noea', {}).get('best_step', '–')} | {c['written']} |")
    lines += ["", "## Test (outer folds): mean ± std over folds of the seed mean", "",
              "| arm | folds | seeds | window AUROC | window BACC | trial AUROC | trial BACC |",
              "|---|---|---|---|---|---|---|"]
    for arm, a in r["arms"].items():
        s = a["summary"]
        lines.append(f"| {arm} | {','.join(map(str, a['folds']))} | {','.join(map(str, a['seeds'])) or '–'} | "
                     + " | ".join(pm(s[lv][m]) for lv in LEVELS for m in METRICS) + " |")
    if r["paired"]:
        lines += ["", "## Paired per-subject Wilcoxon (chosen EEGMamba − EEGNet, AUROC averaged over seeds)",
                  "", "| comparison | level | subjects | mean diff | wins/losses | W | p |",
                  "|---|---|---|---|---|---|---|"]
        for k, v in r["paired"].items():
            for lv, t in v.items():
                lines.append(f"| {k} | {lv} | {t['n']} | {fmt(t['mean_diff'])} | {t['wins']}/{t['losses']} "
                             f"| {fmt(t['statistic'])} | {fmt(t['p'])} |")
    if r.get("vs_choices_from"):
        lines += ["", f"## This run − {run.get('choices_from')} (same arm, same folds and seeds; "
                  "per-subject AUROC, mean over the shared seeds)", "",
                  "| arm | units | level | this | there | mean diff | wins/losses | p |",
                  "|---|---|---|---|---|---|---|---|"]
        for arm, v in r["vs_choices_from"].items():
            for lv in LEVELS:
                t = v[lv]
                lines.append(f"| {arm} | {v['units']} | {lv} | {fmt(v['mean_this'][lv])} | "
                             f"{fmt(v['mean_src'][lv])} | {fmt(t['mean_diff'])} | {t['wins']}/{t['losses']} "
                             f"| {fmt(t['p'])} |")
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
