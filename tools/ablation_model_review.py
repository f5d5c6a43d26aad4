"""Ablations of the model review (issue 11): class-token position and window normalization.

Each arm is one subject-grouped cross-validation run of the product's own pipeline
(``eegmamba.training.experiment.Experiment``: the profile's preprocessing and windowing, validation
split from the training subjects, early stopping, best-validation weights), with everything fixed
except the ablated setting:

* ``--ablation norm``: the profile's ``normalization`` (``zscore`` = per window, ``recording`` =
  causal running RMS of the recording, ``none`` = µV, see ``eegmamba.windowing``);
* ``--ablation cls``: ``EEGMambaConfig.cls_position`` (``start`` = Eq. 7, ``middle``, ``end``).

Every arm gets the same folds, seeds and training settings. Metrics are computed on the test
windows of each fold (accuracy, balanced accuracy, ROC-AUC, weighted F1, Cohen's kappa) and
reported per fold and as mean ± std over folds (and seeds). Writes ``OUT/ablation.json`` and prints
a Markdown table. Usage::

    OMP_NUM_THREADS=1 python tools/ablation_model_review.py --ablation norm --profile seizure \\
        --data ../shared/data/seizure --arms zscore,recording,none --out /tmp/abl_seizure
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import yaml
from sklearn.metrics import balanced_accuracy_score, cohen_kappa_score

from eegmamba.profiles import load_profile
from eegmamba.training.experiment import Experiment, RunConfig, TaskInput
from eegmamba.training.metrics import auroc, compute_metrics
from eegmamba.training.trainer import TrainConfig

METRICS = ("acc", "bal_acc", "auroc", "f1_weighted", "kappa")


class _ClsExperiment(Experiment):
    """The product's experiment with the model's class-token position set."""

    cls_position = "start"

    def _model(self, seed: int):
        from eegmamba import create_model
        from eegmamba.training.experiment import _task_spec
        from eegmamba.training.trainer import seed_everything

        seed_everything(seed)
        return create_model(self.cfg.resolved_variant, tasks=[_task_spec(p) for p in self.profiles],
                            cls_position=self.cls_position)


def fold_metrics(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    m = compute_metrics(y, proba)
    pred = proba.argmax(1)
    return {"acc": m["acc"], "bal_acc": float(balanced_accuracy_score(y, pred)),
            "auroc": auroc(y, proba), "f1_weighted": m["f1_weighted"],
            "kappa": float(cohen_kappa_score(y, pred)), "n": int(len(y))}


def run_arm(a, arm: str, seed: int, out: Path, console) -> dict:
    profile = load_profile(a.profile)
    if a.ablation == "norm":
        d = profile.to_dict()
        d["normalization"] = arm
        path = out / f"profile_{arm}.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        prof_arg, cls = str(path), "start"
    else:
        prof_arg, cls = a.profile, arm
    train = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, weight_decay=a.weight_decay,
                        patience=a.patience, seed=seed, val_frac=a.val_frac)
    cfg = RunConfig(tasks=(TaskInput(prof_arg, tuple(a.data)),), out=str(out / f"{arm}_seed{seed}"),
                    folds=a.folds, variant=a.variant, device="cpu", train=train, final=False,
                    baseline=False)
    exp = _ClsExperiment(cfg, console=console)
    exp.cls_position = cls
    t0 = time.time()
    res = exp.run()
    name = profile.name
    folds = []
    for k in range(res["n_folds"]):
        r = json.loads((Path(cfg.out) / "folds" / f"fold_{k + 1}" / "result.json").read_text())
        t = r["tasks"][name]
        m = fold_metrics(np.asarray(t["y_true"]), np.asarray(t["proba"]))
        folds.append({"fold": k + 1, "test_subjects": t["test_subjects"], "best_epoch": r["best_epoch"],
                      "epochs_run": len(r["history"]), **m})
    return {"arm": arm, "seed": seed, "seconds": round(time.time() - t0, 1), "folds": folds}


def summarize(runs: list[dict], arms: list[str]) -> str:
    lines = ["| arm | " + " | ".join(METRICS) + " |", "|---|" + "---|" * len(METRICS)]
    for arm in arms:
        rows = [f for r in runs if r["arm"] == arm for f in r["folds"]]
        cells = []
        for m in METRICS:
            v = np.array([f[m] for f in rows], dtype=float)
            cells.append(f"{np.nanmean(v):.3f} ± {np.nanstd(v):.3f}")
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | seed | fold | test subjects | n | best epoch | " + " | ".join(METRICS) + " |",
              "|---|---|---|---|---|---|" + "---|" * len(METRICS)]
    for r in runs:
        for f in r["folds"]:
            lines.append(f"| {r['arm']} | {r['seed']} | {f['fold']} | {', '.join(f['test_subjects'])} | "
                         f"{f['n']} | {f['best_epoch']}/{f['epochs_run']} | "
                         + " | ".join(f"{f[m]:.3f}" for m in METRICS) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--ablation", choices=("norm", "cls"), required=True, help="what is ablated")
    ap.add_argument("--profile", required=True, help="task profile (name or YAML)")
    ap.add_argument("--data", nargs="+", required=True, help="recordings (files or folders)")
    ap.add_argument("--arms", required=True, help="comma-separated arms (normalizations or positions)")
    ap.add_argument("--out", required=True, help="output folder (must not hold a run)")
    ap.add_argument("--folds", type=int, default=5, help="subject-grouped folds")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds")
    ap.add_argument("--variant", default="eegmamba_single", help="model variant")
    ap.add_argument("--epochs", type=int, default=15, help="maximum epochs")
    ap.add_argument("--patience", type=int, default=4, help="early-stopping patience, epochs")
    ap.add_argument("--batch-size", type=int, default=32, help="windows per step")
    ap.add_argument("--lr", type=float, default=2e-4, help="AdamW learning rate (paper)")
    ap.add_argument("--weight-decay", type=float, default=1e-6, help="AdamW weight decay (paper)")
    ap.add_argument("--val-frac", type=float, default=0.2, help="validation fraction of training units")
    a = ap.parse_args(argv)
    from rich.console import Console

    import torch

    torch.set_num_threads(1)
    console = Console(stderr=True)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    arms = [s.strip() for s in a.arms.split(",") if s.strip()]
    seeds = [int(s) for s in a.seeds.split(",")]
    runs = []
    for seed in seeds:
        for arm in arms:
            runs.append(run_arm(a, arm, seed, out, console))
            (out / "ablation.json").write_text(json.dumps({"args": vars(a), "runs": runs}, indent=2))
    table = summarize(runs, arms)
    (out / "ablation.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
