"""Offline calibration of a checkpoint on one subject: fine-tune on calibration runs, test on another.

The same ``eegmamba.training.calibrate.finetune`` the live calibration runs, on the same windows the
live loop would collect (the profile's training grid, cue trials as groups), tested on the test
run's windows on the live grid (the windows the live loop decides on). Prints accuracy, balanced
accuracy and ROC-AUC of the checkpoint before and after, per ``--layers``.

    python tools/calibrate_offline.py --checkpoint eegmamba/assets/demo/mi_checkpoint \\
        --calibration eegmamba/assets/demo/S019R04.edf eegmamba/assets/demo/S019R08.edf \\
        --test eegmamba/assets/demo/S019R12.edf --layers head last all --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--calibration", nargs="+", required=True, help="calibration recordings")
    ap.add_argument("--test", nargs="+", required=True, help="test recordings")
    ap.add_argument("--layers", nargs="+", default=["head", "last", "all"])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    import torch

    from eegmamba.checkpoint import check_checkpoint, load_checkpoint
    from eegmamba.data.dataset import build_windows
    from eegmamba.training.calibrate import CalibConfig, finetune, window_trials
    from eegmamba.training.metrics import compute_metrics
    from eegmamba.training.trainer import predict_proba

    torch.set_num_threads(args.threads)
    model, meta = load_checkpoint(args.checkpoint)
    profile = check_checkpoint(meta, model=model, where=args.checkpoint).profile
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = build_windows(args.calibration, profile)
        test = build_windows(args.test, profile, hop_s=profile.window.hop_s)
    groups = window_trials(cal.files, cal.t_start, profile)

    def metrics(m) -> dict:
        proba = predict_proba(m, test.X, profile.name, torch.device("cpu"))
        from sklearn.metrics import balanced_accuracy_score

        out = compute_metrics(test.y, proba)
        out["balanced_acc"] = float(balanced_accuracy_score(test.y, proba.argmax(1)))
        return out

    base = metrics(model)
    rows = {"before": {"test": base}}
    print(f"{profile.name}: {len(cal)} calibration windows of {len(set(groups))} trials "
          f"({cal.class_counts()}), {len(test)} test windows ({test.class_counts()})")
    print(f"{'model':<12}{'acc':>8}{'bal acc':>9}{'auroc':>8}{'held-out bal acc':>20}{'s':>7}  swap?")
    print(f"{'before':<12}{base['acc']:>8.3f}{base['balanced_acc']:>9.3f}{base['auroc']:>8.3f}")
    for layers in args.layers:
        t0 = time.perf_counter()
        res = finetune(model, cal.X, cal.y, groups,
                       config=CalibConfig(layers=layers, epochs=args.epochs, seed=args.seed))
        m = metrics(res.model)
        held = (f"{res.before['balanced_acc']:.3f} -> {res.after['balanced_acc']:.3f}"
                if res.before else "-")
        rows[layers] = {"test": m, "holdout_before": res.before, "holdout_after": res.after,
                        "improved": res.improved, "info": res.info,
                        "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{layers:<12}{m['acc']:>8.3f}{m['balanced_acc']:>9.3f}{m['auroc']:>8.3f}{held:>20}"
              f"{time.perf_counter() - t0:>7.0f}  {'yes' if res.improved else 'no'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": args.checkpoint,
                                               "calibration": args.calibration, "test": args.test,
                                               "results": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
